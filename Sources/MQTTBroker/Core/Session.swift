import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// One message waiting for, or in, delivery to a session.
struct Delivery {
    let message: BrokerMessage
    /// min(message QoS, subscription QoS).
    let qos: MQTTQoS
    /// The RETAIN flag as delivered: set for retained messages sent on subscribe, and kept on
    /// live messages only for Retain As Published subscriptions.
    let retain: Bool
    let subscriptionIdentifiers: [Int]
    /// The key of the message in the store; 0 when it is not stored.
    let sequence: UInt64
}

/// An outbound QoS 1 or 2 message sent and not yet completed.
struct InflightDelivery {
    var delivery: Delivery
    /// PUBREC received and PUBREL sent (QoS 2 only).
    var released: Bool
    /// The order of sending, for redelivery in the original order [MQTT-4.6.0-1].
    var order: UInt64
}

/// The state of an MQTT session: it outlives connections when its expiry interval is above 0.
///
/// `@unchecked Sendable`: every mutable field is guarded by `lock`. Publishers on any event loop
/// append deliveries; the attached connection drains them on its own loop.
public final class Session: @unchecked Sendable {
    public let clientId: String
    let lock = NIOLock()

    // Guarded by `lock`:
    var connection: MQTTConnection?
    var identity: ClientIdentity
    var protocolVersion: MQTTProtocolVersion
    var expiryInterval: UInt32
    var subscriptions: [String: Subscription] = [:]
    var queue = CircularBuffer<Delivery>(initialCapacity: 1)
    var queuedQoS0 = 0
    var inflight: [UInt16: InflightDelivery] = [:]
    var nextPacketId: UInt16 = 1
    var nextOrder: UInt64 = 0
    var nextSequence: UInt64 = 1
    /// Inbound QoS 2 packet ids received and not yet released by PUBREL.
    var inboundQoS2: Set<UInt16> = []
    var drainScheduled = false
    /// Publishers that stopped reading because this queue was full; resumed when it drains.
    var waiters: [MQTTConnection] = []
    /// A pending delayed will, and the session's expiry timer, while disconnected.
    var willTask: Scheduled<Void>?
    var pendingWill: BrokerMessage?
    var expiryTask: Scheduled<Void>?
    /// Wall-clock seconds when the client went away, and when a pending will is due; stored so
    /// that expiry and wills carry on across a restart.
    var disconnectedAt: Double?
    var willDueAt: Double?
    var ended = false

    init(clientId: String, identity: ClientIdentity, protocolVersion: MQTTProtocolVersion, expiryInterval: UInt32) {
        self.clientId = clientId
        self.identity = identity
        self.protocolVersion = protocolVersion
        self.expiryInterval = expiryInterval
    }

    /// Registers a publisher to resume once the queue has drained; false if it is not full now.
    func addWaiter(_ connection: MQTTConnection, limit: Int) -> Bool {
        lock.withLock {
            guard queue.count >= limit, !ended else { return false }
            if !waiters.contains(where: { $0 === connection }) { waiters.append(connection) }
            return true
        }
    }

    /// Takes a fresh packet id not used by an in-flight message. Caller holds `lock`.
    func allocatePacketId() -> UInt16? {
        guard inflight.count < Int(UInt16.max) else { return nil }
        while true {
            let id = nextPacketId
            nextPacketId = nextPacketId == UInt16.max ? 1 : nextPacketId + 1
            if inflight[id] == nil { return id }
        }
    }
}
