/// The limits and defaults of the broker. Every field has a default, and each one can be set from
/// the config file or the environment.
public struct BrokerConfiguration: Sendable, Hashable {
    /// The largest packet accepted, fixed header included; advertised in CONNACK. Default 1 MiB.
    public var maxPacketSize: Int = 1_048_576
    /// The bound of each session's outbound queue (messages waiting to be sent).
    public var maxQueuedMessages: Int = 1000
    /// The bound of each session's outbound queue in bytes (topic and payload).
    public var maxQueuedBytes: Int = 64 << 20
    /// The bound of all sessions' queues together, in messages and in bytes.
    public var maxTotalQueuedMessages: Int = 10_000_000
    public var maxTotalQueuedBytes: Int = 4 << 30
    /// Seconds between background sweeps that drop expired messages from offline sessions.
    public var purgeInterval: Double = 30
    /// Extra QoS 1/2 messages a connected subscriber's queue may hold beyond `maxQueuedMessages`
    /// while the publishers feeding it are paused: what they had already sent when they were
    /// told to stop. Beyond it, and for offline sessions beyond the limit, messages are dropped.
    public var maxQueuedOverflow: Int = 9000
    /// Our Receive Maximum: the QoS 1 and 2 publishes a client may have unacknowledged with us.
    public var receiveMaximum: UInt16 = 100
    /// Our Topic Alias Maximum for inbound aliases.
    public var topicAliasMaximum: UInt16 = 64
    /// The largest keep-alive a client may ask for, in seconds; larger ones are lowered through
    /// Server Keep Alive (MQTT 5) and enforced at this value.
    public var maxKeepAlive: UInt16 = 3600
    /// Seconds a new connection has to send CONNECT.
    public var connectTimeout: Double = 10
    /// The most connections at once, across listeners.
    public var maxConnections: Int = 100_000
    /// The largest Session Expiry Interval granted, in seconds.
    public var maxSessionExpiry: UInt32 = 7 * 24 * 3600
    /// Seconds given to clients to drain before a shutdown closes their connections.
    public var shutdownGracePeriod: Double = 2

    // MARK: Limits on what a client may ask for. Each one hit is counted in
    // `drover_mqtt_limit_hits_total{limit=...}` and answered with the reason code that fits.

    /// The longest client id, in bytes (AWS IoT: 128). Longer ones get CONNACK 0x85.
    public var maxClientIdLength: Int = 128
    /// The longest topic name or filter, in bytes (AWS IoT: 256; ours leaves room for named
    /// shadows with long names). PUBLISH gets 0x90, SUBSCRIBE 0x8F.
    public var maxTopicLength: Int = 1024
    /// The most levels (parts between `/`) of a topic name or filter.
    public var maxTopicLevels: Int = 64
    /// The most topic filters in one SUBSCRIBE (AWS IoT: 8); the ones after get 0x97.
    public var maxFiltersPerSubscribe: Int = 32
    /// The most subscriptions one session holds (AWS IoT: 50); new ones beyond get 0x97.
    public var maxSubscriptionsPerClient: Int = 256
    /// The most QoS 1/2 messages in flight to one client: the smaller of this and the client's
    /// Receive Maximum.
    public var maxInflightOutbound: Int = 100
    /// The most topic aliases we assign towards one client: the smaller of this and the
    /// client's Topic Alias Maximum.
    public var maxOutboundTopicAliases: Int = 64
    /// The longest reason string we send, in bytes; longer ones are cut.
    public var maxReasonStringLength: Int = 128
    /// The most user properties on one packet (a will counts on its own); more get 0x97 on
    /// PUBLISH and 0x95 on CONNECT.
    public var maxUserProperties: Int = 32
    /// The largest packet before CONNECT has been accepted (the CONNECT itself).
    public var maxConnectPacketSize: Int = 131_072
    /// The most connections at once that have not yet been accepted (no CONNACK yet); more are
    /// closed as they arrive.
    public var maxPendingConnections: Int = 1000
    /// The most retained messages in all, and set by one client id; new ones beyond get 0x97.
    public var maxRetainedMessages: Int = 100_000
    public var maxRetainedPerClient: Int = 1000
    /// The most QoS 2 messages received and not yet released (PUBREL) by one client. MQTT 5
    /// clients are held to our Receive Maximum already; this bounds MQTT 3.1.1 clients.
    public var maxUnreleasedQoS2: Int = 1000

    public init() {}
}

/// The limits that `drover_mqtt_limit_hits_total` counts, by label.
public enum BrokerLimit: String, Sendable, CaseIterable {
    case clientId = "client_id"
    case topicLength = "topic_length"
    case topicLevels = "topic_levels"
    case filtersPerSubscribe = "filters_per_subscribe"
    case subscriptionsPerClient = "subscriptions_per_client"
    case inflightOutbound = "inflight_outbound"
    case topicAliasesOutbound = "topic_aliases_outbound"
    case reasonString = "reason_string"
    case userProperties = "user_properties"
    case connectPacketSize = "connect_packet_size"
    case pendingConnections = "pending_connections"
    case retainedTotal = "retained_total"
    case retainedPerClient = "retained_per_client"
    case unreleasedQoS2 = "unreleased_qos2"
    case keepAlive = "keep_alive"
    case receiveMaximum = "receive_maximum"
    case packetSize = "packet_size"
}

/// What the broker knows about the listener a connection came in on.
public struct ListenerInfo: Sendable, Hashable {
    /// A name with bounded cardinality, used as a metric label: "mqtt", "mqtts", "ws".
    public var name: String
    /// Whether the listener is bound to a loopback address.
    public var isLoopback: Bool
    /// Whether anonymous clients may connect on this listener.
    public var allowAnonymous: Bool
    /// Whether they may from any peer address; otherwise only from loopback peers. Set when the
    /// operator allowed anonymous clients explicitly.
    public var anonymousFromAnyAddress: Bool

    public init(name: String, isLoopback: Bool, allowAnonymous: Bool, anonymousFromAnyAddress: Bool = false) {
        self.name = name
        self.isLoopback = isLoopback
        self.allowAnonymous = allowAnonymous
        self.anonymousFromAnyAddress = anonymousFromAnyAddress
    }
}
