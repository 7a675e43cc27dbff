/// A strict RFC 8259 parser over UTF-8 bytes that keeps the offset of every value.
///
/// It refuses what AWS refuses and what lenient parsers let through: trailing commas, comments,
/// unescaped control characters, lone surrogates, and duplicate member names (which would make
/// "which `Effect` counts?" a matter of implementation). Nesting is bounded, so a hostile
/// document cannot exhaust the stack.
struct JSONParser {
    static let maximumDepth = 32

    private let bytes: [UInt8]
    private var index = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Parses one value that must fill the whole input (whitespace aside).
    mutating func parseDocument() throws(SourceError) -> JSONValue {
        // A byte order mark is not JSON, but editors on some systems write one.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        guard index < bytes.count else { throw syntaxError("the document is empty", at: index) }
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard index == bytes.count else {
            throw syntaxError("unexpected \(describe(at: index)) after the end of the document", at: index)
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue(depth: Int) throws(SourceError) -> JSONValue {
        guard index < bytes.count else { throw endOfDocument() }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["):
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return JSONValue(kind: .string(try parseString()), offset: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try parseNumber()
            return JSONValue(kind: .number, offset: start)
        case UInt8(ascii: "t"):
            try parseLiteral("true")
            return JSONValue(kind: .bool(true), offset: start)
        case UInt8(ascii: "f"):
            try parseLiteral("false")
            return JSONValue(kind: .bool(false), offset: start)
        case UInt8(ascii: "n"):
            try parseLiteral("null")
            return JSONValue(kind: .null, offset: start)
        default:
            throw syntaxError("expected a value, found \(describe(at: index))", at: index)
        }
    }

    private mutating func parseObject(depth: Int) throws(SourceError) -> JSONValue {
        let start = index
        guard depth <= Self.maximumDepth else { throw syntaxError("the document is nested too deeply", at: start) }
        index += 1  // {
        var members: [JSONMember] = []
        var names: Set<String> = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return JSONValue(kind: .object(members), offset: start)
        }
        var comma: Int? = nil
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            guard bytes[index] == UInt8(ascii: "\"") else {
                if let comma, bytes[index] == UInt8(ascii: "}") {
                    throw syntaxError("trailing comma before '}'", at: comma)
                }
                throw syntaxError("expected a member name in double quotes", at: index)
            }
            let key = try parseString()
            guard names.insert(key.value).inserted else {
                throw SourceError(.invalidPolicy, "duplicate key \"\(key.value)\"", at: key.offset)
            }
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            guard bytes[index] == UInt8(ascii: ":") else {
                throw syntaxError("expected ':' after \"\(key.value)\"", at: index)
            }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(JSONMember(key: key, value: value))
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            switch bytes[index] {
            case UInt8(ascii: ","):
                comma = index
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                return JSONValue(kind: .object(members), offset: start)
            default:
                throw syntaxError("expected ',' or '}'", at: index)
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(SourceError) -> JSONValue {
        let start = index
        guard depth <= Self.maximumDepth else { throw syntaxError("the document is nested too deeply", at: start) }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return JSONValue(kind: .array(elements), offset: start)
        }
        var comma: Int? = nil
        while true {
            skipWhitespace()
            if let comma, peek() == UInt8(ascii: "]") {
                throw syntaxError("trailing comma before ']'", at: comma)
            }
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < bytes.count else { throw endOfDocument() }
            switch bytes[index] {
            case UInt8(ascii: ","):
                comma = index
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return JSONValue(kind: .array(elements), offset: start)
            default:
                throw syntaxError("expected ',' or ']'", at: index)
            }
        }
    }

    private mutating func parseString() throws(SourceError) -> JSONString {
        let start = index
        index += 1  // "
        var decoded: [UInt8] = []
        var hasEscapes = false
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return JSONString(
                    value: String(decoding: decoded, as: UTF8.self),
                    offset: start,
                    hasEscapes: hasEscapes
                )
            case UInt8(ascii: "\\"):
                hasEscapes = true
                try parseEscape(into: &decoded)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                // JSON strings cannot span lines, so the quote that closes this one is missing.
                throw syntaxError("string is missing its closing '\"'", at: start)
            case 0..<0x20:
                throw syntaxError("control character \(describe(at: index)) must be escaped in a string", at: index)
            default:
                decoded.append(byte)
                index += 1
            }
        }
        throw syntaxError("string is missing its closing '\"'", at: start)
    }

    /// Decodes one escape sequence; `index` is at the backslash.
    private mutating func parseEscape(into decoded: inout [UInt8]) throws(SourceError) {
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
        default:
            throw syntaxError("invalid escape sequence '\\\(describeBare(at: index + 1))'", at: start)
        }
        if let simple {
            decoded.append(simple)
            index += 2
            return
        }
        guard let unit = hex4(at: index + 2) else { throw syntaxError("invalid \\u escape", at: start) }
        index += 6
        var scalarValue = UInt32(unit)
        if (0xD800...0xDBFF).contains(unit) {
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                let low = hex4(at: index + 2), (0xDC00...0xDFFF).contains(low)
            else { throw syntaxError("\\u escape is an unpaired surrogate", at: start) }
            index += 6
            scalarValue = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(unit) {
            throw syntaxError("\\u escape is an unpaired surrogate", at: start)
        }
        // Every value outside the surrogate range is a valid scalar.
        decoded.append(contentsOf: UTF8.encode(Unicode.Scalar(scalarValue)!)!)
    }

    private func hex4(at position: Int) -> UInt16? {
        Self.hex4(in: bytes, at: position)
    }

    private static func hex4(in bytes: [UInt8], at position: Int) -> UInt16? {
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
    private mutating func parseNumber() throws(SourceError) {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw syntaxError("invalid number", at: start) }
        index += 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let digit = peek(), isDigit(digit) else { throw syntaxError("invalid number", at: start) }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), isDigit(digit) else { throw syntaxError("invalid number", at: start) }
            skipDigits()
        }
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(SourceError) {
        let start = index
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard index + expected.count <= bytes.count, bytes[index..<index + expected.count].elementsEqual(expected)
        else {
            throw syntaxError("expected a value, found \(describe(at: start))", at: start)
        }
        index += expected.count
    }

