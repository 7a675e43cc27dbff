import DroverPolicy
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Everything the registry holds, as one value: readers take a snapshot, writers replace it.
public struct RegistryState: Sendable {
    public var things: [String: Thing] = [:]
    public var thingTypes: [String: ThingType] = [:]
    public var accessKeys: [String: AccessKey] = [:]
    public var certificates: [String: CertificateRecord] = [:]
    public var caCertificates: [String: CACertificateRecord] = [:]
    public var policies: [String: PolicyRecord] = [:]
    /// The default version of each policy, parsed once.
    public var parsedPolicies: [String: PolicyDocument] = [:]
    /// Thing name → ids of the certificates attached to it.
    public var thingPrincipals: [String: Set<String>] = [:]
    /// Policy name → targets: "cert/ID" for certificates, "thinggroup/NAME" for groups.
    public var policyTargets: [String: Set<String>] = [:]
    public var thingGroups: [String: ThingGroup] = [:]
    /// Group name → names of the things in it (directly).
    public var groupMembers: [String: Set<String>] = [:]
    public var billingGroups: [String: BillingGroup] = [:]
    /// Billing group name → its things; derived from `Thing.billingGroupName` (not stored).
    public var billingGroupMembers: [String: Set<String>] = [:]
    /// Thing name → the certificates attached to it as EXCLUSIVE_THING (the others are
    /// NON_EXCLUSIVE_THING).
    public var exclusivePrincipals: [String: Set<String>] = [:]
    /// Resource ("thing/NAME", "policy/NAME", ...: the ARN's resource part) → its tags.
    public var tags: [String: [String: String]] = [:]
    public var roleAliases: [String: RoleAlias] = [:]
    /// "CERTIFICATE_ID/ROLE_ALIAS" → the temporary key issued for it; derived (not stored).
    public var temporaryKeys: [String: String] = [:]

    public init() {}

    /// The things a certificate is attached to.
    public func things(ofCertificate id: String) -> [String] {
        thingPrincipals.compactMap { $0.value.contains(id) ? $0.key : nil }.sorted()
    }

    /// The policies attached to any of `targets` ("cert/ID", "thinggroup/NAME"), parsed, in name order.
    public func policies(attachedTo targets: Set<String>) -> [NamedPolicy] {
        policyTargets.filter { !$0.value.isDisjoint(with: targets) }.keys.sorted().compactMap { name in
            parsedPolicies[name].map { NamedPolicy(name: name, document: $0) }
        }
    }

    /// A group and its ancestors, from the group up to the root.
    public func lineage(ofGroup name: String) -> [ThingGroup] {
        var result: [ThingGroup] = []
        var next: String? = name
        while let current = next, let group = thingGroups[current], result.count < 16 {
            result.append(group)
            next = group.parent
        }
        return result
    }

    /// The groups a thing is in directly, and their ancestors.
    public func groups(ofThing thing: String) -> Set<String> {
        var names = Set<String>()
        for (group, members) in groupMembers where members.contains(thing) {
            for ancestor in lineage(ofGroup: group) { names.insert(ancestor.name) }
        }
        return names
    }

    /// A group's attributes with those inherited from its ancestors (the nearest wins).
    public func effectiveAttributes(ofGroup name: String) -> [String: String] {
        var attributes: [String: String] = [:]
        for group in lineage(ofGroup: name).reversed() { attributes.merge(group.attributes) { _, new in new } }
        return attributes
    }
}

/// Who asked, for the audit log and the ARNs of the answer.
public struct Caller: Sendable, Hashable {
    /// The access key id that signed the request ("drover" for the server itself).
    public var principal: String
    /// The region of the request's signing scope.
    public var region: String

    public init(principal: String, region: String) {
        self.principal = principal
        self.region = region
    }
}

public struct RegistryConfiguration: Sendable, Hashable {
    /// The account id in ARNs. Default: the one that AWS examples use.
    public var account: String = "123456789012"

    public init(account: String = "123456789012") { self.account = account }
}

/// The device registry: things, thing types, access keys (and the audit log of every change).
///
/// `@unchecked Sendable`: `state` is guarded by `lock`. Mutations run one at a time on `queue`:
/// each works on a copy, stores its records and its audit entry in one transaction, and only then
/// publishes the copy, so readers never see a change that is not durable.
public final class Registry: @unchecked Sendable {
    public let configuration: RegistryConfiguration
    let store: any RegistryStore
    let logger: Logger
    private let lock = NIOLock()
    private var state: RegistryState
    private let queue = DispatchQueue(label: "drover.registry.writer")
    private let listeners = NIOLockedValueBox<[@Sendable (RegistryState, [RegistryRecordChange]) -> Void]>([])
    /// Each access key's parsed policy, kept while its text stays the same.
    let keyPolicies = NIOLockedValueBox<[String: (text: String, policy: APIPolicy?)]>([:])

