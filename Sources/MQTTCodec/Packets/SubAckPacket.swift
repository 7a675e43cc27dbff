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
        let allowed = version == .v5 ? Self.v5Codes : Self.v311Codes
        while buffer.readableBytes > 0 {
            let code = try buffer.readMQTTByte()
            // [MQTT-3.9.3-2] (3.1.1) and MQTT 5 table 3.9.3: other values are reserved.
            guard allowed.contains(code) else {
                throw MQTTCodecError.malformed("SUBACK reason code 0x\(String(code, radix: 16)) is reserved")
            }
            codes.append(ReasonCode(code))
        }
        return SubAckPacket(packetId: id, reasonCodes: codes, properties: properties)
    }

    static let v311Codes: Set<UInt8> = [0x00, 0x01, 0x02, 0x80]
    static let v5Codes: Set<UInt8> = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2]

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        if version == .v5 { properties.write(to: &buffer) }
        for code in reasonCodes {
            // 3.1.1 knows only "Failure" (0x80) for a refused filter.
            buffer.writeInteger(version == .v5 || !code.isFailure ? code.rawValue : 0x80)
        }
    }
}
