import NIOCore

/// CONNACK, spec section 3.2. In 3.1.1 the reason code is the return code (0x00 to 0x05).
public struct ConnAckPacket: Sendable, Hashable {
    public var sessionPresent: Bool
    public var reasonCode: ReasonCode
    public var properties: MQTTProperties

    public init(sessionPresent: Bool = false, reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> ConnAckPacket {
        let flags = try buffer.readMQTTByte()
        guard flags & 0xFE == 0 else { throw MQTTCodecError.malformed("CONNACK reserved flags set") }
        let code = ReasonCode(try buffer.readMQTTByte())
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .connack) : MQTTProperties()
        return ConnAckPacket(sessionPresent: flags & 1 == 1, reasonCode: code, properties: properties)
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(sessionPresent ? 1 : 0))
        buffer.writeInteger(reasonCode.rawValue)
        if version == .v5 { properties.write(to: &buffer) }
    }
}
