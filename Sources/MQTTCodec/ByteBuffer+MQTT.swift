import NIOCore

/// The MQTT data representations of spec section 1.5, read and written on a `ByteBuffer`.
/// Readers throw ``MQTTCodecError`` when the packet body ends early or holds an invalid value;
/// they are only ever called on a body whose full length is known to be present.
extension ByteBuffer {
    @inlinable
    mutating func readMQTTByte() throws -> UInt8 {
        guard let value = readInteger(as: UInt8.self) else { throw MQTTCodecError.malformed("packet ends early") }
        return value
    }

    @inlinable
    mutating func readMQTTUInt16() throws -> UInt16 {
        guard let value = readInteger(as: UInt16.self) else { throw MQTTCodecError.malformed("packet ends early") }
        return value
    }

    @inlinable
    mutating func readMQTTUInt32() throws -> UInt32 {
        guard let value = readInteger(as: UInt32.self) else { throw MQTTCodecError.malformed("packet ends early") }
        return value
    }

    /// [MQTT-1.5.5] Variable Byte Integer: at most 4 bytes.
    mutating func readMQTTVariableInteger() throws -> Int {
        var value = 0
        var multiplier = 1
        for index in 0..<4 {
            let byte = try readMQTTByte()
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                if index > 0 && byte == 0 { throw MQTTCodecError.malformed("variable byte integer is not minimal") }
                return value
            }
            multiplier *= 128
        }
        throw MQTTCodecError.malformed("variable byte integer longer than 4 bytes")
    }

    /// [MQTT-1.5.4] UTF-8 string: valid UTF-8, no U+0000, no surrogates (Swift's validation
    /// rejects those already).
    mutating func readMQTTString() throws -> String {
        let length = Int(try readMQTTUInt16())
        guard let view = readSlice(length: length) else { throw MQTTCodecError.malformed("string longer than packet") }
        return try view.validatedMQTTString()
    }

    mutating func readMQTTBinary() throws -> ByteBuffer {
        let length = Int(try readMQTTUInt16())
        guard let slice = readSlice(length: length) else { throw MQTTCodecError.malformed("binary data longer than packet") }
        return slice
    }

    func validatedMQTTString() throws -> String {
        let string: String? = withUnsafeReadableBytes { bytes in
            if bytes.contains(0) { return nil }
            return String(validating: bytes, as: UTF8.self)
        }
        guard let string else { throw MQTTCodecError.malformed("string is not valid UTF-8 or contains U+0000") }
        return string
    }

    /// Values outside 0...268 435 455 are clamped, never trapped on: encoders check the
    /// remaining length of what they build (``PublishPacket`` does) before they write it.
    @inlinable
    @discardableResult
    mutating func writeMQTTVariableInteger(_ value: Int) -> Int {
        var remaining = min(max(value, 0), MQTTSize.maxVariableInteger)
        var written = 0
        repeat {
            var byte = UInt8(remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { byte |= 0x80 }
            writeInteger(byte)
            written += 1
        } while remaining > 0
        return written
    }

    /// A string longer than 65 535 bytes is cut at the last whole character that fits, exactly
    /// as ``MQTTSize/string(_:)`` counts it, so that the lengths written before stay true.
    @inlinable
    mutating func writeMQTTString(_ string: String) {
        let length = MQTTSize.clippedStringLength(string)
        writeInteger(UInt16(truncatingIfNeeded: length))
        if length == string.utf8.count {
            writeString(string)
        } else {
            writeBytes(string.utf8.prefix(length))
        }
    }

    /// Binary data longer than 65 535 bytes is cut to 65 535, as ``MQTTSize/binary(_:)`` counts it.
    @inlinable
    mutating func writeMQTTBinary(_ data: ByteBuffer) {
        let length = min(data.readableBytes, MQTTSize.maxString)
        writeInteger(UInt16(truncatingIfNeeded: length))
        if length == data.readableBytes {
            writeImmutableBuffer(data)
        } else if let slice = data.getSlice(at: data.readerIndex, length: length) {
            writeImmutableBuffer(slice)
        }
    }
}

/// Sizes of encoded values, so that encoders can write a fixed header before the body.
@usableFromInline
enum MQTTSize {
    @inlinable
    static func variableInteger(_ value: Int) -> Int {
        switch value {
        case ..<128: return 1
        case ..<16_384: return 2
        case ..<2_097_152: return 3
        default: return 4
        }
    }

    /// The largest UTF-8 string or binary value: its length is two bytes.
    public static let maxString = 65_535
    public static let maxVariableInteger = 268_435_455

    @inlinable
    static func string(_ value: String) -> Int { 2 + clippedStringLength(value) }

    @inlinable
    static func binary(_ value: ByteBuffer) -> Int { 2 + min(value.readableBytes, maxString) }

    /// The bytes of `value` that an MQTT string holds: all of them, or, past 65 535, those up to
    /// the last character boundary that fits.
    @inlinable
    static func clippedStringLength(_ value: String) -> Int {
        let utf8 = value.utf8
        let count = utf8.count
        guard count > maxString else { return count }
        return clippedUTF8Length(utf8, limit: maxString)
    }

    /// The length of the longest prefix of `utf8` of at most `limit` bytes that ends on a
    /// character boundary (never inside a multi-byte sequence).
    @inlinable
    static func clippedUTF8Length(_ utf8: String.UTF8View, limit: Int) -> Int {
        guard utf8.count > limit else { return utf8.count }
        guard limit > 0 else { return 0 }
        var end = limit
        // A continuation byte (10xxxxxx) at the cut means the cut falls inside a character.
        let bytes = Array(utf8.prefix(limit + 1))
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return end
    }
}

extension String {
    /// At most `maxBytes` bytes of the string, cut at a character boundary, with "…" when cut.
    /// Reason strings and logs quote client input through this, never whole.
    public func clipped(toBytes maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        // "…" takes 3 bytes; a limit too small for it gets the bare prefix.
        let ellipsis = maxBytes >= 3
        let length = MQTTSize.clippedUTF8Length(utf8, limit: max(0, ellipsis ? maxBytes - 3 : maxBytes))
        return String(decoding: utf8.prefix(length), as: UTF8.self) + (ellipsis ? "…" : "")
    }
}
