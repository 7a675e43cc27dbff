import NIOCore

/// UNSUBSCRIBE, spec section 3.10.
public struct UnsubscribePacket: Sendable, Hashable {
    public var packetId: UInt16
    public var filters: [String]
    public var properties: MQTTProperties

    public init(packetId: UInt16, filters: [String], properties: MQTTProperties = .init()) {
        self.packetId = packetId
        self.filters = filters
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> UnsubscribePacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTCodecError.malformed("UNSUBSCRIBE packet identifier 0") }
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .unsubscribe) : MQTTProperties()
        var filters: [String] = []
        while buffer.readableBytes > 0 { filters.append(try buffer.readMQTTString()) }
        // [MQTT-3.10.3-2] At least one topic filter.
        guard !filters.isEmpty else { throw MQTTCodecError.protocolError("UNSUBSCRIBE without a topic filter") }
        return UnsubscribePacket(packetId: id, filters: filters, properties: properties)
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        if version == .v5 { properties.write(to: &buffer) }
        for filter in filters { buffer.writeMQTTString(filter) }
    }
}

/// UNSUBACK, spec section 3.11. MQTT 3.1.1 has no reason codes here.
public struct UnsubAckPacket: Sendable, Hashable {
    public var packetId: UInt16
    public var reasonCodes: [ReasonCode]
    public var properties: MQTTProperties

    public init(packetId: UInt16, reasonCodes: [ReasonCode] = [], properties: MQTTProperties = .init()) {
        self.packetId = packetId
        self.reasonCodes = reasonCodes
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> UnsubAckPacket {
        let id = try buffer.readMQTTUInt16()
        guard version == .v5 else { return UnsubAckPacket(packetId: id) }
        let properties = try MQTTProperties.decode(from: &buffer, context: .unsuback)
        var codes: [ReasonCode] = []
        while buffer.readableBytes > 0 { codes.append(ReasonCode(try buffer.readMQTTByte())) }
        return UnsubAckPacket(packetId: id, reasonCodes: codes, properties: properties)
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        guard version == .v5 else { return }
        properties.write(to: &buffer)
        for code in reasonCodes { buffer.writeInteger(code.rawValue) }
    }
}
