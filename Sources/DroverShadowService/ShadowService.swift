import DroverShadow
import Dispatch
import Foundation
import Logging
import MQTTBroker
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// The Device Shadow service: it answers `$aws/things/{thing}/shadow[/name/{name}]/get|update|delete`
/// through an in-process MQTT client (so devices' policies apply to those topics like any
/// other), and serves the same operations to the `iot-data` HTTP API.
///
/// Requests are handled in arrival order on `queue`. Group commit: a drain takes every request
/// waiting, applies them in order (later ones see earlier ones' results), stores all their
/// changes in one transaction, and only then answers them; so many devices share one fsync.
public final class ShadowService: Sendable {
    public struct Configuration: Sendable {
        public var limits = ShadowLimits()
        /// Requests for one shadow waiting to be answered; beyond it a request gets 429 at once.
        public var maxInFlightPerShadow = 100
        /// The most requests one group commit takes.
        public var maxBatch = 1000
        /// The most named shadows one thing may have; creating one more is refused (400).
        public var maxNamedShadowsPerThing = 100
        /// Whether a thing must be in the registry to have shadows. Given by the app; nil: any
        /// valid thing name may.
        public var thingExists: (@Sendable (String) -> Bool)?

        public init(limits: ShadowLimits = ShadowLimits(), maxInFlightPerShadow: Int = 100,
                    maxNamedShadowsPerThing: Int = 100, thingExists: (@Sendable (String) -> Bool)? = nil) {
            self.limits = limits
            self.maxInFlightPerShadow = maxInFlightPerShadow
            self.maxNamedShadowsPerThing = maxNamedShadowsPerThing
            self.thingExists = thingExists
        }
    }

    enum Operation: String { case get, update, delete }

    private let store: any ShadowStore
    private let configuration: Configuration

    /// The bounds of shadow requests and documents.
    public var limits: ShadowLimits { configuration.limits }
    private let logger: Logger
    private let queue = DispatchQueue(label: "drover.shadows")
    private let client: InProcessClient
    private let broker: Broker
    private let pending = NIOLockedValueBox<Pending>(Pending())
    private let follower = FollowTimer()

    struct Pending {
        var requests: [Request] = []
        var draining = false
        /// Requests per shadow not answered yet.
        var inFlight: [Key: Int] = [:]
    }

    /// A request waiting for the next drain, with what to do with its answer.
    struct Request {
        let thing: String
        let name: String
        let operation: Operation
        let payload: [UInt8]
        let reply: @Sendable (Answer) -> Void
    }

    struct Key: Hashable {
        let thing: String
        let name: String
    }

    public init(broker: Broker, store: any ShadowStore, configuration: Configuration = .init(), eventLoop: any EventLoop,
                logger: Logger) {
        self.store = store
        self.broker = broker
        self.configuration = configuration
        self.logger = logger
        let box = WeakBox()
        client = InProcessClient(broker: broker, clientId: "$drover/shadows", eventLoop: eventLoop) { publish in
            box.service?.received(publish)
        }
        box.service = self
    }

    /// Connects the in-process client and subscribes to the request topics.
    public func start() -> EventLoopFuture<Void> {
        client.connect().flatMap { [client] in
            client.subscribe([
                "$aws/things/+/shadow/get", "$aws/things/+/shadow/update", "$aws/things/+/shadow/delete",
                "$aws/things/+/shadow/name/+/get", "$aws/things/+/shadow/name/+/update", "$aws/things/+/shadow/name/+/delete",
            ])
        }
    }

    // MARK: MQTT

    /// (thing, shadow name or "", operation) of a request topic.
    static func parse(_ topic: String) -> (String, String, Operation)? {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 5, parts[0] == "$aws", parts[1] == "things", parts[3] == "shadow" else { return nil }
        if parts.count == 5, let operation = Operation(rawValue: String(parts[4])) { return (String(parts[2]), "", operation) }
        if parts.count == 7, parts[4] == "name", let operation = Operation(rawValue: String(parts[6])) {
            return (String(parts[2]), String(parts[5]), operation)
        }
        return nil
    }

