import DroverPolicy
import Foundation
import HashTreeCollections
import Logging
import NIOConcurrencyHelpers

/// One change of the registry, as its listeners see it.
public struct RegistryUpdate: Sendable {
    /// The state before the change.
    public var previous: RegistryState
    /// The state after it.
    public var state: RegistryState
    /// The records the change wrote or removed.
    public var changes: [RegistryRecordChange]
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
    /// The number of the last change-feed row that `state` holds; used on `queue` only.
    private var position: Int64 = 0
    private let follower = NIOLockedValueBox<(any DispatchSourceTimer)?>(nil)
    private let queue = DispatchQueue(label: "drover.registry.writer")
    private let listeners = NIOLockedValueBox<[@Sendable (RegistryUpdate) -> Void]>([])
    /// Each access key's parsed policy, kept while its text stays the same.
    let keyPolicies = NIOLockedValueBox<[String: (text: String, policy: APIPolicy?)]>([:])

    public init(configuration: RegistryConfiguration = .init(), store: any RegistryStore, logger: Logger = Logger(label: "drover.registry")) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        // The position first: a change committed meanwhile is then taken in twice, which is
        // harmless (each row sets a record to its current value), rather than missed.
        self.position = try store.feedPosition()
        let (state, upgrade) = try Registry.load { try store.forEachRecord($0) }
        self.state = state
        if !upgrade.isEmpty {
            let entry = AuditEntry(time: Date().timeIntervalSince1970, principal: "drover", operation: "UpgradeRecords",
                                   resource: "registry", outcome: "success",
                                   message: "\(upgrade.count) records rewritten in the current layout")
            try store.apply(upgrade, audit: entry)
        }
    }

    /// The current state; cheap (copy on write).
    public var snapshot: RegistryState { lock.withLock { state } }

    /// Calls `listener` after every change, with the states before and after and the records
    /// that changed, on the registry's writer queue.
    public func onChange(_ listener: @escaping @Sendable (RegistryUpdate) -> Void) {
        listeners.withLockedValue { $0.append(listener) }
    }

    /// A command waiting for the writer: it changes the state (or refuses), and is answered
    /// once the transaction that holds it has committed.
    private struct Command: Sendable {
        var caller: Caller
        var operation: String
        var resource: String
        var time: Double
        /// Runs the command on the state; what it returns answers the caller.
        var run: @Sendable (inout RegistryState, inout [RegistryRecordChange]) throws -> @Sendable () -> Void
        var fail: @Sendable (any Error) -> Void
    }

    /// Commands not yet taken by the writer, oldest first.
    private let pending = NIOLockedValueBox<[Command]>([])
    /// The most commands one transaction takes: enough to share one commit (and its fsync)
    /// among all the requests in flight, few enough that one refusal costs little to redo.
    static let maxBatch = 64

    /// Runs `body` on a copy of the state. What it returns is the answer; the records it lists
    /// are stored with an audit entry in one transaction, then the copy becomes the state. A
    /// refusal is audited too, and changes nothing.
    ///
    /// Group commit: the commands that arrive while a transaction is being written go into the
    /// next one together, each in its turn, each with its own audit entry; a command that
    /// refuses leaves the others unchanged. All of them are answered after that one commit.
    func mutate<T: Sendable>(
        _ caller: Caller, _ operation: String, _ resource: String,
        _ body: @escaping @Sendable (inout RegistryState, inout [RegistryRecordChange]) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let command = Command(
                caller: caller, operation: operation, resource: resource, time: Date().timeIntervalSince1970,
                run: { state, changes in
                    let result = try body(&state, &changes)
                    return { continuation.resume(returning: result) }
                },
                fail: { continuation.resume(throwing: $0) })
            pending.withLockedValue { $0.append(command) }
            // One drain per command, in the queue's order: whatever else is queued after this
            // command (an audit entry, a read) runs after it has been written. A drain that
            // finds nothing left (an earlier one took this command) returns at once.
            queue.async { [self] in drain() }
        }
    }

    /// On the writer queue: the waiting commands (up to ``maxBatch``) in one transaction.
    private func drain() {
        let batch: [Command] = pending.withLockedValue { waiting in
            let taken = Array(waiting.prefix(Self.maxBatch))
            waiting.removeFirst(taken.count)
            return taken
        }
        guard !batch.isEmpty else { return }
        var answers: [Result<@Sendable () -> Void, any Error>] = []
        do {
            try commit { state, changes in
                answers = []
                var audits: [AuditEntry] = []
                for command in batch {
                    var attempt = state
                    var written: [RegistryRecordChange] = []
                    let refusal: RegistryError?
                    do {
                        let answer = try command.run(&attempt, &written)
                        state = attempt
                        changes += written
                        answers.append(.success(answer))
                        refusal = nil
                    } catch let error as RegistryError {
                        refusal = error
                    } catch {
                        logger.error("a registry command failed", metadata: ["operation": "\(command.operation)", "error": "\(error)"])
                        refusal = RegistryError(.internalFailure, "the command failed; nothing was changed")
                    }
                    if let refusal { answers.append(.failure(refusal)) }
                    audits.append(AuditEntry(time: command.time, principal: command.caller.principal, operation: command.operation,
                                             resource: command.resource, outcome: refusal?.kind.awsName ?? "success",
                                             message: refusal?.message))
                }
                return ((), audits)
            }
        } catch {
            logger.error("registry write failed", metadata: ["commands": "\(batch.count)", "error": "\(error)"])
            let failure = RegistryError(.internalFailure, "storage failure; nothing was changed")
            for command in batch { command.fail(failure) }
            return
        }
        for (command, answer) in zip(batch, answers) {
            switch answer {
            case .success(let resume): resume()
            case .failure(let error): command.fail(error)
            }
        }
    }

    /// On the writer queue: one write transaction. It first takes in what other writers on the
    /// same database committed since this registry last looked (so that `body` decides on the
    /// current truth, under the database's write lock), then runs `body` on a copy, stores its
    /// records and audit entries, and publishes the copy. If `body` throws, nothing is written,
    /// and the changes taken in are still published.
    private func commit<T>(_ body: (inout RegistryState, inout [RegistryRecordChange]) throws -> (T, [AuditEntry])) throws -> T {
        let previous = lock.withLock { state }
        var caughtUp = previous
        var external: [RegistryRecordChange] = []
        var outcome: (T, RegistryState, [RegistryRecordChange])?
        do {
            let newPosition = try store.write(after: position) { entries in
                external = entries
                caughtUp = previous
                for entry in entries { try caughtUp.apply(entry) }
                var copy = caughtUp
                var changes: [RegistryRecordChange] = []
                let (result, audits) = try body(&copy, &changes)
                changes += Self.certificateOrderRecords(changes, before: caughtUp, after: copy)
                outcome = (result, copy, changes)
                return (changes, audits)
            }
            position = newPosition
        } catch {
            if !external.isEmpty {
                // What others committed is true whatever became of this write.
                publish(previous: previous, caughtUp, external)
            }
            throw error
        }
        guard let (result, copy, changes) = outcome else { throw RegistryError(.internalFailure, "the write did not run") }
        publish(previous: previous, copy, external + changes)
        return result
    }

    private func publish(previous: RegistryState, _ next: RegistryState, _ changes: [RegistryRecordChange]) {
        lock.withLock { state = next }
        guard !changes.isEmpty else { return }
        let update = RegistryUpdate(previous: previous, state: next, changes: changes)
        for listener in listeners.withLockedValue({ $0 }) { listener(update) }
    }

    /// Takes in what other writers on the same database committed (another `drover serve` on
    /// it): their records are applied to the state and the listeners hear of them as of this
    /// registry's own changes. Called every `interval` by ``follow(every:)``; a reader further
    /// behind than the feed reaches reloads everything.
    public func catchUp() {
        queue.async { [self] in
            do {
                guard let (entries, newPosition) = try store.changes(after: position, limit: 10_000) else {
                    logger.warning("the registry fell behind the change feed; reloading it")
                    // The position first, as at start-up: a change committed meanwhile is read twice, not missed.
                    let at = try store.feedPosition()
                    let records = try store.loadAll()
                    let previous = lock.withLock { state }
                    let (reloaded, _) = try Self.load(records)
                    position = at
                    // Every record may have changed: the listeners hear of them all.
                    var changes: [RegistryRecordChange] = []
                    for (kind, byKey) in records { for (key, value) in byKey { changes.append(.init(kind: kind, key: key, value: value)) } }
                    for thing in previous.things.keys where reloaded.things[thing] == nil { changes.append(Self.removal(Kind.thing, thing)) }
                    publish(previous: previous, reloaded, changes)
                    return
                }
                guard newPosition > position else { return }
                let previous = lock.withLock { state }
                var next = previous
                for entry in entries { try next.apply(entry) }
                position = newPosition
                publish(previous: previous, next, entries)
            } catch {
                logger.error("reading the registry's change feed failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Follows the change feed every `interval`, until the registry is closed.
    public func follow(every interval: DispatchTimeInterval) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.catchUp() }
        timer.resume()
        follower.withLockedValue { $0 = timer }
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
        follower.withLockedValue { $0?.cancel() }
        queue.sync { store.close() }
    }

    /// At start-up: stores `key` unless the same key is there already; true if it was stored.
    /// Synchronous, because it runs before the server serves anything.
    public func installAccessKey(_ key: AccessKey) throws -> Bool {
        try queue.sync {
            try commit { state, changes in
                if state.accessKeys[key.id] == key { return (false, []) }
                // A revoked key stays revoked, whatever the configuration still names.
                if let existing = state.accessKeys[key.id], !existing.active {
                    logger.warning("a configured access key was revoked and stays revoked", metadata: ["accessKeyId": "\(key.id)"])
                    return (false, [])
                }
                state.put(accessKey: key.id, key)
                changes.append(Self.record(Kind.accessKey, key.id, key))
                return (true, [AuditEntry(time: Date().timeIntervalSince1970, principal: "drover", operation: "CreateAccessKey",
                                          resource: "access-key/\(key.id)", outcome: "success", message: key.name)])
            }
        }
    }

    /// At start-up: registers Drover's own CA (ACTIVE, not deletable) unless it is there.
    public func installBuiltInCA(_ facts: CertificateFacts) throws {
        try queue.sync {
            try commit { state, changes in
                if state.caCertificates[facts.id] != nil { return ((), []) }
                let record = CACertificateRecord(
                    id: facts.id, pem: facts.pem, status: "ACTIVE", subject: facts.subject, notBefore: facts.notBefore,
                    notAfter: facts.notAfter, createdAt: Date().timeIntervalSince1970, builtIn: true)
                state.caCertificates[facts.id] = record
                changes.append(Self.record(Kind.caCertificate, facts.id, record))
                return ((), [AuditEntry(time: Date().timeIntervalSince1970, principal: "drover", operation: "RegisterCACertificate",
                                        resource: "cacert/\(facts.id)", outcome: "success", message: "built-in CA")])
            }
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
        /// A certificate's metadata and status, without its PEM (see `certificatePEM`).
        public static let certificate = "certificate"
        /// Key: certificate id; value: `{"pem":"..."}`. Written once, when the certificate is
        /// registered, and read only when asked for (DescribeCertificate): a PEM is about 650
        /// bytes, so a million of them are kept in the database, not in every node's memory.
        public static let certificatePEM = "certificate-pem"
        public static let caCertificate = "ca-certificate"
        public static let policy = "policy"
        /// Key: thing name; value: the certificate ids attached.
        public static let thingPrincipals = "thing-principals"
        /// Key: "POLICY/TARGET" (a policy name holds no '/'); value: `{}`. One record per link,
        /// so that attaching a policy to its millionth certificate writes one small record.
        public static let policyTarget = "policy-target"
        /// Before the storage spine: key: policy name; value: all its targets. Read once and
        /// rewritten as `policyTarget` records.
        static let legacyPolicyTargets = "policy-targets"
        public static let thingGroup = "thing-group"
        /// Key: "GROUP/THING" (names hold no '/'); value: `{}`. One record per member.
        public static let groupMember = "group-member"
        /// Before the storage spine: key: group name; value: all its things. Rewritten as
        /// `groupMember` records.
        static let legacyGroupMembers = "group-members"
        public static let billingGroup = "billing-group"
        /// Key: thing name; value: the certificate ids attached exclusively.
        public static let exclusivePrincipals = "exclusive-principals"
        /// Key: the resource ("thing/NAME"); value: its tags.
        public static let tags = "tags"
        public static let roleAlias = "role-alias"
        /// Key: the certificate's creation time (`orderKey`) and its id; value: `{}`. Derived
        /// from the certificate records, in the same transaction: ListCertificates pages through
        /// this index in creation order, so a page costs what it holds, not the whole registry.
        public static let certificateByDate = "certificate-by-date"
        /// Key: "CA_ID/" and the same; ListCertificatesByCA's index.
        public static let certificateByCA = "certificate-by-ca"
    }

    /// A certificate's place in creation order: the time, fixed width (so that byte order is
    /// time order), then the id, which breaks ties. It is also the pages' token.
    static func orderKey(_ certificate: CertificateRecord) -> String {
        String(format: "%020.6f", certificate.createdAt) + certificate.id
    }

    /// The index records of one certificate (present, or their removal).
    static func orderRecords(_ certificate: CertificateRecord, present: Bool) -> [RegistryRecordChange] {
        let key = orderKey(certificate)
        let value: [UInt8]? = present ? Array("{}".utf8) : nil
        var records = [RegistryRecordChange(kind: Kind.certificateByDate, key: key, value: value)]
        if let ca = certificate.caCertificateId {
            records.append(RegistryRecordChange(kind: Kind.certificateByCA, key: ca + "/" + key, value: value))
        }
        return records
    }

    /// The index records that follow the certificate records among `changes` (a certificate
    /// added, removed, or given another creation time or CA), from the states around them.
    static func certificateOrderRecords(_ changes: [RegistryRecordChange], before: RegistryState,
                                        after: RegistryState) -> [RegistryRecordChange] {
        var records: [RegistryRecordChange] = []
        var seen = Set<String>()
        for change in changes where change.kind == Kind.certificate && seen.insert(change.key).inserted {
            let old = before.certificates[change.key], new = after.certificates[change.key]
            if let old, let new, old.createdAt == new.createdAt, old.caCertificateId == new.caCertificateId { continue }
            if let old { records += orderRecords(old, present: false) }
            if let new { records += orderRecords(new, present: true) }
        }
        return records
    }

    static func record(_ kind: String, _ key: String, _ value: some Encodable) -> RegistryRecordChange {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Encoding our own plain structs cannot fail.
        let bytes = (try? encoder.encode(value)).map(Array.init) ?? []
        return RegistryRecordChange(kind: kind, key: key, value: bytes)
    }

    /// A thing's record, written by hand: things are the records written most often, and
    /// `JSONEncoder` cost more than the rest of the record's write. The same members, in the same
    /// (sorted) order, as the encoder wrote them.
    static func record(_ kind: String, _ key: String, _ thing: Thing) -> RegistryRecordChange {
        RegistryRecordChange(kind: kind, key: key, value: thing.recordJSON)
    }

    /// A certificate's record, by hand as well: one is written by every CreateKeysAndCertificate.
    static func record(_ kind: String, _ key: String, _ certificate: CertificateRecord) -> RegistryRecordChange {
        RegistryRecordChange(kind: kind, key: key, value: certificate.recordJSON)
    }

    /// A certificate's PEM, in a record of its own.
    static func pemRecord(_ id: String, _ pem: String) -> RegistryRecordChange {
        var writer = JSONObjectWriter(capacity: pem.utf8.count + 32)
        writer.add("pem", pem)
        return RegistryRecordChange(kind: Kind.certificatePEM, key: id, value: writer.finish())
    }

    static func removal(_ kind: String, _ key: String) -> RegistryRecordChange {
        RegistryRecordChange(kind: kind, key: key, value: nil)
    }

    /// A link record: "POLICY/TARGET" or "GROUP/THING".
    static func link(_ kind: String, _ from: String, _ to: String, present: Bool) -> RegistryRecordChange {
        RegistryRecordChange(kind: kind, key: from + "/" + to, value: present ? Array("{}".utf8) : nil)
    }

    static func splitLink(_ key: String) -> (String, String)? {
        guard let slash = key.firstIndex(of: "/") else { return nil }
        return (String(key[..<slash]), String(key[key.index(after: slash)...]))
    }

    /// The state from the stored records, and the rewrites that bring records of an older
    /// layout to the current one (to be applied before anything else is written).
    static func load(_ records: [String: [String: [UInt8]]]) throws -> (RegistryState, [RegistryRecordChange]) {
        try load { body in
            for (kind, byKey) in records { for (key, value) in byKey { try body(kind, key, value) } }
        }
    }

    /// The state from the stored records, read one at a time, and the rewrites that bring
    /// records of an older layout to the current one (to be applied before anything else is
    /// written).
    static func load(_ each: ((String, String, [UInt8]) throws -> Void) throws -> Void) throws -> (RegistryState, [RegistryRecordChange]) {
        let decoder = JSONDecoder()
        var state = RegistryState()
        var upgrade: [RegistryRecordChange] = []
        var ordered = (byDate: 0, byCA: 0)
        try each { kind, key, bytes in
            switch kind {
            case Kind.certificateByDate: ordered.byDate += 1
            case Kind.certificateByCA: ordered.byCA += 1
            case Kind.legacyGroupMembers:
                for thing in try decoder.decode(Set<String>.self, from: Data(bytes)).sorted() {
                    state.add(thing: thing, toGroup: key)
                    upgrade.append(link(Kind.groupMember, key, thing, present: true))
                }
                upgrade.append(removal(Kind.legacyGroupMembers, key))
            case Kind.legacyPolicyTargets:
                for target in try decoder.decode(Set<String>.self, from: Data(bytes)).sorted() {
                    state.attach(policy: key, to: target)
                    upgrade.append(link(Kind.policyTarget, key, target, present: true))
                }
                upgrade.append(removal(Kind.legacyPolicyTargets, key))
            case Kind.certificate:
                // Before PEMs had records of their own, the certificate's record held it.
                var record = try decoder.decode(CertificateRecord.self, from: Data(bytes))
                if !record.pem.isEmpty {
                    upgrade.append(pemRecord(record.id, record.pem))
                    record.pem = ""
                    upgrade.append(self.record(Kind.certificate, key, record))
                }
                state.put(record)
            default:
                try state.apply(RegistryRecordChange(kind: kind, key: key, value: bytes), decoder: decoder)
            }
        }
        // A data directory from before the creation-order index (or one missing some of it):
        // the index is written for every certificate (the same records where they are there).
        let withCA = state.certificates.values.reduce(0) { $0 + ($1.caCertificateId == nil ? 0 : 1) }
        if ordered.byDate < state.certificates.count || ordered.byCA < withCA {
            for certificate in state.certificates.values { upgrade += orderRecords(certificate, present: true) }
        }
        return (state, upgrade)
    }

    // MARK: ARNs

    public func arn(_ region: String, _ resource: String) -> String {
        "arn:aws:iot:\(region):\(configuration.account):\(resource)"
    }
}
