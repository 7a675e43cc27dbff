import NIOCore

/// PUBACK, PUBREC, PUBREL and PUBCOMP (spec sections 3.4 to 3.7) share one shape:
/// a packet identifier, and in MQTT 5 a reason code and properties that may be omitted.
public struct PublishAckPacket: Sendable, Hashable {
    public var packetId: UInt16
    public var reasonCode: ReasonCode
    public var properties: MQTTProperties

    public init(packetId: UInt16, reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
        self.packetId = packetId
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion, context: PropertyContext) throws -> PublishAckPacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTCodecError.malformed("packet identifier 0") }
        var packet = PublishAckPacket(packetId: id)
        if version == .v5 && buffer.readableBytes > 0 {
            packet.reasonCode = ReasonCode(try buffer.readMQTTByte())
            if buffer.readableBytes > 0 {
                packet.properties = try MQTTProperties.decode(from: &buffer, context: context)
            }
        }
        return packet
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        guard version == .v5 else { return }
        // [MQTT-3.4.2.1] The reason code and properties may be left out when they say nothing.
        if reasonCode == .success && properties.isEmpty { return }
        buffer.writeInteger(reasonCode.rawValue)
        if !properties.isEmpty { properties.write(to: &buffer) }
    }
}
