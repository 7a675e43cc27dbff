import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

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

    /// What the message counts against the byte limits: its topic and payload.
    var size: Int { message.payload.readableBytes + message.topic.utf8.count }
}

/// The messages queued across all sessions, for the broker-wide limits and `/metrics`.
final class QueueTotals: Sendable {
    let messages = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)

    init() {}

    func add(messages count: Int, bytes size: Int) {
        messages.add(count, ordering: .relaxed)
        bytes.add(size, ordering: .relaxed)
    }
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
    /// Change only through `append`, `removeFirst`, `remove(at:)` and `removeAllQueued`, which
    /// keep `queuedQoS0`, `queuedBytes` and the broker's totals true.
    private(set) var queue = CircularBuffer<Delivery>(initialCapacity: 1)
    private(set) var queuedQoS0 = 0
    private(set) var queuedBytes = 0
    let totals: QueueTotals
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

    init(
        clientId: String, identity: ClientIdentity, protocolVersion: MQTTProtocolVersion, expiryInterval: UInt32,
        totals: QueueTotals
    ) {
        self.clientId = clientId
        self.totals = totals
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

    deinit {
        // A session dropped with messages still queued (one that expired during recovery).
        if !queue.isEmpty { totals.add(messages: -queue.count, bytes: -queuedBytes) }
    }

    // MARK: The queue; the caller holds `lock`.

    func append(_ delivery: Delivery) {
        queue.append(delivery)
        if delivery.qos == .atMostOnce { queuedQoS0 += 1 }
        queuedBytes += delivery.size
        totals.add(messages: 1, bytes: delivery.size)
    }

    @discardableResult
    func removeFirst() -> Delivery {
        let delivery = queue.removeFirst()
        forget(delivery)
        return delivery
    }

    @discardableResult
    func remove(at position: CircularBuffer<Delivery>.Index) -> Delivery {
        let delivery = queue.remove(at: position)
        forget(delivery)
        return delivery
    }

    func removeAllQueued() {
        totals.add(messages: -queue.count, bytes: -queuedBytes)
        queue.removeAll()
        queuedQoS0 = 0
        queuedBytes = 0
    }

    /// Removes the expired messages from the queue; returns their store sequences.
    func removeExpired(at now: NIODeadline) -> [UInt64] {
        guard queue.contains(where: { $0.message.isExpired(at: now) }) else { return [] }
        var expired: [UInt64] = []
        let kept = queue.filter { delivery in
            if delivery.message.isExpired(at: now) {
                expired.append(delivery.sequence)
                return false
            }
            return true
        }
        removeAllQueued()
        for delivery in kept { append(delivery) }
        return expired
    }

    private func forget(_ delivery: Delivery) {
        if delivery.qos == .atMostOnce { queuedQoS0 -= 1 }
        queuedBytes -= delivery.size
        totals.add(messages: -1, bytes: -delivery.size)
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
