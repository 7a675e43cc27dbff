import Foundation
import Logging
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// Messages routed and not yet delivered, grouped by the session they go to, so that delivery
/// takes each session's lock once per batch and the store commits once.
struct PublishBatch {
    struct Message {
        let message: BrokerMessage
        let completion: (@Sendable (PublishOutcome) -> Void)?
    }

    struct Target {
        let session: Session
        /// Each delivery, with the index of its message in `messages`.
        var deliveries: [(Delivery, Int)]
    }

    var messages: [Message] = []
    var sessions: [Target] = []
    var positions: [ObjectIdentifier: Int] = [:]
    var changes: [BrokerStoreChange] = []

    var isEmpty: Bool { messages.isEmpty }
}

/// What became of a published message, for the publisher's acknowledgement.
enum PublishOutcome: Sendable, Equatable {
    /// Queued for this many sessions (0: no subscriber matched), and durable where it must be.
    case delivered(Int)
    /// A matching session had no room for it, within its limits or the broker's (0x97).
    case quotaExceeded
    /// The store could not make it durable.
    case storageFailed
}

/// The state shared by all connections: sessions, the subscription index, retained messages and
/// the timers for wills and session expiry.
///
/// `@unchecked Sendable`: `state` is guarded by `stateLock`, `index` by `indexLock` and
/// `retained` by `retainedLock`. Lock order: state, then a session's lock, then index or retained.
public final class Broker: @unchecked Sendable {
    public let configuration: BrokerConfiguration
    let metrics: BrokerMetrics
    let authenticator: any MQTTAuthenticator
    let authorizer: any MQTTAuthorizer
    public let store: any BrokerStore
    /// The loop that runs will and session-expiry timers.
    let timerLoop: any EventLoop
    let logger: Logger

    private struct State {
        var sessions: [String: Session] = [:]
        var connections: [ObjectIdentifier: MQTTConnection] = [:]
        /// How many of `connections` are in-process clients.
        var internalConnections = 0
        var shuttingDown = false
        /// Connections by what revocations find them by (`identityKeys(of:)`): their principal,
        /// and their values of the `indexedAttributes`.
        var identified: [String: Set<ObjectIdentifier>] = [:]
        /// Each filed connection's keys in `identified`, to take it out when it goes.
        var identityKeys: [ObjectIdentifier: [String]] = [:]
    }

    /// The identity attributes that connections are filed by, besides the principal, so that
    /// ``disconnectClients(_:reason:principals:attributes:where:)`` visits only theirs.
    public let indexedAttributes: Set<String>

    private let stateLock = NIOLock()
    private var state = State()
    private let indexLock = ReadWriteLock()
    private let index = SubscriptionIndex()
    /// Subscriptions of in-process clients, left out of the gauge (guarded by `indexLock`).
    private var internalSubscriptions = 0
    private let sweepers = NIOLockedValueBox<[ObjectIdentifier: KeepAliveSweeper]>([:])
    let queueTotals = QueueTotals()
    private let retainedLock = NIOLock()
    private var retained: [String: BrokerMessage] = [:]
    /// How many of `retained` each publisher set, for `maxRetainedPerClient` (guarded by `retainedLock`).
    private var retainedByPublisher: [String: Int] = [:]

    public init(
        configuration: BrokerConfiguration = .init(),
        authenticator: any MQTTAuthenticator = LoopbackAnonymousAuthenticator(),
        authorizer: any MQTTAuthorizer = AllowAllAuthorizer(),
        store: any BrokerStore = InMemoryBrokerStore(),
        metrics: BrokerMetrics = .noop(),
        timerLoop: any EventLoop,
        indexedAttributes: Set<String> = [],
        logger: Logger = Logger(label: "drover.broker")
    ) throws {
        self.configuration = configuration
        self.indexedAttributes = indexedAttributes
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.store = store
        self.metrics = metrics
        self.timerLoop = timerLoop
        self.logger = logger
        try recover()
        startHousekeeping()
    }

    // MARK: Housekeeping

    private let housekeeping = NIOLockedValueBox<[RepeatedTask]>([])

