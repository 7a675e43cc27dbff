import NIOConcurrencyHelpers

/// One record written or removed. Records are stored by kind and key as JSON, so the store does
/// not change when the registry gains a kind of resource.
public struct RegistryRecordChange: Sendable, Hashable {
    public var kind: String
    public var key: String
    /// nil removes the record.
    public var value: [UInt8]?

    public init(kind: String, key: String, value: [UInt8]?) {
        self.kind = kind
        self.key = key
        self.value = value
    }
}

/// The registry's storage port. A write is one transaction: the records, the audit entry and
/// one change-feed row per record are durable together or not at all.
///
/// The change feed numbers every record change in commit order. A registry resumes from the
/// last number it holds: that is how several processes on one database see each other's
/// changes, and how a write decides on the current truth (``write(after:_:)``).
public protocol RegistryStore: Sendable {
    /// Every record, by kind, then key.
    func loadAll() throws -> [String: [String: [UInt8]]]
    /// Every record, one at a time (kind, key, value), without holding them all at once.
    func forEachRecord(_ body: (String, String, [UInt8]) throws -> Void) throws
    func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws
    /// One write transaction, under the database's write lock: `body` gets the registry's
    /// changes committed after `sequence` (each with the record's current value, nil if it is
    /// gone), and returns the records to store and the audit entries (one for each command of
    /// the transaction, in order). Returns the feed's last number after the commit. If `body`
    /// throws, nothing is written.
    func write(after sequence: Int64,
               _ body: ([RegistryRecordChange]) throws -> ([RegistryRecordChange], [AuditEntry])) throws -> Int64
    /// The registry's changes after `sequence` (at most `limit`, with current values) and the
    /// number of the last one; nil if the feed no longer reaches back to `sequence` (pruned):
    /// the reader must load everything again.
    func changes(after sequence: Int64, limit: Int) throws -> (changes: [RegistryRecordChange], position: Int64)?
    /// The feed's last number.
    func feedPosition() throws -> Int64
    /// Up to `limit` keys of `kind` that start with `prefix` and sort after `after` (all from
    /// the first when nil), in byte order, from an index: the cost is the keys returned.
    func keys(kind: String, prefix: String, after: String?, limit: Int) throws -> [String]
    /// The same, backwards: up to `limit` keys of `kind` that start with `prefix` and sort
    /// before `before` (all from the last when nil), in descending byte order.
    func keys(kind: String, prefix: String, before: String?, limit: Int) throws -> [String]
    /// One record's value, nil if there is none; a point read on the (kind, key) index.
    func record(kind: String, key: String) throws -> [UInt8]?
    func appendAudit(_ entry: AuditEntry) throws
    func queryAudit(_ query: AuditQuery) throws -> [AuditEntry]
    /// Closes the store; called once, when the server stops.
    func close()
}

extension RegistryStore {
    public func close() {}

    public func forEachRecord(_ body: (String, String, [UInt8]) throws -> Void) throws {
        for (kind, byKey) in try loadAll() { for (key, value) in byKey { try body(kind, key, value) } }
    }
}

/// For tests and `storage.backend: memory`: one process only, so there is no one else's
/// change to read; the feed's number counts the writes.
public final class InMemoryRegistryStore: RegistryStore {
    private let sequence = NIOLockedValueBox<Int64>(0)

    public func write(after sequence: Int64,
                      _ body: ([RegistryRecordChange]) throws -> ([RegistryRecordChange], [AuditEntry])) throws -> Int64 {
        let (changes, audits) = try body([])
        try apply(changes, audit: nil)
        for audit in audits { try appendAudit(audit) }
        return self.sequence.withLockedValue { $0 += Int64(changes.count); return $0 }
    }

    public func changes(after sequence: Int64, limit: Int) throws -> (changes: [RegistryRecordChange], position: Int64)? {
        ([], self.sequence.withLockedValue { $0 })
    }

    public func feedPosition() throws -> Int64 { sequence.withLockedValue { $0 } }

    private let state = NIOLockedValueBox<(records: [String: [String: [UInt8]]], audit: [AuditEntry])>(([:], []))

    public init() {}

    public func loadAll() throws -> [String: [String: [UInt8]]] { state.withLockedValue { $0.records } }

    public func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws {
        state.withLockedValue { state in
            for change in changes { state.records[change.kind, default: [:]][change.key] = change.value }
            if var audit {
                audit.id = Int64(state.audit.count + 1)
                state.audit.append(audit)
            }
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws { try apply([], audit: entry) }

    public func record(kind: String, key: String) throws -> [UInt8]? {
        state.withLockedValue { $0.records[kind]?[key] }
    }

    /// Sorts on every call: this store is for tests and small fleets.
    public func keys(kind: String, prefix: String, after: String?, limit: Int) throws -> [String] {
        let all = state.withLockedValue { Array(($0.records[kind] ?? [:]).keys) }
        let from = after ?? ""
        return Array(all.filter { $0.hasPrefix(prefix) && Array($0.utf8).lexicographicallyPrecedes(Array(from.utf8)) == false && $0 != from }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.prefix(limit))
    }

    public func keys(kind: String, prefix: String, before: String?, limit: Int) throws -> [String] {
        let all = state.withLockedValue { Array(($0.records[kind] ?? [:]).keys) }
        return Array(all.filter { key in key.hasPrefix(prefix) && (before.map { Array(key.utf8).lexicographicallyPrecedes(Array($0.utf8)) } ?? true) }
            .sorted { Array($1.utf8).lexicographicallyPrecedes(Array($0.utf8)) }.prefix(limit))
    }

    public func queryAudit(_ query: AuditQuery) throws -> [AuditEntry] {
        state.withLockedValue { state in
            Array(state.audit.reversed().filter { query.matches($0) }.prefix(query.limit))
        }
    }
}

extension AuditQuery {
    public func matches(_ entry: AuditEntry) -> Bool {
        if let from, entry.time < from { return false }
        if let to, entry.time > to { return false }
        if let resource, entry.resource != resource { return false }
        if let principal, entry.principal != principal { return false }
        if let operation, entry.operation != operation { return false }
        if let before, let id = entry.id, id >= before { return false }
        return true
    }
}
