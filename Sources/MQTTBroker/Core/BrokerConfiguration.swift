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

    public init() {}
}

/// What the broker knows about the listener a connection came in on.
public struct ListenerInfo: Sendable, Hashable {
    /// A name with bounded cardinality, used as a metric label: "mqtt", "mqtts", "ws".
    public var name: String
    /// Whether the listener is bound to a loopback address.
    public var isLoopback: Bool
    /// Whether anonymous clients may connect on this listener.
    public var allowAnonymous: Bool

    public init(name: String, isLoopback: Bool, allowAnonymous: Bool) {
        self.name = name
        self.isLoopback = isLoopback
        self.allowAnonymous = allowAnonymous
    }
}