    /// Once a second: the queue gauges; every `purgeInterval`: expired messages out of every
    /// session's queue (offline sessions would otherwise hold them until they reconnect).
    private func startHousekeeping() {
        let gauges = timerLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            guard let self else { return }
            self.metrics.queuedMessages.record(self.queueTotals.messages.load(ordering: .relaxed))
            self.metrics.queuedBytes.record(self.queueTotals.bytes.load(ordering: .relaxed))
        }
        let interval = TimeAmount.milliseconds(Int64(max(0.1, configuration.purgeInterval) * 1000))
        let purge = timerLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.purgeExpired()
        }
        housekeeping.withLockedValue { $0 = [gauges, purge] }
    }

    /// Drops expired messages from every session's queue, and from the store.
    @discardableResult
    func purgeExpired() -> Int {
        let now = timerLoop.now
        var changes: [BrokerStoreChange] = []
        var purged = 0
        for session in openSessions() {
            let expired = session.lock.withLock { session.removeExpired(at: now) }
            purged += expired.count
            for sequence in expired where sequence != 0 {
                changes.append(.removeMessage(clientId: session.clientId, sequence: sequence))
            }
        }
        if purged > 0 {
            metrics.drop(.expired, count: purged)
            logger.debug("purged expired messages", metadata: ["count": "\(purged)"])
        }
        if !changes.isEmpty { store.commit(changes) { _ in } }
        return purged
    }

    // MARK: Connections

    /// The keep-alive sweeper of an event loop, made on first use.
    func keepAliveSweeper(for eventLoop: any EventLoop) -> KeepAliveSweeper {
        sweepers.withLockedValue { sweepers in
            let key = ObjectIdentifier(eventLoop)
            if let sweeper = sweepers[key] { return sweeper }
            let sweeper = KeepAliveSweeper(eventLoop: eventLoop)
            sweepers[key] = sweeper
            return sweeper
        }
    }

    /// Connections that have not had their CONNECT accepted yet.
    private let pendingConnections = NIOLockedValueBox(0)

    /// Counts a connection that has not sent CONNECT; false when `maxPendingConnections` wait already.
    func beginPending() -> Bool {
        pendingConnections.withLockedValue { count in
            guard count < configuration.maxPendingConnections else { return false }
            count += 1
            return true
        }
    }

    func endPending() { pendingConnections.withLockedValue { $0 -= 1 } }

    /// Counts a new connection in; false when the broker is full or shutting down.
    func admit(_ connection: MQTTConnection) -> Bool {
        stateLock.withLock {
            guard !state.shuttingDown else { return false }
            // In-process clients (the broker's own services) do not take a client's place.
            let isInternal = connection.listener == InProcessClient.listener
            guard isInternal || state.connections.count - state.internalConnections < configuration.maxConnections else {
                return false
            }
            if isInternal { state.internalConnections += 1 }
            state.connections[ObjectIdentifier(connection)] = connection
            metrics.connections[connection.listener.name]?.increment()
            return true
        }
    }

    /// The keys a connection of `identity` is filed under: "principal:" and its principal, and
    /// "NAME=VALUE" for each indexed attribute it has.
    func identityKeys(of identity: ClientIdentity) -> [String] {
        var keys = identity.principal.map { ["principal:" + $0] } ?? []
        for name in indexedAttributes { if let value = identity.attributes[name] { keys.append(name + "=" + value) } }
        return keys
    }

    /// Files an admitted connection under its identity, once it is authenticated.
    func identified(_ connection: MQTTConnection, as identity: ClientIdentity) {
        let keys = identityKeys(of: identity)
        let id = ObjectIdentifier(connection)
        stateLock.withLock {
            guard state.connections[id] != nil else { return } // gone meanwhile
            unfile(id)
            guard !keys.isEmpty else { return }
            for key in keys { state.identified[key, default: []].insert(id) }
            state.identityKeys[id] = keys
        }
    }

    /// Under `stateLock`.
    private func unfile(_ id: ObjectIdentifier) {
        guard let keys = state.identityKeys.removeValue(forKey: id) else { return }
        for key in keys {
            state.identified[key]?.remove(id)
            if state.identified[key]?.isEmpty == true { state.identified[key] = nil }
        }
    }

    func release(_ connection: MQTTConnection) {
        stateLock.withLock {
            unfile(ObjectIdentifier(connection))
            if state.connections.removeValue(forKey: ObjectIdentifier(connection)) != nil {
                metrics.connections[connection.listener.name]?.decrement()
                if connection.listener == InProcessClient.listener { state.internalConnections -= 1 }
            }
        }
    }

    /// The sessions that exist now, connected or not.
    func openSessions() -> [Session] { stateLock.withLock { Array(state.sessions.values) } }

    public var isShuttingDown: Bool { stateLock.withLock { state.shuttingDown } }

    /// Client connections, not counting the broker's own in-process clients.
    public var connectionCount: Int { stateLock.withLock { state.connections.count - state.internalConnections } }
    public var sessionCount: Int { stateLock.withLock { state.sessions.count } }

    /// Opens or resumes the session of a client that has been authenticated, taking it over from
    /// any connection that holds it.
    func openSession(
        clientId: String, cleanStart: Bool, expiryInterval: UInt32, identity: ClientIdentity,
        protocolVersion: MQTTProtocolVersion, connection: MQTTConnection
    ) -> (session: Session, present: Bool) {
        var wills: [(BrokerMessage, ClientIdentity)] = []
        var previous: MQTTConnection?
        let result: (Session, Bool) = stateLock.withLock {
            let existing = state.sessions[clientId]
            if let existing {
                previous = existing.lock.withLock {
                    let old = existing.connection
                    existing.connection = nil
                    return old
                }
            }
            let session: Session
            let present: Bool
            // A session belongs to the principal that made it: another principal that names the
            // same client id starts afresh and never sees the old queue.
            let sameOwner = existing.map { old in old.lock.withLock { old.identity.owner == identity.owner } } ?? false
            if let existing, !cleanStart, !existing.ended, sameOwner {
                session = existing
                present = true
                session.lock.withLock {
                    session.willTask?.cancel()
                    session.willTask = nil
                    // [MQTT-3.1.3-9] A reconnection before the will delay cancels the will.
                    session.pendingWill = nil
                    session.expiryTask?.cancel()
                    session.expiryTask = nil
                }
            } else {
                if let existing, let will = endSessionLocked(existing) {
                    wills.append((will, existing.lock.withLock { existing.identity }))
                }
                session = Session(clientId: clientId, identity: identity, protocolVersion: protocolVersion,
                                  expiryInterval: expiryInterval, totals: queueTotals)
                state.sessions[clientId] = session
                present = false
            }
            session.lock.withLock {
                session.connection = connection
                session.disconnectedAt = nil
                session.willDueAt = nil
                session.identity = identity
                session.protocolVersion = protocolVersion
                session.expiryInterval = expiryInterval
                session.drainScheduled = false
            }
            metrics.sessions.record(state.sessions.count)
            return (session, present)
        }
        if let previous {
            // The old connection's will goes out only if its session ended here (clean start).
            previous.takeOver(publishWill: !result.1)
        }
        persist(result.0)
        for (will, owner) in wills { publishWill(will, of: owner) }
        return result
    }

    /// Called when a connection that held `session` is gone. `will` is the will to publish, if
    /// the disconnection calls for one.
    func detach(_ connection: MQTTConnection, from session: Session, will: BrokerMessage?, willDelay: UInt32) {
        var toPublish: [BrokerMessage] = []
        var waiters: [MQTTConnection] = []
        var persistAfter = false
        let owner = session.lock.withLock { session.identity }
        defer {
            if persistAfter { persist(session) }
            // Publishers paused on this subscriber go on: nothing will drain its queue now.
            for waiter in waiters { waiter.eventLoop.execute { waiter.resumeReading() } }
        }
        stateLock.withLock {
            let owned = session.lock.withLock {
                guard session.connection === connection else { return false }
                session.connection = nil
                session.drainScheduled = false
                waiters = session.waiters
                session.waiters.removeAll()
                return true
            }
            guard owned else { return }
            let expiry = session.lock.withLock { session.expiryInterval }
            if expiry == 0 {
                if let will { toPublish.append(will) }
                if let pending = endSessionLocked(session) { toPublish.append(pending) }
                return
            }
            persistAfter = true
            session.lock.withLock {
                let now = Date().timeIntervalSince1970
                session.disconnectedAt = now
                if let will {
                    let delay = min(willDelay, expiry)
                    if delay == 0 {
                        toPublish.append(will)
                    } else {
                        session.pendingWill = will
                        session.willDueAt = now + Double(delay)
                        session.willTask = timerLoop.scheduleTask(in: .seconds(Int64(delay))) { [weak self, weak session] in
                            guard let self, let session else { return }
                            self.fireWill(session)
                        }
                    }
                }
                if expiry != UInt32.max {
                    session.expiryTask = timerLoop.scheduleTask(in: .seconds(Int64(expiry))) { [weak self, weak session] in
                        guard let self, let session else { return }
                        self.expire(session)
                    }
                }
            }
        }
        for message in toPublish { publishWill(message, of: owner) }
    }

    /// Publishes a will, once its owner may still publish it: policies may have changed since
    /// CONNECT, where it was checked first.
    func publishWill(_ will: BrokerMessage, of owner: ClientIdentity) {
        guard authorizer.authorize(owner, .publish(topic: will.topic, retain: will.retain)) else {
            metrics.willsRefused.increment()
            logger.info("will not authorized", metadata: [
                "client": "\(owner.clientId.clipped(toBytes: 128))", "topic": "\(will.topic.clipped(toBytes: 128))",
            ])
            return
        }
        if will.retain, let limit = retainLimit(topic: will.topic, publisherId: owner.clientId) {
            metrics.limitHit(limit)
            return
        }
        publish(will, from: nil) { _ in }
    }

    private func fireWill(_ session: Session) {
        let will: BrokerMessage? = session.lock.withLock {
            defer {
                session.pendingWill = nil
                session.willTask = nil
                session.willDueAt = nil
            }
            return session.connection == nil ? session.pendingWill : nil
        }
        if let will {
            persist(session)
            publishWill(will, of: session.lock.withLock { session.identity })
        }
    }

    private func expire(_ session: Session) {
        let will: BrokerMessage? = stateLock.withLock {
            let connected = session.lock.withLock { session.connection != nil }
            guard !connected, state.sessions[session.clientId] === session else { return nil }
            return endSessionLocked(session)
        }
        if let will { publishWill(will, of: session.lock.withLock { session.identity }) }
    }

    /// Removes a session and its subscriptions. Returns a pending will, which is due now that
    /// the session ends [MQTT-3.1.3-9]. Caller holds `stateLock`.
    private func endSessionLocked(_ session: Session) -> BrokerMessage? {
        if state.sessions[session.clientId] === session {
            state.sessions[session.clientId] = nil
        }
        let (filters, will, persistent) = session.lock.withLock {
            session.ended = true
            session.willTask?.cancel()
            session.expiryTask?.cancel()
            let will = session.pendingWill
            session.pendingWill = nil
            let filters = Array(session.subscriptions.values.map(\.filter))
            session.subscriptions = [:]
            session.removeAllQueued()
            session.inflight = [:]
            return (filters, will, session.expiryInterval > 0)
        }
        let isInternal = session.lock.withLock { session.identity.listener == InProcessClient.listener }
        indexLock.withWriteLock {
            var removed = 0
            for filter in filters where index.remove(session, filter) { removed += 1 }
            if isInternal { internalSubscriptions -= removed }
            metrics.subscriptions.record(index.count - internalSubscriptions)
        }
        metrics.sessions.record(state.sessions.count)
        if persistent { store.commit([.deleteSession(clientId: session.clientId)]) { _ in } }
        return will
    }

    // MARK: Subscriptions

    /// Adds subscriptions; returns for each whether it existed before (for Retain Handling 1).
    func subscribe(_ session: Session, _ subscriptions: [Subscription]) -> [Bool] {
        let isInternal = session.lock.withLock {
            for subscription in subscriptions { session.subscriptions[subscription.filter.raw] = subscription }
            return session.identity.listener == InProcessClient.listener
        }
        let existed = indexLock.withWriteLock {
            let existed = subscriptions.map { index.insert(session, $0) }
            if isInternal { internalSubscriptions += existed.filter { !$0 }.count }
            metrics.subscriptions.record(index.count - internalSubscriptions)
            return existed
        }
        persist(session)
        return existed
    }

    /// Removes subscriptions by the filter the client sent; returns for each whether it existed.
    func unsubscribe(_ session: Session, _ filters: [String]) -> [Bool] {
        let removed: [TopicFilter?] = session.lock.withLock {
            filters.map { session.subscriptions.removeValue(forKey: $0)?.filter }
        }
        let isInternal = session.lock.withLock { session.identity.listener == InProcessClient.listener }
        let result = indexLock.withWriteLock {
            let result = removed.map { filter in filter.map { index.remove(session, $0) } ?? false }
            if isInternal { internalSubscriptions -= result.filter { $0 }.count }
            metrics.subscriptions.record(index.count - internalSubscriptions)
            return result
        }
        persist(session)
        return result
    }

    // MARK: Publishing

    /// Routes one message and delivers it at once; see ``PublishBatch`` for the batched path.
    /// `completion` runs once everything the message changed is durable, with the number of
    /// sessions it went to; the caller acknowledges the publisher then.
    func publish(_ message: BrokerMessage, from publisher: Session?, completion: @escaping @Sendable (PublishOutcome) -> Void) {
        var batch = PublishBatch()
        route(message, into: &batch, completion: completion)
        deliver(&batch, wake: { connection, newlyDue in
            if newlyDue { connection.scheduleDrain() }
        }, congested: { _ in })
    }

    /// Finds the subscribers of a message and keeps it if it is retained. Nothing is delivered
    /// until ``deliver(_:wake:)``.
    func route(_ message: BrokerMessage, into batch: inout PublishBatch, completion: (@Sendable (PublishOutcome) -> Void)?) {
        if message.retain {
            batch.changes.append(setRetained(message))
        }
        let matches = indexLock.withReadLock { index.match(topic: message.topic, publisherId: message.publisherId) }
        let entry = batch.messages.count
        batch.messages.append(.init(message: message, completion: completion))
        for match in matches {
            let key = ObjectIdentifier(match.session)
            let delivery = Delivery(
                message: message, qos: min(message.qos, match.qos), retain: match.retainAsPublished && message.retain,
                subscriptionIdentifiers: match.identifiers, sequence: 0)
            if let position = batch.positions[key] {
                batch.sessions[position].deliveries.append((delivery, entry))
            } else {
                batch.positions[key] = batch.sessions.count
                batch.sessions.append(.init(session: match.session, deliveries: [(delivery, entry)]))
            }
        }
    }

    /// Delivers a batch: one lock per subscriber session, one store commit, then the
    /// completions in order. `wake` gets each connection that has something to send, and
    /// whether this call made a drain due (so a hop to another loop is needed). `congested` gets
    /// each session whose queue is full after taking QoS 1/2 messages: the publisher should stop
    /// reading until it drains, so that acknowledged messages are not dropped.
    func deliver(
        _ batch: inout PublishBatch, wake: (MQTTConnection, Bool) -> Void, congested: (Session) -> Void
    ) {
        guard !batch.messages.isEmpty else { return }
        let authorizer = self.authorizer
        var changes = batch.changes
        var counts = [Int](repeating: 0, count: batch.messages.count)
        var refused = [Bool](repeating: false, count: batch.messages.count)
        var storedForms = [StoredMessage?](repeating: nil, count: batch.messages.count)
        var queueFull = 0
        var quotaExceeded = 0
        var denied = 0
        // Subscribers are woken only after this batch's commit is queued: the store commits in
        // order, so a drain's "sent" update can never reach it before the message's insert.
        var toWake: [(MQTTConnection, Bool)] = []
        defer { for (connection, newlyDue) in toWake { wake(connection, newlyDue) } }
        for target in batch.sessions {
            let session = target.session
            let (results, connection, newlyDue, full) = session.enqueue(
                target.deliveries.map(\.0), limits: configuration
            ) {
                identity, topic in authorizer.authorize(identity, .receive(topic: topic))
            }
            if full { congested(session) }
            for (result, (delivery, entry)) in zip(results, target.deliveries) {
                var displaced: [Delivery] = []
                switch result {
                case .denied:
                    denied += 1
                case .dropped:
                    queueFull += 1
                case .refused(let pushedOut):
                    displaced = pushedOut
                    refused[entry] = true
                    quotaExceeded += 1
                case .queued(let pushedOut, let stored):
                    displaced = pushedOut
                    counts[entry] += 1
                    if let stored {
                        // One stored form per message, however many persistent sessions take it.
                        let form = storedForms[entry] ?? delivery.message.stored()
                        storedForms[entry] = form
                        changes.append(.enqueue(
                            clientId: session.clientId, sequence: stored, message: form,
                            qos: delivery.qos, subscriptionIdentifiers: delivery.subscriptionIdentifiers))
                    }
                }
                queueFull += displaced.count
                for message in displaced where message.sequence != 0 {
                    changes.append(.removeMessage(clientId: session.clientId, sequence: message.sequence))
                }
            }
            if let connection { toWake.append((connection, newlyDue)) }
        }
        if queueFull > 0 { metrics.drop(.queueFull, count: queueFull) }
        if denied > 0 { metrics.drop(.notAuthorized, count: denied) }
        if quotaExceeded > 0 { metrics.quotaExceeded.increment(by: quotaExceeded) }
        let completions = batch.messages.indices.compactMap { entry in
            batch.messages[entry].completion.map {
                ($0, refused[entry] ? PublishOutcome.quotaExceeded : .delivered(counts[entry]))
            }
        }
        batch = PublishBatch()
        guard !completions.isEmpty || !changes.isEmpty else { return }
        if changes.isEmpty {
            for (completion, outcome) in completions { completion(outcome) }
        } else {
            store.commit(changes) { [logger] result in
                if case .failure(let error) = result {
                    // Not durable: the publishers must not be acknowledged (-1 tells them).
                    logger.error("storage commit failed", metadata: ["error": "\(error)"])
                    for (completion, _) in completions { completion(.storageFailed) }
                    return
                }
                for (completion, outcome) in completions { completion(outcome) }
            }
        }
    }

    private func setRetained(_ message: BrokerMessage) -> BrokerStoreChange {
        retainedLock.withLock {
            defer { metrics.retained.record(retained.count) }
            if let old = retained[message.topic] { countRetainedLocked(old.publisherId, -1) }
            if message.payload.readableBytes == 0 {
                // [MQTT-3.3.1-6] An empty retained message clears the topic.
                retained[message.topic] = nil
                return .deleteRetained(topic: message.topic)
            }
            retained[message.topic] = message
            countRetainedLocked(message.publisherId, 1)
            return .putRetained(message.stored())
        }
    }

    private func countRetainedLocked(_ publisher: String?, _ delta: Int) {
        guard let publisher else { return }
        let count = (retainedByPublisher[publisher] ?? 0) + delta
        retainedByPublisher[publisher] = count > 0 ? count : nil
    }

    /// The limit a new retained message would break (nil: it may be kept). Replacing or clearing
    /// a retained message never does.
    func retainLimit(topic: String, publisherId: String) -> BrokerLimit? {
        retainedLock.withLock {
            guard retained[topic] == nil else { return nil }
            if retained.count >= configuration.maxRetainedMessages { return .retainedTotal }
            if (retainedByPublisher[publisherId] ?? 0) >= configuration.maxRetainedPerClient { return .retainedPerClient }
            return nil
        }
    }

    /// The limit a topic name or filter breaks: its length in bytes, or its number of levels.
    public func topicLimit(_ topic: String) -> BrokerLimit? {
        let utf8 = topic.utf8
        if utf8.count > configuration.maxTopicLength { return .topicLength }
        var levels = 1
        for byte in utf8 where byte == UInt8(ascii: "/") {
            levels += 1
            if levels > configuration.maxTopicLevels { return .topicLevels }
        }
        return nil
    }

    /// The retained messages that a new subscription to `filter` receives.
    func retainedMessages(matching filter: TopicFilter, now: NIODeadline) -> [BrokerMessage] {
        retainedLock.withLock {
            if !filter.hasWildcards {
                guard let message = retained[filter.filter], !message.isExpired(at: now) else { return [] }
                return [message]
            }
            return retained.values.filter { filter.matches($0.topic) && !$0.isExpired(at: now) }
        }
    }

    public var retainedCount: Int { retainedLock.withLock { retained.count } }

    // MARK: Storage

    func persist(_ session: Session) {
        // Snapshot and queue under the session's lock, so snapshots reach the store in order.
        session.lock.withLock {
            if let change = sessionChangeLocked(session) { store.commit([change]) { _ in } }
        }
    }

    /// The stored form of a persistent session, as a change; nil for a clean session.
    func sessionChange(_ session: Session) -> BrokerStoreChange? {
        session.lock.withLock { sessionChangeLocked(session) }
    }

    /// Caller holds the session's lock.
    private func sessionChangeLocked(_ session: Session) -> BrokerStoreChange? {
        let stored: StoredSession? = {
            guard session.expiryInterval > 0, !session.ended else { return nil }
            return StoredSession(
                clientId: session.clientId, protocolVersion: session.protocolVersion,
                expiryInterval: session.expiryInterval,
                subscriptions: session.subscriptions.values.map {
                    StoredSubscription(filter: $0.filter.raw, options: $0.options, subscriptionIdentifier: $0.identifier)
                },
                inboundQoS2: Array(session.inboundQoS2), disconnectedAt: session.disconnectedAt,
                pendingWill: session.pendingWill?.stored(), willDueAt: session.willDueAt,
                owner: StoredSessionOwner(session.identity))
        }()
        return stored.map { .putSession($0) }
    }

    func storeChange(_ change: BrokerStoreChange) {
        store.commit([change]) { _ in }
    }

    /// Rebuilds sessions, queues and retained messages from the store.
    private func recover() throws {
        let recovered = try store.recover()
        let now = timerLoop.now
        let wallNow = Date().timeIntervalSince1970
        func message(_ stored: StoredMessage) -> BrokerMessage {
            let expiresAt = stored.expiresAtEpochSeconds.map { now + .nanoseconds(Int64(($0 - wallNow) * 1e9)) }
            return BrokerMessage(topic: stored.topic, payload: stored.payload, qos: stored.qos, retain: stored.retain,
                                 properties: stored.properties, expiresAt: expiresAt, publisherId: stored.publisherId)
        }
        for stored in recovered.retained {
            let restored = message(stored)
            if !restored.isExpired(at: now) {
                retained[stored.topic] = restored
                countRetainedLocked(restored.publisherId, 1)
            }
        }
        var expiredWhileDown: [String] = []
        var dueWills: [(BrokerMessage, ClientIdentity)] = []
        defer {
            if !expiredWhileDown.isEmpty {
                store.commit(expiredWhileDown.map { .deleteSession(clientId: $0) }) { _ in }
            }
            for (will, owner) in dueWills { publishWill(will, of: owner) }
        }
        for stored in recovered.sessions {
            // The session keeps the principal that made it; policies apply to it as before the
            // restart. A session stored before owners were kept has none: it is anonymous, and a
            // client with a certificate that resumes it starts afresh.
            let owner = stored.owner ?? StoredSessionOwner(listener: "mqtt")
            let identity = ClientIdentity(
                clientId: stored.clientId, username: owner.username,
                listener: ListenerInfo(name: owner.listener, isLoopback: false, allowAnonymous: owner.principal == nil),
                principal: owner.principal, attributes: owner.attributes)
            let session = Session(clientId: stored.clientId, identity: identity, protocolVersion: stored.protocolVersion,
                                  expiryInterval: stored.expiryInterval, totals: queueTotals)
            session.inboundQoS2 = Set(stored.inboundQoS2)
            for sub in stored.subscriptions {
                guard let filter = TopicFilter(sub.filter) else { continue }
                let subscription = Subscription(filter: filter, options: sub.options, identifier: sub.subscriptionIdentifier)
                session.subscriptions[sub.filter] = subscription
                index.insert(session, subscription)
            }
            for queued in recovered.queues[stored.clientId] ?? [] {
                let delivery = Delivery(message: message(queued.message), qos: queued.qos, retain: queued.message.retain,
                                        subscriptionIdentifiers: queued.subscriptionIdentifiers, sequence: queued.sequence)
                session.nextSequence = max(session.nextSequence, queued.sequence + 1)
                switch queued.state {
                case .queued:
                    session.append(delivery)
                case .sent(let id), .released(let id):
                    let released = if case .released = queued.state { true } else { false }
                    session.inflight[id] = InflightDelivery(delivery: delivery, released: released, order: session.nextOrder)
                    session.nextOrder += 1
                }
            }
            // Expiry counts from the disconnection; a session that was connected when the broker
            // stopped counts from now. One that expired while the broker was down is gone.
            let since = stored.disconnectedAt ?? wallNow
            let remaining = Double(stored.expiryInterval) - (wallNow - since)
            var will = stored.pendingWill.map(message)
            if stored.expiryInterval != UInt32.max && remaining <= 0 {
                expiredWhileDown.append(stored.clientId)
                // [MQTT-3.1.3-9] The session ended: its pending will is due now.
                if let will { dueWills.append((will, identity)) }
                for subscription in session.subscriptions.values { index.remove(session, subscription.filter) }
                continue
            }
            session.disconnectedAt = since
            state.sessions[stored.clientId] = session
            if let pending = will, let dueAt = stored.willDueAt {
                let delay = dueAt - wallNow
                if delay <= 0 {
                    dueWills.append((pending, identity))
                    will = nil
                } else {
                    session.pendingWill = pending
                    session.willDueAt = dueAt
                    session.willTask = timerLoop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [weak self, weak session] in
                        guard let self, let session else { return }
                        self.fireWill(session)
                    }
                }
            }
            if stored.expiryInterval != UInt32.max {
                session.expiryTask = timerLoop.scheduleTask(in: .nanoseconds(Int64(remaining * 1e9))) {
                    [weak self, weak session] in
                    guard let self, let session else { return }
                    self.expire(session)
                }
            }
        }
        metrics.sessions.record(state.sessions.count)
        metrics.subscriptions.record(index.count)
        metrics.retained.record(retained.count)
    }

    /// Disconnects every client whose identity `matches` says so (checked on each connection's
    /// own loop), with DISCONNECT `code` for MQTT 5 clients. For revocations: a certificate made
    /// inactive, a thing detached.
    public func disconnectClients(
        _ code: ReasonCode, reason: String, where matches: @escaping @Sendable (ClientIdentity) -> Bool
    ) {
        disconnect(stateLock.withLock { Array(state.connections.values) }, code, reason: reason, where: matches)
    }

    /// The same, visiting only the connections of `principals`, or whose attribute NAME has one
    /// of `attributes[NAME]`: the cost is theirs, not every connection's. An attribute that is
    /// not among `indexedAttributes` cannot be looked up, so then every connection is visited.
    public func disconnectClients(
        _ code: ReasonCode, reason: String, principals: Set<String>, attributes: [String: Set<String>] = [:],
        where matches: @escaping @Sendable (ClientIdentity) -> Bool
    ) {
        guard attributes.keys.allSatisfy(indexedAttributes.contains) else {
            return disconnectClients(code, reason: reason, where: matches)
        }
        let connections: [MQTTConnection] = stateLock.withLock {
            var ids = Set<ObjectIdentifier>()
            for principal in principals { ids.formUnion(state.identified["principal:" + principal] ?? []) }
            for (name, values) in attributes {
                for value in values { ids.formUnion(state.identified[name + "=" + value] ?? []) }
            }
            return ids.compactMap { state.connections[$0] }
        }
        disconnect(connections, code, reason: reason, where: matches)
    }

    /// The number of connections filed under a principal or an attribute's value, for the tests.
    func filedConnections(_ key: String) -> Int { stateLock.withLock { state.identified[key]?.count ?? 0 } }

    private func disconnect(
        _ connections: [MQTTConnection], _ code: ReasonCode, reason: String,
        where matches: @escaping @Sendable (ClientIdentity) -> Bool
    ) {
        for connection in connections {
            connection.eventLoop.execute {
                guard let identity = connection.currentIdentity, matches(identity) else { return }
                self.logger.notice("disconnecting a client", metadata: ["client": "\(identity.clientId)", "reason": "\(reason)"])
                _ = connection.serverDisconnect(code, reason: reason)
            }
        }
    }

    // MARK: Shutdown

    /// Stops admitting connections and tells every client that the server is going away
    /// (MQTT 5 DISCONNECT 0x8B), then closes them.
    public func shutdown() -> EventLoopFuture<Void> {
        housekeeping.withLockedValue { tasks in tasks.forEach { $0.cancel() } }
        let connections: [MQTTConnection] = stateLock.withLock {
            state.shuttingDown = true
            return Array(state.connections.values)
        }
        guard !connections.isEmpty else { return timerLoop.makeSucceededVoidFuture() }
        let futures = connections.map { $0.serverDisconnect(.serverShuttingDown, reason: "server shutting down") }
        return EventLoopFuture.andAllComplete(futures, on: timerLoop)
    }
}