    public init(configuration: RegistryConfiguration = .init(), store: any RegistryStore, logger: Logger = Logger(label: "drover.registry")) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.state = try Registry.load(try store.loadAll())
    }

    /// The current state; cheap (copy on write).
    public var snapshot: RegistryState { lock.withLock { state } }

    /// Calls `listener` after every change, with the new state and the records that changed, on
    /// the registry's writer queue.
    public func onChange(_ listener: @escaping @Sendable (RegistryState, [RegistryRecordChange]) -> Void) {
        listeners.withLockedValue { $0.append(listener) }
    }

    /// Runs `body` on a copy of the state. What it returns is the answer; the records it lists
    /// are stored with an audit entry in one transaction, then the copy becomes the state. A
    /// refusal is audited too, and changes nothing.
    func mutate<T: Sendable>(
        _ caller: Caller, _ operation: String, _ resource: String,
        _ body: @escaping @Sendable (inout RegistryState, inout [RegistryRecordChange]) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            queue.async { [self] in
                var copy = lock.withLock { state }
                var changes: [RegistryRecordChange] = []
                let now = Date().timeIntervalSince1970
                do {
                    let result = try body(&copy, &changes)
                    let entry = AuditEntry(time: now, principal: caller.principal, operation: operation,
                                           resource: resource, outcome: "success")
                    try store.apply(changes, audit: entry)
                    lock.withLock { state = copy }
                    if !changes.isEmpty {
                        for listener in listeners.withLockedValue({ $0 }) { listener(copy, changes) }
                    }
                    continuation.resume(returning: result)
                } catch let error as RegistryError {
                    let entry = AuditEntry(time: now, principal: caller.principal, operation: operation,
                                           resource: resource, outcome: error.kind.awsName, message: error.message)
                    do { try store.appendAudit(entry) } catch {
                        logger.error("audit write failed", metadata: ["error": "\(error)"])
                    }
                    continuation.resume(throwing: error)
                } catch {
                    logger.error("registry write failed", metadata: ["operation": "\(operation)", "error": "\(error)"])
                    continuation.resume(throwing: RegistryError(.internalFailure, "storage failure; nothing was changed"))
                }
            }
        }
    }

    /// Appends an audit entry in the order of the writes.
    func appendAudit(_ entry: AuditEntry) {
        queue.async { [self] in
            do { try store.appendAudit(entry) } catch {
                logger.error("audit write failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Closes the store after the writes already queued; nothing may change the registry after.
    public func close() {
        queue.sync { store.close() }
    }

    /// At start-up: stores `key` unless the same key is there already; true if it was stored.
    /// Synchronous, because it runs before the server serves anything.
    public func installAccessKey(_ key: AccessKey) throws -> Bool {
        try queue.sync {
            var copy = lock.withLock { state }
            if copy.accessKeys[key.id] == key { return false }
            // A revoked key stays revoked, whatever the configuration still names.
            if let existing = copy.accessKeys[key.id], !existing.active {
                logger.warning("a configured access key was revoked and stays revoked", metadata: ["accessKeyId": "\(key.id)"])
                return false
            }
            copy.accessKeys[key.id] = key
            let entry = AuditEntry(time: Date().timeIntervalSince1970, principal: "drover", operation: "CreateAccessKey",
                                   resource: "access-key/\(key.id)", outcome: "success", message: key.name)
            try store.apply([Self.record(Kind.accessKey, key.id, key)], audit: entry)
            lock.withLock { state = copy }
            return true
        }
    }

    /// At start-up: registers Drover's own CA (ACTIVE, not deletable) unless it is there.
    public func installBuiltInCA(_ facts: CertificateFacts) throws {
        try queue.sync {
            var copy = lock.withLock { state }
            if copy.caCertificates[facts.id] != nil { return }
            let record = CACertificateRecord(
                id: facts.id, pem: facts.pem, status: "ACTIVE", subject: facts.subject, notBefore: facts.notBefore,
                notAfter: facts.notAfter, createdAt: Date().timeIntervalSince1970, builtIn: true)
            copy.caCertificates[facts.id] = record
            let entry = AuditEntry(time: Date().timeIntervalSince1970, principal: "drover", operation: "RegisterCACertificate",
                                   resource: "cacert/\(facts.id)", outcome: "success", message: "built-in CA")
            try store.apply([Self.record(Kind.caCertificate, facts.id, record)], audit: entry)
            lock.withLock { state = copy }
        }
    }

    /// Appends an entry for a change that another part made (fleet configuration), after the
    /// writes already queued.
    public func audit(_ caller: Caller, _ operation: String, _ resource: String, outcome: String = "success", message: String? = nil) {
        let entry = AuditEntry(time: Date().timeIntervalSince1970, principal: caller.principal, operation: operation, resource: resource,
                               outcome: outcome, message: message)
        queue.async { [store, logger] in
            do { try store.appendAudit(entry) } catch { logger.error("audit write failed", metadata: ["error": "\(error)"]) }
        }
    }

    /// Reads on the writer queue too, for answers that must follow earlier writes of the caller.
    public func auditLog(_ query: AuditQuery) async throws -> [AuditEntry] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [store] in
                continuation.resume(with: Result { try store.queryAudit(query) })
            }
        }
    }

    // MARK: Records

    /// The kinds of records, as `RegistryRecordChange.kind` names them.
    public enum Kind {
        public static let thing = "thing"
        public static let thingType = "thing-type"
        public static let accessKey = "access-key"
        public static let certificate = "certificate"
        public static let caCertificate = "ca-certificate"
        public static let policy = "policy"
        /// Key: thing name; value: the certificate ids attached.
        public static let thingPrincipals = "thing-principals"
        /// Key: policy name; value: its targets.
        public static let policyTargets = "policy-targets"
        public static let thingGroup = "thing-group"
        /// Key: group name; value: the names of its things.
        public static let groupMembers = "group-members"
        public static let billingGroup = "billing-group"
        /// Key: thing name; value: the certificate ids attached exclusively.
        public static let exclusivePrincipals = "exclusive-principals"
        /// Key: the resource ("thing/NAME"); value: its tags.
        public static let tags = "tags"
        public static let roleAlias = "role-alias"
    }

    static func record(_ kind: String, _ key: String, _ value: some Encodable) -> RegistryRecordChange {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding our own plain structs cannot fail.
        let bytes = (try? encoder.encode(value)).map(Array.init) ?? []
        return RegistryRecordChange(kind: kind, key: key, value: bytes)
    }

    static func removal(_ kind: String, _ key: String) -> RegistryRecordChange {
        RegistryRecordChange(kind: kind, key: key, value: nil)
    }

    private static func load(_ records: [String: [String: [UInt8]]]) throws -> RegistryState {
        let decoder = JSONDecoder()
        func all<T: Decodable>(_ kind: String, _ type: T.Type) throws -> [String: T] {
            try (records[kind] ?? [:]).mapValues { try decoder.decode(T.self, from: Data($0)) }
        }
        var state = RegistryState()
        state.things = try all(Kind.thing, Thing.self)
        state.thingTypes = try all(Kind.thingType, ThingType.self)
        state.accessKeys = try all(Kind.accessKey, AccessKey.self)
        state.certificates = try all(Kind.certificate, CertificateRecord.self)
        state.caCertificates = try all(Kind.caCertificate, CACertificateRecord.self)
        state.policies = try all(Kind.policy, PolicyRecord.self)
        for (name, policy) in state.policies {
            if case .success(let document) = PolicyDocument.parse(policy.defaultDocument) { state.parsedPolicies[name] = document }
        }
        state.thingPrincipals = try all(Kind.thingPrincipals, Set<String>.self).filter { !$0.value.isEmpty }
        state.policyTargets = try all(Kind.policyTargets, Set<String>.self).filter { !$0.value.isEmpty }
        state.thingGroups = try all(Kind.thingGroup, ThingGroup.self)
        state.groupMembers = try all(Kind.groupMembers, Set<String>.self).filter { !$0.value.isEmpty }
        state.billingGroups = try all(Kind.billingGroup, BillingGroup.self)
        for thing in state.things.values {
            if let group = thing.billingGroupName { state.billingGroupMembers[group, default: []].insert(thing.name) }
        }
        state.exclusivePrincipals = try all(Kind.exclusivePrincipals, Set<String>.self).filter { !$0.value.isEmpty }
        state.tags = try all(Kind.tags, [String: String].self).filter { !$0.value.isEmpty }
        state.roleAliases = try all(Kind.roleAlias, RoleAlias.self)
        for key in state.accessKeys.values where key.active {
            if let pair = key.issuedFor { state.temporaryKeys[pair] = key.id }
        }
        return state
    }

    // MARK: ARNs

    public func arn(_ region: String, _ resource: String) -> String {
        "arn:aws:iot:\(region):\(configuration.account):\(resource)"
    }
}
