extension JSONValue {
    /// Parses one JSON value that fills the whole input (whitespace aside).
    ///
    /// A refusal is a value, not a thrown error: a device sending bad JSON is an everyday event
    /// that the shadow service answers on `/rejected`.
    public static func parse(
        _ bytes: some Collection<UInt8>,
        limits: JSONParseLimits = JSONParseLimits()
    ) -> Result<JSONValue, JSONParseError> {
        guard bytes.count <= limits.maximumBytes else {
            return .failure(
                JSONParseError(
                    code: .tooLarge,
                    message: "the document is \(bytes.count) bytes, more than \(limits.maximumBytes)",
                    offset: limits.maximumBytes
                )
            )
        }
        var parser = JSONParser(bytes: Array(bytes), maximumDepth: limits.maximumDepth)
        do throws(JSONParseError) {
            return .success(try parser.parseDocument())
        } catch {
            return .failure(error)
        }
    }

    /// Parses the UTF-8 of `text`.
    public static func parse(_ text: String, limits: JSONParseLimits = JSONParseLimits()) -> Result<
        JSONValue, JSONParseError
    > {
        parse(Array(text.utf8), limits: limits)
    }
}

/// A strict RFC 8259 parser over UTF-8 bytes.
///
/// It refuses what lenient parsers let through: trailing commas, comments, single quotes,
/// leading zeros, `NaN`, unescaped control characters, lone surrogates, duplicate member names
/// (which would make "which value counts?" a matter of implementation), and numbers too large
/// for a `Double`. The whole input is checked to be UTF-8 before parsing, so that an encoding
/// error is reported as such wherever it is. Nesting is bounded while parsing, so a hostile
/// document cannot exhaust the stack.
struct JSONParser {
    private let bytes: [UInt8]
    private let maximumDepth: Int
    private var index = 0

    init(bytes: [UInt8], maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if let offset = Self.firstInvalidUTF8(in: bytes) {
            throw JSONParseError(code: .invalidUTF8, message: "the document is not valid UTF-8", offset: offset)
        }
        skipWhitespace()
        guard index < bytes.count else { throw malformed("the document is empty", at: index) }
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else { throw malformed("unexpected text after the end of the document", at: index) }
        return value
    }

    // MARK: Values

