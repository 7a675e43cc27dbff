import DroverRegistry
import DroverShadow
import DroverShadowService
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Configuration management for fleets: versioned templates of desired state, deployed into a
/// shadow of every member of a thing group or thing type, now and later.
///
/// Invariants:
/// - A template version never changes; an edit is the next version.
/// - `applied[deployment][thing]` is the revision whose configuration the thing's shadow holds,
///   recorded only after the shadow accepted the write. Whatever is not at the current
///   revision (a new member, a new revision, a failed write, a crash in between) is written by
///   the rollout, which runs in ``run()``; writing twice is harmless.
/// - Moving a member from one revision to the next writes the new configuration and `null` for
///   the keys that only the old one set (``ConfigDocument/patch(from:to:)``), so a rollback
///   takes away what the newer version added. Keys that no deployment set are left alone.
///
/// The state is small (templates, deployments, one number per member) and lives in memory;
/// every change is stored before it is answered.
public actor FleetConfigService: Service {
    public struct Configuration: Sendable {
        /// Template documents must fit in a member's shadow.
        public var limits = ShadowLimits()
        /// Shadows written at once by a rollout; their markers are stored in one transaction.
        public var batchSize = 256
        /// How often members whose write failed are tried again.
        public var retryInterval: Duration = .seconds(30)
        /// Versions per template, and revisions per deployment.
        public var maxVersions = 1000
        /// With other processes on the same store: how often to renew the rollout lease and
        /// read their changes. nil: this process is alone.
        public var followInterval: Duration?

        public init(limits: ShadowLimits = ShadowLimits()) { self.limits = limits }
    }

    enum Kind {
        static let template = "template"
        static let templateVersion = "template-version"
        static let deployment = "deployment"
        static let applied = "applied"
        static let factoryDefault = "factory-default"
    }

    let registry: Registry
    let shadows: ShadowService
    let store: any FleetConfigStore
    let configuration: Configuration
    let logger: Logger
    let now: @Sendable () -> Date

    var templates: [String: ConfigTemplate] = [:]
    var versions: [String: [Int: ConfigTemplateVersion]] = [:]
    var deployments: [String: ConfigDeployment] = [:]
    /// Deployment → thing → the revision its shadow holds.
    var applied: [String: [String: AppliedMarker]] = [:]
    /// Deployment → thing → why its last write was refused (until one succeeds).
    var failures: [String: [String: String]] = [:]
    var factoryDefaults: [String: FactoryDefault] = [:]

    /// Deployments waiting for a full rollout pass (all of them if `all`), things whose
    /// membership may have changed, and the wake-up signal.
    private let work = NIOLockedValueBox<Work>(Work(all: true))
    struct Work {
        var all = false
        var names: Set<String> = []
        var things: Set<String> = []
        /// More things than this in one wake-up, and every deployment gets a full pass instead.
        static let maxThings = 10_000
    }
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(registry: Registry, shadows: ShadowService, store: any FleetConfigStore, configuration: Configuration = .init(),
                logger: Logger, now: @escaping @Sendable () -> Date = Date.init) throws {
        self.registry = registry
        self.shadows = shadows
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.now = now
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let loaded = try Self.load(store)
        (templates, versions, deployments, applied, factoryDefaults) =
            (loaded.templates, loaded.versions, loaded.deployments, loaded.applied, loaded.factoryDefaults)
        // At start-up every deployment is checked: members that joined, or writes that a crash
        // interrupted, are caught up.
        wake.yield()
    }

    struct Loaded {
        var templates: [String: ConfigTemplate] = [:]
        var versions: [String: [Int: ConfigTemplateVersion]] = [:]
        var deployments: [String: ConfigDeployment] = [:]
        var applied: [String: [String: AppliedMarker]] = [:]
        var factoryDefaults: [String: FactoryDefault] = [:]
    }

    nonisolated static func load(_ store: any FleetConfigStore) throws -> Loaded {
        var loaded = Loaded()
        let records = try store.loadAll()
        let decoder = JSONDecoder()
        func all<T: Decodable>(_ kind: String, _ type: T.Type) throws -> [(String, T)] {
            try (records[kind] ?? [:]).map { ($0.key, try decoder.decode(T.self, from: Data($0.value))) }
        }
        for (_, template) in try all(Kind.template, ConfigTemplate.self) { loaded.templates[template.name] = template }
        for (_, version) in try all(Kind.templateVersion, ConfigTemplateVersion.self) {
            loaded.versions[version.template, default: [:]][version.version] = version
        }
        for (_, deployment) in try all(Kind.deployment, ConfigDeployment.self) { loaded.deployments[deployment.name] = deployment }
        for (key, marker) in try all(Kind.applied, AppliedMarker.self) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            if parts.count == 2 { loaded.applied[parts[0], default: [:]][parts[1]] = marker }
        }
        for (_, value) in try all(Kind.factoryDefault, FactoryDefault.self) { loaded.factoryDefaults[value.thingType] = value }
        return loaded
    }

    // MARK: Several processes

    /// Whether this process runs the rollouts. With one process, always; with several on one
    /// database, the one that holds the rollout lease (renewed every follow interval), so that
    /// a rollout runs once, not once per node. When the holder stops, another takes the lease
    /// when it runs out, and starts with a full pass.
    private(set) var leads = true
    private var feedPosition: Int64 = 0

    /// One step of following the other processes: the lease, then their configuration changes
    /// (which are loaded again whole: the configuration is small).
    func followStep(interval: Duration) {
        do {
            let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
            let held = try store.holdLease("config-rollout", seconds: max(5, seconds * 8))
            if held && !leads { work.withLockedValue { $0.all = true } }
            leads = held
            let (changed, position) = try store.othersChanged(after: feedPosition)
            feedPosition = position
            if changed {
                let loaded = try Self.load(store)
                (templates, versions, deployments, applied, factoryDefaults) =
                    (loaded.templates, loaded.versions, loaded.deployments, loaded.applied, loaded.factoryDefaults)
                for name in failures.keys where deployments[name] == nil { failures[name] = nil }
                work.withLockedValue { $0.all = true }
            }
            if held { wake.yield() }
        } catch {
            logger.error("following the configuration of other processes failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: The rollout

    /// Rolls deployments out whenever something changes, until shutdown.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            if let interval = configuration.followInterval {
                feedPosition = (try? store.othersChanged(after: .max).position) ?? 0
                followStep(interval: interval)
                group.addTask { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        await self?.followStep(interval: interval)
                    }
                }
            }
            group.addTask { [weak self] in
                while !Task.isCancelled {
                    guard let interval = self?.configuration.retryInterval else { return }
                    try? await Task.sleep(for: interval)
                    await self?.retryFailures()
                }
            }
            for await _ in wakeups.cancelOnGracefulShutdown() {
                // Another process leads: the work waits (it becomes a full pass if this one
                // takes the lease).
                guard leads else { continue }
                let todo = work.withLockedValue { work in
                    defer { work = Work() }
                    return work
                }
                if todo.all { pruneFactoryDefaults() }
                let full = todo.all ? Set(deployments.keys) : todo.names
                for name in full.sorted() { await rollout(name) }
                if !todo.things.isEmpty {
                    for name in Set(deployments.keys).subtracting(full).sorted() { await rollout(name, only: todo.things) }
                }
            }
            group.cancelAll()
        }
    }

    /// Something in the registry changed that may change who is a member. A thing made,
    /// deleted or retyped, or put in or taken out of a group, is looked at alone; a group that
    /// moves, or a thing type that goes, sends every deployment through a full pass. Called on
    /// the registry's writer queue.
    public nonisolated func registryChanged(_ changes: [RegistryRecordChange]) {
        var things = Set<String>()
        var all = false
        for change in changes {
            switch change.kind {
            case Registry.Kind.thing: things.insert(change.key)
            case Registry.Kind.groupMember:
                if let slash = change.key.firstIndex(of: "/") { things.insert(String(change.key[change.key.index(after: slash)...])) }
            case Registry.Kind.thingGroup, Registry.Kind.thingType: all = true
            default: break
            }
        }
        guard all || !things.isEmpty else { return }
        work.withLockedValue { work in
            if all { work.all = true }
            work.things.formUnion(things)
            if work.things.count > Work.maxThings {
                work.all = true
                work.things = []
            }
        }
        wake.yield()
    }

    func schedule(_ name: String) {
        work.withLockedValue { _ = $0.names.insert(name) }
        wake.yield()
    }

    /// A deleted thing type's factory default goes with it.
    private func pruneFactoryDefaults() {
        let types = registry.snapshot.thingTypes
        let gone = factoryDefaults.keys.filter { types[$0] == nil }
        guard !gone.isEmpty else { return }
        persist(gone.map { ConfigRecordChange(kind: Kind.factoryDefault, key: $0, value: nil) })
        for type in gone { factoryDefaults[type] = nil }
    }

    private func retryFailures() {
        for (name, failed) in failures where !failed.isEmpty { schedule(name) }
    }

    /// The things a target reaches now. Costs what the target holds, from the registry's indexes.
    nonisolated static func members(of target: ConfigTarget, in state: RegistryState) -> Set<String> {
        switch target.kind {
        case .thingType:
            return Set(state.typeMembers[target.name] ?? [])
        default:
            var members = Set<String>()
            for group in state.subtree(ofGroup: target.name) { members.formUnion(state.groupMembers[group] ?? []) }
            return members.filter { state.things[$0] != nil }
        }
    }

    /// Whether a target reaches one thing.
    nonisolated static func reaches(_ target: ConfigTarget, _ thing: String, in state: RegistryState) -> Bool {
        guard let record = state.things[thing] else { return false }
        switch target.kind {
        case .thingType: return record.typeName == target.name
        default: return state.groups(ofThing: thing).contains(target.name)
        }
    }

    /// Brings every member of `name` to its current revision (with `only`: those of these
    /// things that are members, and it forgets those that left). The actor is free while
    /// shadows are written; a change of revision meanwhile starts the pass over.
    private func rollout(_ name: String, only: Set<String>? = nil) async {
        passes: while let deployment = deployments[name] {
            let state = registry.snapshot
            let members = only.map { $0.filter { Self.reaches(deployment.target, $0, in: state) } }
                ?? Self.members(of: deployment.target, in: state)
            var done = applied[name] ?? [:]
            let left = (only.map { Array($0) } ?? Array(done.keys)).filter { done[$0] != nil && !members.contains($0) }
            if !left.isEmpty {
                // Members that left keep their configuration; they are no longer followed.
                for thing in left { done[thing] = nil }
                failures[name]?.removeValue(forKeys: left)
                applied[name] = done
                persist(left.map { ConfigRecordChange(kind: Kind.applied, key: "\(name)/\($0)", value: nil) })
            }
            let todo = members.filter { done[$0]?.revision != deployment.revision }.sorted()
            guard !todo.isEmpty, let configuration = document(deployment.template, deployment.templateVersion) else { return }
            for start in stride(from: 0, to: todo.count, by: self.configuration.batchSize) {
                guard deployments[name]?.revision == deployment.revision else { continue passes }
                let batch = todo[start..<min(start + self.configuration.batchSize, todo.count)]
                let writes = batch.map { thing -> (String, [UInt8]) in
                    let old = applied[name]?[thing].flatMap { deployment.templateVersion(ofRevision: $0.revision) }.flatMap {
                        document(deployment.template, $0)
                    }
                    return (thing, ConfigDocument.updateRequest(ConfigDocument.patch(from: old, to: configuration)))
                }
                let results = await withTaskGroup(of: (String, ShadowHTTPResponse).self) { group in
                    for (thing, payload) in writes {
                        group.addTask { [shadows] in
                            (thing, await shadows.update(thing: thing, name: deployment.shadowName, payload: payload))
                        }
                    }
                    var results: [(String, ShadowHTTPResponse)] = []
                    for await result in group { results.append(result) }
                    return results
                }
                guard deployments[name] != nil else { return }
                var markers: [ConfigRecordChange] = []
                for (thing, answer) in results {
                    if answer.status == 200 {
                        let marker = AppliedMarker(revision: deployment.revision, shadowVersion: Self.version(of: answer))
                        applied[name, default: [:]][thing] = marker
                        failures[name]?[thing] = nil
                        markers.append(ConfigRecordChange(kind: Kind.applied, key: "\(name)/\(thing)", value: Self.encode(marker)))
                    } else {
                        let message = Self.message(of: answer)
                        failures[name, default: [:]][thing] = message
                        logger.warning("configuration not written", metadata: [
                            "deployment": "\(name)", "thing": "\(thing)", "status": "\(answer.status)", "error": "\(message)",
                        ])
                    }
                }
                persist(markers)
            }
            if deployments[name]?.revision == deployment.revision { return }
        }
    }

    /// Markers that fail to store are written again by the next pass: the shadow write is
    /// idempotent.
    func persist(_ changes: [ConfigRecordChange]) {
        guard !changes.isEmpty else { return }
        do { try store.apply(changes, audit: nil) } catch {
            logger.error("configuration store write failed", metadata: ["error": "\(error)"])
        }
    }

    nonisolated static func message(of answer: ShadowHTTPResponse) -> String {
        if case .object(let members)? = try? JSONValue.parse(answer.body).get(), let message = members["message"]?.stringValue {
            return "\(answer.status): \(message)"
        }
        return "\(answer.status)"
    }

    /// The shadow version an accepted update answered with.
    nonisolated static func version(of answer: ShadowHTTPResponse) -> Int {
        guard case .object(let members)? = try? JSONValue.parse(answer.body).get(),
              let version = members["version"]?.numberValue?.int64Value else { return 0 }
        return Int(version)
    }

    nonisolated static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(value)) ?? Data())
    }

    /// A stored template version's document.
    func document(_ template: String, _ version: Int) -> [String: JSONValue]? {
        guard let text = versions[template]?[version]?.document, case .object(let members)? = try? JSONValue.parse(text).get() else {
            return nil
        }
        return members
    }

    /// Stores `changes` and their audit entry in one transaction; a failed store write changes
    /// nothing and is refused.
    func commit(_ caller: Caller, _ operation: String, _ resource: String, _ changes: [ConfigRecordChange]) throws {
        let entry = AuditEntry(time: now().timeIntervalSince1970, principal: caller.principal, operation: operation,
                               resource: resource, outcome: "success")
        do { try store.apply(changes, audit: entry) } catch {
            logger.error("configuration store write failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
            registry.audit(caller, operation, resource, outcome: RegistryError.Kind.internalFailure.awsName, message: "storage failure")
            throw RegistryError(.internalFailure, "storage failure; nothing was changed")
        }
    }

    /// Runs `body`; a refusal is audited and rethrown.
    func audited<T>(_ caller: Caller, _ operation: String, _ resource: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as RegistryError {
            registry.audit(caller, operation, resource, outcome: error.kind.awsName, message: error.message)
            throw error
        }
    }
}

/// The revision of a deployment that a member's shadow holds, and the shadow version that the
/// write made (to tell a report in the same second before it from one after it).
struct AppliedMarker: Codable, Hashable, Sendable {
    var revision: Int
    var shadowVersion: Int
}

extension Dictionary {
    mutating func removeValue(forKeys keys: [Key]) {
        for key in keys { removeValue(forKey: key) }
    }
}
