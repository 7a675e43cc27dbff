import CoreMetrics
import MQTTCodec

/// The broker's metrics. Labels are bounded: QoS, listener and drop reason, never a client id.
public final class BrokerMetrics: Sendable {
    public enum DropReason: String, Sendable, CaseIterable {
        /// The session's queue was full.
        case queueFull = "queue_full"
        /// The Message Expiry Interval ran out while queued.
        case expired
        /// The message is larger than the subscriber's Maximum Packet Size.
        case packetTooLarge = "packet_too_large"
        /// The subscriber may not receive from the topic.
        case notAuthorized = "not_authorized"
    }

    let received: [Counter]
    let sent: [Counter]
    let bytesReceived: Counter
    let bytesSent: Counter
    let payloadReceived: [Counter]
    let payloadSent: [Counter]
    let dropped: [DropReason: Counter]
    let connections: [String: Meter]
    let sessions: Gauge
    let subscriptions: Gauge
    let retained: Gauge
    let quotaExceeded: Counter
    let queuedMessages: Gauge
    let queuedBytes: Gauge
    let limitHits: [BrokerLimit: Counter]
    /// Messages withheld by authorization: at delivery (`iot:Receive`), and wills refused.
    let willsRefused: Counter

    public init(factory: any MetricsFactory, listeners: [String] = ["mqtt", "mqtts", "ws"]) {
        received = (0...2).map {
            Counter(label: "drover_mqtt_messages_received_total", dimensions: [("qos", "\($0)")], factory: factory)
        }
        sent = (0...2).map {
            Counter(label: "drover_mqtt_messages_sent_total", dimensions: [("qos", "\($0)")], factory: factory)
        }
        payloadReceived = (0...2).map {
            Counter(label: "drover_mqtt_payload_bytes_received_total", dimensions: [("qos", "\($0)")], factory: factory)
        }
        payloadSent = (0...2).map {
            Counter(label: "drover_mqtt_payload_bytes_sent_total", dimensions: [("qos", "\($0)")], factory: factory)
        }
        bytesReceived = Counter(label: "drover_mqtt_bytes_received_total", factory: factory)
        bytesSent = Counter(label: "drover_mqtt_bytes_sent_total", factory: factory)
        var dropped: [DropReason: Counter] = [:]
        for reason in DropReason.allCases {
            dropped[reason] = Counter(
                label: "drover_mqtt_messages_dropped_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.dropped = dropped
        var connections: [String: Meter] = [:]
        for listener in listeners {
            connections[listener] = Meter(
                label: "drover_mqtt_connections", dimensions: [("listener", listener)], factory: factory)
        }
        self.connections = connections
        sessions = Gauge(label: "drover_mqtt_sessions", factory: factory)
        subscriptions = Gauge(label: "drover_mqtt_subscriptions", factory: factory)
        retained = Gauge(label: "drover_mqtt_retained_messages", factory: factory)
        quotaExceeded = Counter(
            label: "drover_mqtt_publishes_refused_total", dimensions: [("reason", "quota_exceeded")], factory: factory)
        queuedMessages = Gauge(label: "drover_mqtt_queued_messages", factory: factory)
        queuedBytes = Gauge(label: "drover_mqtt_queued_bytes", factory: factory)
        var limitHits: [BrokerLimit: Counter] = [:]
        for limit in BrokerLimit.allCases {
            limitHits[limit] = Counter(
                label: "drover_mqtt_limit_hits_total", dimensions: [("limit", limit.rawValue)], factory: factory)
        }
        self.limitHits = limitHits
        willsRefused = Counter(label: "drover_mqtt_wills_refused_total", factory: factory)
    }

    /// A client ran into one of the configured limits.
    public func limitHit(_ limit: BrokerLimit) { limitHits[limit]?.increment() }

    /// Metrics that go nowhere, for tests.
    public static func noop() -> BrokerMetrics { BrokerMetrics(factory: NOOPMetricsHandler.instance) }

    func messageReceived(_ qos: MQTTQoS, payload: Int) {
        received[Int(qos.rawValue)].increment()
        payloadReceived[Int(qos.rawValue)].increment(by: payload)
    }

    func messageSent(_ qos: MQTTQoS, payload: Int) {
        sent[Int(qos.rawValue)].increment()
        payloadSent[Int(qos.rawValue)].increment(by: payload)
    }
    func drop(_ reason: DropReason, count: Int = 1) { dropped[reason]?.increment(by: count) }
}