    /// Whether a topic is one of the service's replies (`accepted`, `rejected`, `delta`,
    /// `documents` under `$aws/things/{thing}/shadow/`): devices only subscribe to these, as in
    /// AWS IoT, and only the service publishes them.
    public static func isReplyTopic(_ topic: String) -> Bool {
        guard topic.hasPrefix("$aws/things/") else { return false }
        let parts = topic.split(separator: "/", maxSplits: 16, omittingEmptySubsequences: false)
        guard parts.count >= 6, parts[3] == "shadow", let last = parts.last else { return false }
        return last == "accepted" || last == "rejected" || last == "delta" || last == "documents"
    }

    /// The broker limit a topic breaks, for publishes that come in over HTTP.
    public func topicLimit(_ topic: String) -> BrokerLimit? { broker.topicLimit(topic) }

    static func prefix(_ thing: String, _ name: String) -> String {
        name.isEmpty ? "$aws/things/\(thing)/shadow" : "$aws/things/\(thing)/shadow/name/\(name)"
    }

    private func received(_ publish: PublishPacket) {
        guard let (thing, name, operation) = Self.parse(publish.topic) else { return }
        if let error = Self.checkNames(thing: thing, name: name) {
            // Answered on the reply topic only when the names are short enough to quote back;
            // the broker's topic limits bound them anyway.
            guard thing.utf8.count <= 256, name.utf8.count <= 256 else { return }
            let topic = "\(Self.prefix(thing, name))/\(operation.rawValue)/rejected"
            self.publish([(topic, error.payload)])
            return
        }
        submit(Request(thing: thing, name: name, operation: operation, payload: Array(publish.payload.readableBytesView)) {
            [weak self] answer in
            self?.publish(answer.mqtt)
        })
    }

    private func publish(_ messages: [(String, [UInt8])]) {
        for (topic, bytes) in messages {
            client.publish(topic, ByteBuffer(bytes: bytes), qos: .atLeastOnce).whenFailure { [logger] error in
                logger.warning("shadow answer not published", metadata: ["topic": "\(topic)", "error": "\(error)"])
            }
        }
    }

    private func submit(_ request: Request) {
        let key = Key(thing: request.thing, name: request.name)
        let limit = configuration.maxInFlightPerShadow
        let (accepted, start) = pending.withLockedValue { pending -> (Bool, Bool) in
            guard pending.inFlight[key, default: 0] < limit else { return (false, false) }
            pending.inFlight[key, default: 0] += 1
            pending.requests.append(request)
            guard !pending.draining else { return (true, false) }
            pending.draining = true
            return (true, true)
        }
        guard accepted else {
            let error = ShadowError.tooManyRequests(timestamp: Int64(Date().timeIntervalSince1970))
            let topic = "\(Self.prefix(request.thing, request.name))/\(request.operation.rawValue)/rejected"
            request.reply(Answer(mqtt: [(topic, error.payload)], http: ShadowHTTPResponse(error)))
            return
        }
        if start { queue.async { self.drain() } }
    }