extension Session {
    enum EnqueueResult {
        case denied
        /// A QoS 0 message that did not fit, or the session ended.
        case dropped
        /// A QoS 1/2 message that did not fit, even after the queued QoS 0 ones were dropped:
        /// the publisher is refused (0x97 Quota exceeded). `displaced` as for `queued`.
        case refused(displaced: [Delivery])
        /// Queued; `displaced` are QoS 0 messages pushed out to make room, `stored` the
        /// sequence under which a QoS 1/2 message for a persistent session is stored.
        case queued(displaced: [Delivery], stored: UInt64?)
    }

    /// Queues deliveries under one acquisition of the lock. Returns what became of each, the
    /// connection that has something to send, whether its drain became due just now (a
    /// publisher on another loop must then schedule it; one on the same loop drains it anyway),
    /// and whether QoS 1/2 messages filled the queue (the publisher should pause).
    func enqueue(
        _ deliveries: [Delivery], limits: BrokerConfiguration, authorize: (ClientIdentity, String) -> Bool
    ) -> ([EnqueueResult], MQTTConnection?, Bool, Bool) {
        lock.withLock {
            let results = deliveries.map { enqueueLocked($0, limits: limits, authorize: authorize) }
            let full = connection != nil && queue.count >= limits.maxQueuedMessages
                && deliveries.contains { $0.qos != .atMostOnce }
            guard !queue.isEmpty, let connection else { return (results, nil, false, full) }
            let newlyDue = !drainScheduled
            drainScheduled = true
            return (results, connection, newlyDue, full)
        }
    }

