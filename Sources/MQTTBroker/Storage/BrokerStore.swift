import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// A message as it is stored: everything needed to deliver it after a restart.
public struct StoredMessage: Sendable, Hashable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: MQTTQoS
    public var retain: Bool
    public var properties: MQTTProperties
    /// Remaining Message Expiry, as wall-clock seconds since 1970, so it survives a restart.
    public var expiresAtEpochSeconds: Double?
    public var publisherId: String?

    public init(topic: String, payload: ByteBuffer, qos: MQTTQoS, retain: Bool, properties: MQTTProperties,
                expiresAtEpochSeconds: Double?, publisherId: String?) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiresAtEpochSeconds = expiresAtEpochSeconds
        self.publisherId = publisherId
    }
}

/// One subscription of a persistent session, as stored.
public struct StoredSubscription: Sendable, Hashable, Codable {
    public var filter: String
    public var options: SubscriptionOptions
    public var subscriptionIdentifier: Int?

    public init(filter: String, options: SubscriptionOptions, subscriptionIdentifier: Int?) {
        self.filter = filter
        self.options = options
        self.subscriptionIdentifier = subscriptionIdentifier
    }
}

/// A persistent session's own state (not its messages).
public struct StoredSession: Sendable, Hashable {
    public var clientId: String
    public var protocolVersion: MQTTProtocolVersion
    public var expiryInterval: UInt32
    public var subscriptions: [StoredSubscription]
    /// Inbound QoS 2 packet ids received and not yet released, so a resent PUBLISH is not routed twice.
    public var inboundQoS2: [UInt16]
    /// When the client went away (seconds since 1970); nil while connected. Expiry counts from here.
    public var disconnectedAt: Double?
    /// A will waiting for its delay, and when it is due (seconds since 1970).
    public var pendingWill: StoredMessage?
    public var willDueAt: Double?
    /// Who made the session; nil in sessions stored before owners were kept.
    public var owner: StoredSessionOwner?

    public init(clientId: String, protocolVersion: MQTTProtocolVersion, expiryInterval: UInt32,
                subscriptions: [StoredSubscription], inboundQoS2: [UInt16], disconnectedAt: Double? = nil,
                pendingWill: StoredMessage? = nil, willDueAt: Double? = nil, owner: StoredSessionOwner? = nil) {
        self.owner = owner
        self.clientId = clientId
        self.protocolVersion = protocolVersion
        self.expiryInterval = expiryInterval
        self.subscriptions = subscriptions
        self.inboundQoS2 = inboundQoS2
        self.disconnectedAt = disconnectedAt
        self.pendingWill = pendingWill
        self.willDueAt = willDueAt
    }
}

/// The principal a session belongs to, kept with it so that a restart does not lose who may
/// resume it and what its policies allow.
public struct StoredSessionOwner: Sendable, Hashable, Codable {
    /// The listener name ("mqtt", "mqtts", "ws").
    public var listener: String
    public var username: String?
    /// The certificate id on mutual TLS; nil when anonymous.
    public var principal: String?
    public var attributes: [String: String]

    public init(listener: String, username: String? = nil, principal: String? = nil, attributes: [String: String] = [:]) {
        self.listener = listener
        self.username = username
        self.principal = principal
        self.attributes = attributes
    }

    public init(_ identity: ClientIdentity) {
        self.init(listener: identity.listener.name, username: identity.username, principal: identity.principal,
                  attributes: identity.attributes)
    }
}

/// The state of an outbound message in a persistent session's queue.
public enum StoredDeliveryState: Sendable, Hashable {
    /// Not sent yet.
    case queued
    /// Sent with this packet id, waiting for PUBACK or PUBREC.
    case sent(packetId: UInt16)
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP.
    case released(packetId: UInt16)
}

/// A change to durable broker state. The broker emits these in order; a store applies them
/// atomically per batch.
public enum BrokerStoreChange: Sendable, Hashable {
    case putSession(StoredSession)
    case deleteSession(clientId: String)
    /// A QoS 1 or 2 message queued for a persistent session, under a sequence number that is
    /// unique and increasing within the session.
    case enqueue(clientId: String, sequence: UInt64, message: StoredMessage, qos: MQTTQoS, subscriptionIdentifiers: [Int])
    case updateDelivery(clientId: String, sequence: UInt64, state: StoredDeliveryState)
    case removeMessage(clientId: String, sequence: UInt64)
    case putRetained(StoredMessage)
    case deleteRetained(topic: String)
}

/// What a store holds when the broker starts.
public struct RecoveredBrokerState: Sendable {
    public struct QueuedMessage: Sendable, Hashable {
        public var sequence: UInt64
        public var message: StoredMessage
        public var qos: MQTTQoS
        public var subscriptionIdentifiers: [Int]
        public var state: StoredDeliveryState

        public init(sequence: UInt64, message: StoredMessage, qos: MQTTQoS, subscriptionIdentifiers: [Int],
                    state: StoredDeliveryState) {
            self.sequence = sequence
            self.message = message
            self.qos = qos
            self.subscriptionIdentifiers = subscriptionIdentifiers
            self.state = state
        }
    }

    public var sessions: [StoredSession] = []
    public var queues: [String: [QueuedMessage]] = [:]
    public var retained: [StoredMessage] = []

    public init() {}
}

/// The storage port of the broker. Implementations: ``InMemoryBrokerStore`` here, SQLite next.
///
/// `commit` may batch changes from many connections (group commit) and calls `completion` once
/// they are durable; the broker sends PUBACK/PUBREC only after that.
public protocol BrokerStore: Sendable {
    func recover() throws -> RecoveredBrokerState
    func commit(_ changes: [BrokerStoreChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void)
    /// Writes what is pending and closes; called once, after the broker has stopped.
    func close()
}

extension BrokerStore {
    public func close() {}
}

/// Keeps durable state in memory: it survives a broker being rebuilt in the same process (tests,
/// `--storage memory`), not a process restart.
public final class InMemoryBrokerStore: BrokerStore {
    private struct State {
        var sessions: [String: StoredSession] = [:]
        var queues: [String: [UInt64: RecoveredBrokerState.QueuedMessage]] = [:]
        var retained: [String: StoredMessage] = [:]
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func recover() throws -> RecoveredBrokerState {
        state.withLockedValue { state in
            var recovered = RecoveredBrokerState()
            recovered.sessions = Array(state.sessions.values)
            recovered.retained = Array(state.retained.values)
            for (clientId, queue) in state.queues {
                recovered.queues[clientId] = queue.values.sorted { $0.sequence < $1.sequence }
            }
            return recovered
        }
    }

    public func commit(_ changes: [BrokerStoreChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        state.withLockedValue { state in
            for change in changes {
                switch change {
                case .putSession(let session):
                    state.sessions[session.clientId] = session
                case .deleteSession(let clientId):
                    state.sessions[clientId] = nil
                    state.queues[clientId] = nil
                case .enqueue(let clientId, let sequence, let message, let qos, let ids):
                    state.queues[clientId, default: [:]][sequence] = .init(
                        sequence: sequence, message: message, qos: qos, subscriptionIdentifiers: ids, state: .queued)
                case .updateDelivery(let clientId, let sequence, let delivery):
                    state.queues[clientId]?[sequence]?.state = delivery
                case .removeMessage(let clientId, let sequence):
                    state.queues[clientId]?[sequence] = nil
                case .putRetained(let message):
                    state.retained[message.topic] = message
                case .deleteRetained(let topic):
                    state.retained[topic] = nil
                }
            }
        }
        completion(.success(()))
    }
}
