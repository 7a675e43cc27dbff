import NIOCore

/// DISCONNECT, spec section 3.14. In 3.1.1 it has no body.
public struct DisconnectPacket: Sendable, Hashable {
    public var reasonCode: ReasonCode
    public var properties: MQTTProperties

    public init(reasonCode: ReasonCode = .normalDisconnection, properties: MQTTProperties = .init()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    public init(reasonCode: ReasonCode, reasonString: String?) {
        var properties = MQTTProperties()
        properties.reasonString = reasonString
        self.init(reasonCode: reasonCode, properties: properties)
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> DisconnectPacket {
        var packet = DisconnectPacket()
        guard version == .v5, buffer.readableBytes > 0 else { return packet }
        packet.reasonCode = ReasonCode(try buffer.readMQTTByte())
        if buffer.readableBytes > 0 {
            packet.properties = try MQTTProperties.decode(from: &buffer, context: .disconnect)
        }
        return packet
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        guard version == .v5 else { return }
        if reasonCode == .normalDisconnection && properties.isEmpty { return }
        buffer.writeInteger(reasonCode.rawValue)
        properties.write(to: &buffer)
    }
}

/// AUTH, spec section 3.15 (MQTT 5 only).
public struct AuthPacket: Sendable, Hashable {
    public var reasonCode: ReasonCode
    public var properties: MQTTProperties

    public init(reasonCode: ReasonCode = .success, properties: MQTTProperties = .init()) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer) throws -> AuthPacket {
        var packet = AuthPacket()
        guard buffer.readableBytes > 0 else { return packet }
        packet.reasonCode = ReasonCode(try buffer.readMQTTByte())
        guard [0x00, 0x18, 0x19].contains(packet.reasonCode.rawValue) else {
            throw MQTTCodecError.malformed("AUTH reason code \(packet.reasonCode) is not allowed")
        }
        if buffer.readableBytes > 0 {
            packet.properties = try MQTTProperties.decode(from: &buffer, context: .auth)
        }
        return packet
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        if reasonCode == .success && properties.isEmpty { return }
        buffer.writeInteger(reasonCode.rawValue)
        properties.write(to: &buffer)
    }
}