    /// Caller holds `lock`.
    private func enqueueLocked(
        _ delivery: Delivery, limits: BrokerConfiguration, authorize: (ClientIdentity, String) -> Bool
    ) -> EnqueueResult {
        guard !ended else { return .dropped }
        guard authorize(identity, delivery.message.topic) else { return .denied }
        let size = delivery.size
        // Which limits the message would break, if queued now.
        func over() -> (count: Bool, hard: Bool) {
            let count = queue.count >= limits.maxQueuedMessages
            let hard = queuedBytes + size > limits.maxQueuedBytes
                || totals.messages.load(ordering: .relaxed) >= limits.maxTotalQueuedMessages
                || totals.bytes.load(ordering: .relaxed) + size > limits.maxTotalQueuedBytes
            return (count, hard)
        }
        var limit = over()
        var displaced: [Delivery] = []
        if limit.count || limit.hard {
            // Full: QoS 0 goes first. A QoS 0 newcomer is dropped; a QoS 1/2 newcomer pushes out
            // the oldest queued QoS 0 messages until it fits.
            if delivery.qos == .atMostOnce { return .dropped }
            while (limit.count || limit.hard) && queuedQoS0 > 0,
                  let position = queue.firstIndex(where: { $0.qos == .atMostOnce }) {
                displaced.append(remove(at: position))
                limit = over()
            }
            if limit.hard { return .refused(displaced: displaced) }
            if limit.count && (connection == nil || queue.count >= limits.maxQueuedMessages + limits.maxQueuedOverflow) {
                // Offline, nothing drains the queue: the count limit is hard. Online, past the
                // overflow allowance: the publishers did not slow down in time.
                return .refused(displaced: displaced)
            }
            // Otherwise (online) a QoS 1/2 message goes into the overflow allowance while its
            // publisher pauses reading: backpressure, not loss.
        }
        var delivery = delivery
        var stored: UInt64?
        if delivery.qos != .atMostOnce && expiryInterval > 0 {
            stored = nextSequence
            delivery = Delivery(message: delivery.message, qos: delivery.qos, retain: delivery.retain,
                                subscriptionIdentifiers: delivery.subscriptionIdentifiers, sequence: nextSequence)
            nextSequence += 1
        }
        append(delivery)
        return .queued(displaced: displaced, stored: stored)
    }
}

extension BrokerMessage {
    func stored() -> StoredMessage {
        let expires: Double? = expiresAt.map { deadline in
            Date().timeIntervalSince1970 + Double((deadline - NIODeadline.now()).nanoseconds) / 1e9
        }
        return StoredMessage(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties,
                             expiresAtEpochSeconds: expires, publisherId: publisherId)
    }
}