    /// `depth` is the number of objects and arrays that enclose the value.
    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard index < bytes.count else { throw endOfDocument() }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return .null
        default:
            throw malformed("expected a value", at: index)
        }
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw tooDeep() }
        index += 1  // {
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            guard bytes[index] == UInt8(ascii: "\"") else {
                throw malformed("expected a member name in double quotes", at: index)
            }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw malformed("expected ':' after a member name", at: index) }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            guard members.updateValue(value, forKey: key) == nil else {
                throw malformed("duplicate member name \"\(key)\"", at: keyOffset)
            }
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default:
                throw malformed("expected ',' or '}'", at: index)
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= maximumDepth else { throw tooDeep() }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default:
                throw malformed("expected ',' or ']'", at: index)
            }
        }
    }

    /// `index` is at the opening quote. The input is known to be UTF-8, so the raw bytes between
    /// escapes are copied as they are.
    private mutating func parseString() throws(JSONParseError) -> String {
        let start = index
        index += 1  // "
        var decoded: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: decoded, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try parseEscape(into: &decoded)
            case 0..<0x20:
                throw malformed("a control character must be escaped in a string", at: index)
            default:
                decoded.append(byte)
                index += 1
            }
        }
        throw malformed("string is missing its closing '\"'", at: start)
    }

    /// Decodes one escape sequence; `index` is at the backslash.
    private mutating func parseEscape(into decoded: inout [UInt8]) throws(JSONParseError) {
        let start = index
        guard index + 1 < bytes.count else { throw endOfDocument() }
        let simple: UInt8?
        switch bytes[index + 1] {
        case UInt8(ascii: "\""): simple = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): simple = UInt8(ascii: "\\")
        case UInt8(ascii: "/"): simple = UInt8(ascii: "/")
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"): simple = nil
        default: throw malformed("invalid escape sequence", at: start)
        }
        if let simple {
            decoded.append(simple)
            index += 2
            return
        }
        guard let unit = hex4(at: index + 2) else { throw malformed("invalid \\u escape", at: start) }
        index += 6
        var scalar = UInt32(unit)
        if (0xD800...0xDBFF).contains(unit) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                let low = hex4(at: index + 2), (0xDC00...0xDFFF).contains(low)
            else { throw malformed("\\u escape is an unpaired surrogate", at: start) }
            index += 6
            scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(unit) {
            throw malformed("\\u escape is an unpaired surrogate", at: start)
        }
        // Every value outside the surrogate range is a scalar.
        decoded.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
    }

    private func hex4(at position: Int) -> UInt16? {
        guard position + 4 <= bytes.count else { return nil }
        var value: UInt16 = 0
        for byte in bytes[position..<position + 4] {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    ///
    /// Without a fraction or an exponent, and within 64 bits, the number is an integer.
    private mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = index
        var isInteger = true
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw malformed("invalid number", at: start) }
        index += 1
        if first == UInt8(ascii: "0") {
            if let next = peek(), isDigit(next) { throw malformed("a number cannot have a leading zero", at: start) }
        } else {
            skipDigits()
        }
        if peek() == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let digit = peek(), isDigit(digit) else { throw malformed("invalid number", at: start) }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), isDigit(digit) else { throw malformed("invalid number", at: start) }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isInteger, let integer = Int64(text) {
            return JSONNumber(integer)
        }
        guard let double = Double(text), let number = JSONNumber(double) else {
            throw malformed("number is out of range", at: start)
        }
        return number
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(JSONParseError) {
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard index + expected.count <= bytes.count, bytes[index..<index + expected.count].elementsEqual(expected)
        else { throw malformed("expected a value", at: index) }
        index += expected.count
    }

    // MARK: UTF-8

    /// The offset of the first byte that does not start or continue a well-formed UTF-8
    /// sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
    static func firstInvalidUTF8(in bytes: [UInt8]) -> Int? {
        var position = 0
        while position < bytes.count {
            let lead = bytes[position]
            if lead < 0x80 {
                position += 1
                continue
            }
            // The second byte's range excludes overlong forms (E0, F0), surrogates (ED) and
            // values above U+10FFFF (F4).
            let (length, secondRange): (Int, ClosedRange<UInt8>)
            switch lead {
            case 0xC2...0xDF: (length, secondRange) = (2, 0x80...0xBF)
            case 0xE0: (length, secondRange) = (3, 0xA0...0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (length, secondRange) = (3, 0x80...0xBF)
            case 0xED: (length, secondRange) = (3, 0x80...0x9F)
            case 0xF0: (length, secondRange) = (4, 0x90...0xBF)
            case 0xF1...0xF3: (length, secondRange) = (4, 0x80...0xBF)
            case 0xF4: (length, secondRange) = (4, 0x80...0x8F)
            default: return position
            }
            guard position + length <= bytes.count, secondRange.contains(bytes[position + 1]) else { return position }
            for offset in 2..<length where !(0x80...0xBF).contains(bytes[position + offset]) {
                return position
            }
            position += length
        }
        return nil
    }

    // MARK: Helpers

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { index += 1 }
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    private func malformed(_ message: String, at offset: Int) -> JSONParseError {
        JSONParseError(code: .malformed, message: message, offset: offset)
    }

    private func endOfDocument() -> JSONParseError {
        malformed("unexpected end of the document", at: bytes.count)
    }

    private func tooDeep() -> JSONParseError {
        JSONParseError(
            code: .tooDeep,
            message: "objects and arrays are nested more than \(maximumDepth) deep",
            offset: index
        )
    }
}
