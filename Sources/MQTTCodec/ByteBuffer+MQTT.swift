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

    @inlinable
    @discardableResult
    mutating func writeMQTTVariableInteger(_ value: Int) -> Int {
        precondition(value >= 0 && value <= 268_435_455, "variable byte integer out of range")
        var remaining = value
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

    @inlinable
    mutating func writeMQTTString(_ string: String) {
        writeInteger(UInt16(string.utf8.count))
        writeString(string)
    }

    @inlinable
    mutating func writeMQTTBinary(_ data: ByteBuffer) {
        writeInteger(UInt16(data.readableBytes))
        writeImmutableBuffer(data)
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

    @inlinable
    static func string(_ value: String) -> Int { 2 + value.utf8.count }
}
