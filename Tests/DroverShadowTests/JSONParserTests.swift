import Testing

@testable import DroverShadow

@Suite("The JSON parser is strict RFC 8259 and enforces its limits while parsing")
struct JSONParserTests {
    @Test("integers stay integers and floating numbers stay floating")
    func integersStayIntegers() {
        #expect(json("5").jsonString == "5")
        #expect(json("-12").jsonString == "-12")
        #expect(json("0").jsonString == "0")
        #expect(json("9223372036854775807").jsonString == "9223372036854775807")
        #expect(json("5.0").jsonString == "5.0")
        #expect(json("2.5").jsonString == "2.5")
        #expect(json("1e2").jsonString == "100.0")
        #expect(json("5").numberValue?.isInteger == true)
        #expect(json("5.0").numberValue?.isInteger == false)
        #expect(json(#"{"n":5,"f":5.0,"list":[1,2.25]}"#).jsonString == #"{"f":5.0,"list":[1,2.25],"n":5}"#)
    }

    @Test("an integer too large for 64 bits is kept as a floating number")
    func hugeInteger() {
        let value = json("18446744073709551616")
        #expect(value.numberValue?.isInteger == false)
        #expect(value.numberValue?.doubleValue == 18_446_744_073_709_551_616)
    }

    @Test("numbers are equal by value, whatever their form, and hash alike")
    func numericEquality() {
        #expect(json("5") == json("5.0"))
        #expect(json("5") == json("5e0"))
        #expect(json("5").hashValue == json("5.0").hashValue)
        #expect(json("5") != json("5.5"))
        #expect(json("0.1") != json("0"))
        #expect(json(#"{"a":[1,{"b":2}]}"#) == json(#"{ "a" : [ 1.0 , { "b" : 2 } ] }"#))
    }

    @Test("objects serialize compactly with keys sorted by their UTF-8 bytes")
    func sortedKeys() {
        let value = json(#"{ "b": 1, "a": {"z": true, "Z": null}, "é": "x", "A": [] }"#)
        #expect(value.jsonString == #"{"A":[],"a":{"Z":null,"z":true},"b":1,"é":"x"}"#)
    }

    @Test("strings are decoded and re-escaped only where JSON requires")
    func strings() {
        let value = json(#""quote \" backslash \\ slash \/ tab \t nl \n ctl \u0001 \u00e9 \ud83d\ude00 é""#)
        #expect(value.stringValue == "quote \" backslash \\ slash / tab \t nl \n ctl \u{01} é 😀 é")
        #expect(value.jsonString == #""quote \" backslash \\ slash / tab \t nl \n ctl \u0001 é 😀 é""#)
    }

    @Test(
        "malformed input is refused as a value",
        arguments: [
            "", "   ", "{", "[", "[1,]", #"{"a":1,}"#, "{'a':1}", "{a:1}", "[01]", "[-01]", "[1.]", "[.5]", "[+1]",
            "[-]", "[1e]", "[1e+]", "tru", "nul", "falsey", "NaN", "Infinity", "-Infinity", #""abc"#, "\"a\u{01}b\"",
            "\"a\nb\"", #""\x""#, #""\u12G4""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, "[1 2]", #"{"a" 1}"#,
            #"{"a":1 "b":2}"#, "1 2", "// c\n1", "/* c */ 1", #"{"a":1,"a":2}"#, "[1e400]", "[-1e400]", "{,}", "[,1]",
            #"{"a"}"#, "]", "\u{FEFF}1",
        ]
    )
    func malformed(text: String) throws {
        let error = try #require(JSONValue.parse(text).failure)
        #expect(error.code == .malformed)
    }

    @Test("the offset of a refusal is that of the offending byte")
    func errorOffset() throws {
        #expect(try #require(JSONValue.parse("[1,]").failure).offset == 3)
        #expect(try #require(JSONValue.parse(#"{"a":1 "b":2}"#).failure).offset == 7)
        #expect(try #require(JSONValue.parse(#"{"a":1,"a":2}"#).failure).message == #"duplicate member name "a""#)
    }

    @Test(
        "bytes that are not UTF-8 are refused as an encoding error",
        arguments: [
            [0x22, 0xC3, 0x28, 0x22],  // a lead byte without its continuation
            [0x22, 0xC0, 0xAF, 0x22],  // an overlong '/'
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // an encoded surrogate
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
            [0x22, 0xFF, 0x22],
            [0x22, 0xE2, 0x82, 0x22],  // truncated
        ] as [[UInt8]]
    )
    func invalidUTF8(bytes: [UInt8]) throws {
        let error = try #require(JSONValue.parse(bytes).failure)
        #expect(error.code == .invalidUTF8)
        #expect(error.offset == 1)
    }

    @Test("an input exactly at the byte limit is parsed, one byte more is refused")
    func byteLimit() throws {
        let text = #"{"k":"value"}"#  // 13 bytes
        #expect(text.utf8.count == 13)
        #expect(JSONValue.parse(text, limits: JSONParseLimits(maximumBytes: 13)).success != nil)
        let error = try #require(JSONValue.parse(text, limits: JSONParseLimits(maximumBytes: 12)).failure)
        #expect(error.code == .tooLarge)
    }

    @Test("nesting exactly at the depth limit is parsed, one level more is refused")
    func depthLimit() throws {
        let limits = JSONParseLimits(maximumDepth: 3)
        #expect(JSONValue.parse("[[[1]]]", limits: limits).success != nil)
        #expect(JSONValue.parse(#"{"a":[{"b":1}]}"#, limits: limits).success != nil)
        #expect(try #require(JSONValue.parse("[[[[1]]]]", limits: limits).failure).code == .tooDeep)
        #expect(try #require(JSONValue.parse(#"{"a":[{"b":{}}]}"#, limits: limits).failure).code == .tooDeep)
    }

    @Test("a deeply nested hostile document is refused without exhausting the stack")
    func hostileDepth() throws {
        let text = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(try #require(JSONValue.parse(text).failure).code == .tooDeep)
    }

    @Test("whitespace around the value is allowed")
    func whitespace() {
        #expect(json(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n ") == ["a": [1, 2]])
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }

    var success: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