    // MARK: Positions

    /// The source offset of a byte offset inside a decoded string.
    ///
    /// Resource patterns are compiled from decoded text, but an unknown variable must be reported
    /// where it was written, so this replays the escapes between the opening quote and the
    /// position.
    static func sourceOffset(of decodedOffset: Int, in string: JSONString, source: [UInt8]) -> Int {
        var position = string.offset + 1
        guard string.hasEscapes else { return position + decodedOffset }
        var decoded = 0
        while decoded < decodedOffset, position < source.count {
            guard source[position] == UInt8(ascii: "\\"), position + 1 < source.count else {
                decoded += 1
                position += 1
                continue
            }
            guard source[position + 1] == UInt8(ascii: "u") else {
                decoded += 1
                position += 2
                continue
            }
            let unit = hex4(in: source, at: position + 2) ?? 0
            switch unit {
            case 0..<0x80: decoded += 1
            case 0x80..<0x800: decoded += 2
            case 0xD800...0xDBFF:
                decoded += 4
                position += 6  // the low surrogate's escape
            default: decoded += 3
            }
            position += 6
        }
        return position
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

    private func syntaxError(_ message: String, at offset: Int) -> SourceError {
        SourceError(.malformedJSON, message, at: offset)
    }

    private func endOfDocument() -> SourceError {
        syntaxError("unexpected end of the document", at: bytes.count)
    }

    /// Names the character at `position` for a message: `'x'`, `U+0009`, or the end.
    private func describe(at position: Int) -> String {
        guard position < bytes.count else { return "end of the document" }
        let scalar = scalar(at: position)
        if scalar.value < 0x20 || scalar.value == 0x7F {
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        return "'\(Character(scalar))'"
    }

    private func describeBare(at position: Int) -> String {
        guard position < bytes.count else { return "" }
        return String(Character(scalar(at: position)))
    }

    private func scalar(at position: Int) -> Unicode.Scalar {
        let lead = bytes[position]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        let end = min(position + length, bytes.count)
        return String(decoding: bytes[position..<end], as: UTF8.self).unicodeScalars.first ?? "\u{FFFD}"
    }
}