    /// Runs on `queue` until nothing is waiting.
    private func drain() {
        while true {
            let maxBatch = configuration.maxBatch
            let batch = pending.withLockedValue { pending -> [Request] in
                let batch = Array(pending.requests.prefix(maxBatch))
                pending.requests.removeFirst(batch.count)
                if batch.isEmpty { pending.draining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let answers = commit(batch)
            pending.withLockedValue { pending in
                for request in batch {
                    let key = Key(thing: request.thing, name: request.name)
                    let left = pending.inFlight[key, default: 1] - 1
                    pending.inFlight[key] = left > 0 ? left : nil
                }
            }
            for (request, answer) in zip(batch, answers) { request.reply(answer) }
        }
    }

    /// Handles a batch and stores what it wrote, in one transaction. Another process may have
    /// changed one of its shadows after the batch read it: the store then refuses the whole
    /// batch (``ShadowStoreConflict``), and it is handled again from what is stored now, so that
    /// neither update is lost. A store that keeps failing fails every request of the batch.
    private func commit(_ batch: [Request]) -> [Answer] {
        for _ in 0..<8 {
            var shadows: [Key: (document: ShadowDocument?, deletedVersion: Int)] = [:]
            var writes: [ShadowWrite] = []
            var loadedVersions: [Key: Int] = [:]
            var answers = batch.map { handle($0, shadows: &shadows, loaded: &loadedVersions, writes: &writes) }
            // The version each written shadow had when the batch read it.
            var bases: [ShadowBase] = []
            var based = Set<Key>()
            for write in writes {
                let key: Key
                switch write {
                case .save(let thing, let name, _, _), .delete(let thing, let name, _): key = Key(thing: thing, name: name)
                }
                if based.insert(key).inserted, let loaded = loadedVersions[key] {
                    bases.append(ShadowBase(thing: key.thing, name: key.name, version: loaded))
                }
            }
            // What the accepted writes publish here, other processes on the store publish too.
            var messages: [ShadowMessage] = []
            for (request, answer) in zip(batch, answers) where request.operation != .get && answer.http.status == 200 {
                messages += answer.mqtt.map { ShadowMessage(topic: $0.0, payload: $0.1) }
            }
            do {
                try store.apply(writes, announcing: messages, expecting: bases)
                return answers
            } catch is ShadowStoreConflict {
                logger.debug("a shadow of the batch changed in another process; handling the batch again")
                continue
            } catch {
                // Nothing of this batch is durable: every request in it fails, the reads too (they
                // may have seen a change that is now lost).
                logger.error("shadow store write failed", metadata: ["error": "\(error)", "requests": "\(batch.count)"])
                answers = failures(batch)
                return answers
            }
        }
        logger.error("shadow store write failed", metadata: ["error": "other processes kept changing the same shadows",
                                                            "requests": "\(batch.count)"])
        return failures(batch)
    }

    private func failures(_ batch: [Request]) -> [Answer] {
        let now = Int64(Date().timeIntervalSince1970)
        return batch.map { request in
            let failure = ShadowError.internalFailure(timestamp: now)
            return Answer(mqtt: [("\(Self.prefix(request.thing, request.name))/\(request.operation.rawValue)/rejected", failure.payload)],
                          http: ShadowHTTPResponse(failure))
        }
    }

    /// What a request comes to: MQTT messages to publish, and the HTTP answer.
    struct Answer {
        var mqtt: [(String, [UInt8])] = []
        var http: ShadowHTTPResponse
    }

    /// Runs on `queue`, within a drain: `shadows` holds what earlier requests of the batch made
    /// of each shadow, `loaded` the version each had in the store, and `writes` collects the
    /// changes to store.
    private func handle(
        _ request: Request, shadows: inout [Key: (document: ShadowDocument?, deletedVersion: Int)],
        loaded loadedVersions: inout [Key: Int], writes: inout [ShadowWrite]
    ) -> Answer {
        let (thing, name, operation, payload) = (request.thing, request.name, request.operation, request.payload)
        let now = Int64(Date().timeIntervalSince1970)
        let topic = Self.prefix(thing, name)
        let shadowName = name.isEmpty ? thing : name
        let key = Key(thing: thing, name: name)
        func rejected(_ error: ShadowError) -> Answer {
            Answer(mqtt: [("\(topic)/\(operation.rawValue)/rejected", error.payload)], http: ShadowHTTPResponse(error))
        }
        if shadows[key] == nil {
            do {
                let loaded = try store.load(thing: thing, name: name)
                let document = loaded.document.flatMap { ShadowDocument(storageBytes: $0) }
                shadows[key] = (document, loaded.deletedVersion)
                loadedVersions[key] = document?.version ?? loaded.deletedVersion
            } catch {
                logger.error("shadow store read failed", metadata: ["error": "\(error)"])
                return rejected(.internalFailure(timestamp: now))
            }
        }
        let (document, deletedVersion) = shadows[key] ?? (nil, 0)
        if document == nil, let thingExists = configuration.thingExists, !thingExists(thing) {
            let token = (try? ShadowRequestOptions.parse(payload, limits: configuration.limits, now: now).get())?.clientToken
            return rejected(.thingNotFound(clientToken: token, timestamp: now))
        }
        if document == nil && operation == .update && !name.isEmpty {
            // A new named shadow: the thing's count is bounded.
            do {
                var names = Set(try store.names(thing: thing).filter { !$0.isEmpty })
                for case .save(let other, let otherName, _, _) in writes where other == thing && !otherName.isEmpty {
                    names.insert(otherName)
                }
                if names.count >= configuration.maxNamedShadowsPerThing && !names.contains(name) {
                    return rejected(ShadowError(
                        code: .badRequest,
                        message: "A thing may have at most \(configuration.maxNamedShadowsPerThing) named shadows",
                        clientToken: nil, timestamp: now))
                }
            } catch {
                logger.error("shadow store read failed", metadata: ["error": "\(error)"])
                return rejected(.internalFailure(timestamp: now))
            }
        }
        switch operation {
        case .update:
            switch Shadow.update(document, request: payload, now: now, limits: configuration.limits, deletedVersion: deletedVersion) {
            case .rejected(let error):
                return rejected(error)
            case .accepted(let update):
                shadows[key] = (update.document, 0)
                writes.append(.save(thing: thing, name: name, document: update.storageBytes, version: update.document.version))
                // accepted, then delta, then documents: the v1 SDK drops a delta whose version it
                // already saw accepted.
                var mqtt = [("\(topic)/update/accepted", update.acceptedPayload)]
                if let delta = update.deltaPayload { mqtt.append(("\(topic)/update/delta", delta)) }
                mqtt.append(("\(topic)/update/documents", update.documentsPayload))
                return Answer(mqtt: mqtt, http: .ok(update.acceptedPayload))
            }
        case .get:
            let options: ShadowRequestOptions
            switch ShadowRequestOptions.parse(payload, limits: configuration.limits, now: now) {
            case .success(let value): options = value
            case .failure(let error): return rejected(error)
            }
            switch Shadow.get(document, shadowName: shadowName, clientToken: options.clientToken, now: now) {
            case .rejected(let error): return rejected(error)
            case .accepted(let bytes): return Answer(mqtt: [("\(topic)/get/accepted", bytes)], http: .ok(bytes))
            }
        case .delete:
            let options: ShadowRequestOptions
            switch ShadowRequestOptions.parse(payload, limits: configuration.limits, now: now) {
            case .success(let value): options = value
            case .failure(let error): return rejected(error)
            }
            switch Shadow.delete(document, shadowName: shadowName, clientToken: options.clientToken, version: options.version, now: now) {
            case .rejected(let error):
                return rejected(error)
            case .accepted(let deletion):
                shadows[key] = (nil, deletion.version)
                writes.append(.delete(thing: thing, name: name, version: deletion.version))
                return Answer(mqtt: [("\(topic)/delete/accepted", deletion.payload)], http: .ok(deletion.payload))
            }
        }
    }

    // MARK: HTTP (iot-data)

    /// GetThingShadow, UpdateThingShadow and DeleteThingShadow: the same operation as over MQTT,
    /// whose MQTT answers (accepted, delta, documents) are published too, as AWS does.
    public func http(thing: String, name: String, operation: String, payload: [UInt8]) async -> ShadowHTTPResponse {
        guard let operation = Operation(rawValue: operation) else { return ShadowHTTPResponse(ShadowError.internalFailure()) }
        if let error = Self.checkNames(thing: thing, name: name) { return ShadowHTTPResponse(error) }
        return await withCheckedContinuation { continuation in
            submit(Request(thing: thing, name: name, operation: operation, payload: payload) { [weak self] answer in
                // A rejected HTTP request is answered over HTTP only; a get is not announced.
                if answer.http.status == 200 && operation != .get { self?.publish(answer.mqtt) }
                continuation.resume(returning: answer.http)
            })
        }
    }

    /// An update from inside the server (fleet configuration): like UpdateThingShadow.
    public func update(thing: String, name: String, payload: [UInt8]) async -> ShadowHTTPResponse {
        await http(thing: thing, name: name, operation: Operation.update.rawValue, payload: payload)
    }

    /// The current documents of one shadow of many things (nil: no such shadow), read after
    /// every request submitted before.
    public func documents(things: [String], name: String) async throws -> [String: ShadowDocument?] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [store] in
                continuation.resume(with: Result {
                    var documents: [String: ShadowDocument?] = [:]
                    for thing in things {
                        documents[thing] = try store.load(thing: thing, name: name).document.flatMap { ShadowDocument(storageBytes: $0) }
                    }
                    return documents
                })
            }
        }
    }

    static func checkNames(thing: String, name: String) -> ShadowError? {
        func valid(_ text: String, _ max: Int) -> Bool {
            (1...max).contains(text.utf8.count) && text.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || ":_-".unicodeScalars.contains($0)
            }
        }
        if !valid(thing, 128) || (!name.isEmpty && !valid(name, 64)) {
            return ShadowError.invalidStateNode("thingName or shadowName")
        }
        return nil
    }

    /// ListNamedShadowsForThing: the names, in order, from `after` on.
    public func namedShadows(thing: String) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [store] in
                continuation.resume(with: Result { try store.names(thing: thing).filter { !$0.isEmpty } })
            }
        }
    }

    /// A deleted thing's shadows go with it.
    public func deleteAll(thing: String) {
        queue.async { [self] in
            do { try store.deleteAll(thing: thing) } catch {
                logger.error("deleting a thing's shadows failed", metadata: ["thing": "\(thing)", "error": "\(error)"])
            }
        }
    }

    /// Publish (`POST /topics/{topic}`) into the broker, as the in-process client.
    public func publish(topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool) async throws {
        try await client.publish(topic, ByteBuffer(bytes: payload), qos: qos, retain: retain).get()
    }

    public func close() {
        follower.set(nil)
        queue.sync { store.close() }
    }

    // MARK: Other processes

    /// Publishes, every `interval`, what other processes on the same store announced (their
    /// accepted updates, deltas and documents), so that a device connected here hears of a
    /// change made through another node.
    public func follow(every interval: DispatchTimeInterval) throws {
        let start = try store.feedPosition()
        let position = NIOLockedValueBox<Int64>(start)
        let step: @Sendable () -> Void = { [weak self] in
            guard let self else { return }
            do {
                let (messages, next) = try store.messages(after: position.withLockedValue { $0 }, limit: 10_000)
                position.withLockedValue { $0 = next }
                publish(messages.map { ($0.topic, $0.payload) })
            } catch {
                logger.error("reading the shadows' change feed failed", metadata: ["error": "\(error)"])
            }
        }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler(handler: step)
        timer.resume()
        follower.set(timer, step: step)
    }

    /// Reads the feed now, not at the next tick (a database notification said that something
    /// was committed). Does nothing unless ``follow(every:)`` runs.
    public func wake() {
        guard let step = follower.step else { return }
        queue.async(execute: step)
    }
}

/// The follower's timer; cancelled when replaced or cleared.
private final class FollowTimer: @unchecked Sendable {
    // `@unchecked Sendable`: `timer` and `followStep` are guarded by `lock`.
    private let lock = NIOLock()
    private var timer: (any DispatchSourceTimer)?
    private var followStep: (@Sendable () -> Void)?

    /// What the timer runs, for a wake-up between ticks.
    var step: (@Sendable () -> Void)? { lock.withLock { followStep } }

    func set(_ new: (any DispatchSourceTimer)?, step: (@Sendable () -> Void)? = nil) {
        lock.withLock {
            timer?.cancel()
            timer = new
            followStep = step
        }
    }
}

/// Breaks the cycle between the service and its client's callback.
private final class WeakBox: @unchecked Sendable {
    // `@unchecked Sendable`: set once in ShadowService.init, before the client connects.
    weak var service: ShadowService?
}
