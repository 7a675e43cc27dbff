import NIOCore

/// SUBSCRIBE, spec section 3.8.
public struct SubscribePacket: Sendable, Hashable {
    public var packetId: UInt16
    public var subscriptions: [Subscription]
    public var properties: MQTTProperties

    public struct Subscription: Sendable, Hashable {
        public var filter: String
        public var options: SubscriptionOptions
        public init(filter: String, options: SubscriptionOptions) {
            self.filter = filter
            self.options = options
        }
    }

    public init(packetId: UInt16, subscriptions: [Subscription], properties: MQTTProperties = .init()) {
        self.packetId = packetId
        self.subscriptions = subscriptions
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> SubscribePacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTCodecError.malformed("SUBSCRIBE packet identifier 0") }
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .subscribe) : MQTTProperties()
        var subscriptions: [Subscription] = []
        while buffer.readableBytes > 0 {
            let filter = try buffer.readMQTTString()
            let byte = try buffer.readMQTTByte()
            subscriptions.append(.init(filter: filter, options: try SubscriptionOptions(byte: byte, version: version)))
        }
        // [MQTT-3.8.3-2] At least one subscription.
        guard !subscriptions.isEmpty else { throw MQTTCodecError.protocolError("SUBSCRIBE without a topic filter") }
        return SubscribePacket(packetId: id, subscriptions: subscriptions, properties: properties)
    }

    func encodeBody(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        buffer.writeInteger(packetId)
        if version == .v5 { properties.write(to: &buffer) }
        for subscription in subscriptions {
            buffer.writeMQTTString(subscription.filter)
            buffer.writeInteger(subscription.options.byte(version: version))
        }
    }
}

/// The options byte of a subscription (spec 3.8.3.1).
public struct SubscriptionOptions: Sendable, Hashable, Codable {
    public var qos: MQTTQoS
    public var noLocal: Bool
    public var retainAsPublished: Bool
    public var retainHandling: RetainHandling

    public enum RetainHandling: UInt8, Sendable, Hashable, Codable {
        /// Send retained messages at the time of the subscribe.
        case sendOnSubscribe = 0
        /// Send retained messages only if the subscription did not exist.
        case sendOnNewSubscribe = 1
        /// Do not send retained messages.
        case doNotSend = 2
    }

    public init(qos: MQTTQoS, noLocal: Bool = false, retainAsPublished: Bool = false, retainHandling: RetainHandling = .sendOnSubscribe) {
        self.qos = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling
    }

    init(byte: UInt8, version: MQTTProtocolVersion) throws {
        guard let qos = MQTTQoS(rawValue: byte & 0x03) else { throw MQTTCodecError.malformed("subscription QoS 3") }
        switch version {
        case .v311:
            // [MQTT-3-8.3-4] Upper bits are reserved in 3.1.1.
            guard byte & 0xFC == 0 else { throw MQTTCodecError.malformed("reserved subscription option bits set") }
            self.init(qos: qos)
        case .v5:
            // [MQTT-3.8.3-5] Bits 6 and 7 are reserved.
            guard byte & 0xC0 == 0 else { throw MQTTCodecError.malformed("reserved subscription option bits set") }
            guard let handling = RetainHandling(rawValue: (byte >> 4) & 0x03) else {
                throw MQTTCodecError.protocolError("retain handling 3")
            }
            self.init(qos: qos, noLocal: byte & 0x04 != 0, retainAsPublished: byte & 0x08 != 0, retainHandling: handling)
        }
    }

    func byte(version: MQTTProtocolVersion) -> UInt8 {
        var byte = qos.rawValue
        if version == .v5 {
            if noLocal { byte |= 0x04 }
            if retainAsPublished { byte |= 0x08 }
            byte |= retainHandling.rawValue << 4
        }
        return byte
    }
}
