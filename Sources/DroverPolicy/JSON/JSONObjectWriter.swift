/// Writes one flat JSON object straight to UTF-8 bytes, for the records and answers written on
/// every call (a thing's record, CreateThing's answer), where Foundation's `JSONEncoder` spent
/// more time in its generic machinery than in the bytes.
///
/// The caller adds members in the order it wants them (the encoders' `sortedKeys` order, to
/// match what they wrote before); `nil` members are left out, as `Encodable` leaves out `nil`
/// optionals. Strings are escaped where JSON requires it (quote, backslash, control
/// characters); other characters are written as UTF-8. What it writes decodes with
/// `JSONDecoder` to the same values.
public struct JSONObjectWriter: Sendable {
    private var bytes: [UInt8]
    private var empty = true

    public init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// The object, closed.
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    public mutating func add(_ key: String, _ value: String?) {
        guard let value else { return }
        member(key)
        Self.write(string: value, to: &bytes)
    }

    public mutating func add(_ key: String, _ value: Int64) {
        member(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A finite number as `JSONEncoder` writes it (an integral value without `.0`); a value that
    /// is not finite, which JSON cannot hold, is written as `null`.
    public mutating func add(_ key: String, _ value: Double) {
        member(key)
        guard value.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    /// A string map as an object, its keys in UTF-8 byte order.
    public mutating func add(_ key: String, _ map: [String: String]) {
        member(key)
        bytes.append(UInt8(ascii: "{"))
        let keys = map.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for (position, name) in keys.enumerated() {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            Self.write(string: name, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            Self.write(string: map[name] ?? "", to: &bytes)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// Another writer's object, nested as this member's value (`nil` leaves the member out).
    public mutating func add(_ key: String, object: consuming JSONObjectWriter?) {
        guard let object else { return }
        member(key)
        bytes.append(contentsOf: object.finish())
    }

    private mutating func member(_ key: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        Self.write(string: key, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// The same escaping as the shadow service's serializer (`JSONValue.writeString` in
    /// DroverShadow): both modules are dependency-free by design, so each keeps its copy.
    static func write(string: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            // Runs that need no escape (nearly all of a PEM, an id, a name) are copied whole.
            var start = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                start = index + 1
                switch byte {
                case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                case 0x08: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
                case 0x0C: output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
                default:
                    output.append(contentsOf: "\\u00".utf8)
                    output.append(hexDigits[Int(byte >> 4)])
                    output.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        output.append(UInt8(ascii: "\""))
    }
}
