import NIOCore

/// SUBACK, spec section 3.9. In 3.1.1 the codes are 0x00-0x02 and 0x80.
public struct SubAckPacket: Sendable, Hashable {
    public var packetId: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: MQTTProperties

    public init(packetId: UInt16, reasonCodes: [ReasonCode], properties: MQTTProperties = .init()) {
        self.packetId = packetId
        self.reasonCodes = reasonCodes
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> SubAckPacket {
        let id = try buffer.readMQTTUInt16()
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .suback) : MQTTProperties()
        var codes: [ReasonCode] = []
        while buffer.readableBytes > 0 { codes.append(ReasonCode(try buffer.readMQTTByte())) }
        return SubAckPacket(packetId: id, reasonCodes: codes, properties: properties)
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        if version == .v5 { properties.write(to: &buffer) }
        for code in reasonCodes {
            // 3.1.1 knows only "Failure" (0x80) for a refused filter.
            buffer.writeInteger(version == .v5 || !code.isFailure ? code.rawValue : 0x80)
        }
    }
}
