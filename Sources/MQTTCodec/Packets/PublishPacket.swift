import NIOCore

/// PUBLISH, spec section 3.3. The topic may be empty in MQTT 5 when a topic alias stands for it.
public struct PublishPacket: Sendable, Hashable {
    public var dup: Bool
    public var qos: MQTTQoS
    public var retain: Bool
    public var topic: String
    /// Present exactly when `qos` > 0.
    public var packetId: UInt16?
    public var properties: MQTTProperties
    public var payload: ByteBuffer

    public init(
        dup: Bool = false, qos: MQTTQoS = .atMostOnce, retain: Bool = false, topic: String, packetId: UInt16? = nil,
        properties: MQTTProperties = .init(), payload: ByteBuffer
    ) {
        self.dup = dup
        self.qos = qos
        self.retain = retain
        self.topic = topic
        self.packetId = packetId
        self.properties = properties
        self.payload = payload
    }

    static func decode(flags: UInt8, from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> PublishPacket {
        let dup = flags & 0x08 != 0
        // [MQTT-3.3.1-4] QoS 3 is malformed.
        guard let qos = MQTTQoS(rawValue: (flags >> 1) & 0x03) else { throw MQTTCodecError.malformed("PUBLISH with QoS 3") }
        // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
        guard !(dup && qos == .atMostOnce) else { throw MQTTCodecError.malformed("PUBLISH QoS 0 with DUP set") }
        let retain = flags & 0x01 != 0
        let topic = try buffer.readMQTTString()
        // [MQTT-3.3.2-2] No wildcards in a topic name.
        if topic.utf8.contains(UInt8(ascii: "+")) || topic.utf8.contains(UInt8(ascii: "#")) {
            throw MQTTCodecError.malformed("PUBLISH topic contains a wildcard")
        }
        if topic.isEmpty && version == .v311 { throw MQTTCodecError.malformed("PUBLISH topic is empty") }
        var packetId: UInt16?
        if qos != .atMostOnce {
            let id = try buffer.readMQTTUInt16()
            // [MQTT-2.2.1-3] A packet identifier is non-zero.
            guard id != 0 else { throw MQTTCodecError.malformed("PUBLISH packet identifier 0") }
            packetId = id
        }
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .publish) : MQTTProperties()
        // [MQTT-3.3.4-6] A client never sends a subscription identifier; the decoder is symmetric,
        // so the broker checks that.
        let payload = buffer.readSlice(length: buffer.readableBytes)!
        if properties.payloadFormatIndicator == 1 {
            // [MQTT-3.3.2-4] A payload declared as UTF-8 must be UTF-8.
            if (try? payload.validatedMQTTString()) == nil && payload.readableBytes > 0 {
                throw MQTTCodecError(.payloadFormatInvalid, "payload is not valid UTF-8 but the payload format indicator says it is")
            }
        }
        return PublishPacket(dup: dup, qos: qos, retain: retain, topic: topic, packetId: packetId, properties: properties,
                             payload: payload)
    }

    /// The remaining length of this packet when encoded for `version`.
    public func remainingLength(version: MQTTProtocolVersion) -> Int {
        var length = MQTTSize.string(topic) + payload.readableBytes
        if qos != .atMostOnce { length += 2 }
        if version == .v5 { length += properties.encodedSectionLength }
        return length
    }

    /// The size of the whole encoded packet, fixed header included.
    public func encodedSize(version: MQTTProtocolVersion) -> Int {
        let remaining = remainingLength(version: version)
        return 1 + MQTTSize.variableInteger(remaining) + remaining
    }

    /// Writes the packet straight into `buffer`, with no intermediate copy of the body.
    public func encode(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        var flags: UInt8 = 0x30 | (qos.rawValue << 1)
        if dup { flags |= 0x08 }
        if retain { flags |= 0x01 }
        buffer.writeInteger(flags)
        buffer.writeMQTTVariableInteger(remainingLength(version: version))
        buffer.writeMQTTString(topic)
        if qos != .atMostOnce { buffer.writeInteger(packetId ?? 0) }
        if version == .v5 { properties.write(to: &buffer) }
        buffer.writeImmutableBuffer(payload)
    }
}
