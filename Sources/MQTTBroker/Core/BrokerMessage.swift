import MQTTCodec
import NIOCore

/// An application message as the broker routes it: immutable and shared by every subscriber
/// that receives it, so fan-out costs one reference per subscriber and not a copy.
public final class BrokerMessage: Sendable {
    public let topic: String
    public let payload: ByteBuffer
    public let qos: MQTTQoS
    public let retain: Bool
    /// Payload format, content type, response topic, correlation data, user properties and
    /// message expiry. Topic alias and subscription identifiers are per delivery, never here.
    public let properties: MQTTProperties
    /// When the Message Expiry Interval runs out, in uptime nanoseconds; nil if it never does.
    public let expiresAt: NIODeadline?
    /// The client id of the publisher, for No Local; nil for messages the broker makes itself.
    public let publisherId: String?
    /// Whether `properties` has anything to send, so delivery can skip copying them.
    let hasProperties: Bool

    public init(
        topic: String, payload: ByteBuffer, qos: MQTTQoS, retain: Bool, properties: MQTTProperties = .init(),
        expiresAt: NIODeadline? = nil, publisherId: String? = nil
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        // Only the properties that travel with the message [MQTT-3.3.2-*]; the will's delay, a topic
        // alias or subscription identifiers belong to one connection or packet.
        var kept = MQTTProperties()
        kept.payloadFormatIndicator = properties.payloadFormatIndicator
        kept.contentType = properties.contentType
        kept.responseTopic = properties.responseTopic
        kept.correlationData = properties.correlationData
        kept.userProperties = properties.userProperties
        let properties = kept
        self.properties = properties
        self.hasProperties = !properties.isEmpty
        self.expiresAt = expiresAt
        self.publisherId = publisherId
    }

    /// Makes a message from a PUBLISH, starting its expiry clock at `now`.
    public convenience init(publish: PublishPacket, topic: String, publisherId: String?, now: NIODeadline) {
        let expiresAt = publish.properties.messageExpiryInterval.map { now + .seconds(Int64($0)) }
        self.init(topic: topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                  properties: publish.properties, expiresAt: expiresAt, publisherId: publisherId)
    }

    public func isExpired(at now: NIODeadline) -> Bool {
        guard let expiresAt else { return false }
        return expiresAt <= now
    }

    /// The remaining lifetime in whole seconds, rounded up, as sent in Message Expiry Interval.
    public func remainingExpiry(at now: NIODeadline) -> UInt32? {
        guard let expiresAt else { return nil }
        let nanos = (expiresAt - now).nanoseconds
        if nanos <= 0 { return 0 }
        return UInt32(min(Int64(UInt32.max), (nanos + 999_999_999) / 1_000_000_000))
    }
}
