import DroverRegistry
import Foundation
import NIOCore
import PostgresNIO

/// The registry's records and the audit log on PostgreSQL, behind ``RegistryStore``: the same
/// contract as `SQLiteRegistryStore`, with the change feed's advisory lock in place of SQLite's
/// write lock.
public final class PostgresRegistryStore: RegistryStore {
    let pool: PostgresPool
    private let node: String
    static let feature = "registry"
    /// Rows read per round trip when everything is loaded.
    static let page = 5_000

    init(pool: PostgresPool, node: String) {
        self.pool = pool
        self.node = node
    }

    public func loadAll() throws -> [String: [String: [UInt8]]] {
        var records: [String: [String: [UInt8]]] = [:]
        try forEachRecord { kind, key, value in records[kind, default: [:]][key] = value }
        return records
    }

    /// Pages in key order, so a million records are never all in memory as rows at once.
    public func forEachRecord(_ body: (String, String, [UInt8]) throws -> Void) throws {
        var after: (kind: String, key: String)?
        while true {
            let rows = try pool.withConnection { session in
                if let after {
                    return try session.query("""
                        SELECT kind, key, value FROM drover_record WHERE (kind, key) > (\(after.kind), \(after.key))
                        ORDER BY kind, key LIMIT \(Self.page)
                        """, doing: "reading the registry")
                }
                return try session.query("SELECT kind, key, value FROM drover_record ORDER BY kind, key LIMIT \(Self.page)",
                                         doing: "reading the registry")
            }
            for row in rows {
                let (kind, key) = (try row.column(0, String.self), try row.column(1, String.self))
                try body(kind, key, try row.column(2, ByteBuffer.self).bytes)
                after = (kind, key)
            }
            if rows.count < Self.page { return }
        }
    }

    public func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws {
        guard !changes.isEmpty || audit != nil else { return }
        try pool.transaction { session in
            if !changes.isEmpty { try session.lockFeed() }
            try Self.store(changes, audits: audit.map { [$0] } ?? [], node: node, session)
        }
    }

    public func write(after sequence: Int64,
                      _ body: ([RegistryRecordChange]) throws -> ([RegistryRecordChange], [AuditEntry])) throws -> Int64 {
        try pool.transaction { session in
            // The lock first: no other process commits a change between what `body` sees and
            // what it writes.
            try session.lockFeed()
            let external = try Self.changes(after: sequence, limit: Int.max, session, position: false)
            let (changes, audits) = try body(external.changes)
            return try Self.store(changes, audits: audits, node: node, session) ?? PostgresChangeFeed.last(session)
        }
    }

    public func changes(after sequence: Int64, limit: Int) throws -> (changes: [RegistryRecordChange], position: Int64)? {
        // One snapshot: the rows and the feed's last number agree.
        try pool.transaction("REPEATABLE READ READ ONLY") { session in
            let oldest = try session.query("SELECT COALESCE(MIN(seq), 0) FROM drover_change").first?.column(0, Int64.self) ?? 0
            if oldest > sequence + 1 && sequence > 0 { return nil }
            return try Self.changes(after: sequence, limit: limit, session)
        }
    }

    /// `position`: whether the feed's last number is wanted (a write under the lock knows it
    /// from its own rows).
    static func changes(after sequence: Int64, limit: Int, _ session: PostgresSession, position wanted: Bool = true) throws
        -> (changes: [RegistryRecordChange], position: Int64) {
        let limit = min(limit, 1_000_000)
        let rows = try session.query("""
            SELECT c.seq, c.kind, c.key, r.value FROM drover_change c
            LEFT JOIN drover_record r ON r.kind = c.kind AND r.key = c.key
            WHERE c.feature = \(feature) AND c.seq > \(sequence) ORDER BY c.seq LIMIT \(limit)
            """, doing: "reading the change feed")
        var position = sequence
        var changes: [RegistryRecordChange] = []
        changes.reserveCapacity(rows.count)
        for row in rows {
            position = try row.column(0, Int64.self)
            changes.append(RegistryRecordChange(kind: try row.column(1, String.self), key: try row.column(2, String.self),
                                                value: try row.column(3, ByteBuffer?.self)?.bytes))
        }
        // Rows of other features after the last registry row count as read too.
        if wanted && rows.count < limit { position = max(position, try PostgresChangeFeed.last(session)) }
        return (changes, position)
    }

    /// Writes the records, their change rows and the audit entries; returns the feed's last
    /// number when it added rows. The caller holds the feed's lock when there are changes.
    @discardableResult
    static func store(_ changes: [RegistryRecordChange], audits: [AuditEntry], node: String, _ session: PostgresSession) throws -> Int64? {
        let time = audits.first?.time ?? Date().timeIntervalSince1970
        // Last write of a key wins within one transaction, as it does row by row.
        let final = lastOfEachKey(changes) { $0.kind + "\u{0}" + $0.key }
        let stored = final.filter { $0.value != nil }
        let removed = final.filter { $0.value == nil }
        // One statement, one round trip: the records, their removal, the audit entries (in
        // order), the change rows and the notification.
        let rows = try session.query("""
            WITH stored AS (
                INSERT INTO drover_record (kind, key, value)
                SELECT * FROM unnest(\(stored.map(\.kind))::text[], \(stored.map(\.key.storable))::text[],
                                     \(stored.map { ByteBuffer(bytes: $0.value ?? []) })::bytea[])
                ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value),
            removed AS (
                DELETE FROM drover_record r USING unnest(\(removed.map(\.kind))::text[], \(removed.map(\.key.storable))::text[]) AS t(kind, key)
                WHERE r.kind = t.kind AND r.key = t.key),
            audited AS (
                INSERT INTO drover_audit (time, principal, operation, resource, outcome, message)
                SELECT time, principal, operation, resource, outcome, CASE WHEN has_message THEN message END
                FROM unnest(\(audits.map(\.time))::float8[], \(audits.map(\.principal.storable))::text[],
                            \(audits.map(\.operation.storable))::text[], \(audits.map(\.resource.storable))::text[],
                            \(audits.map(\.outcome.storable))::text[], \(audits.map { $0.message?.storable ?? "" })::text[],
                            \(audits.map { $0.message != nil })::bool[])
                     WITH ORDINALITY AS t(time, principal, operation, resource, outcome, message, has_message, n)
                ORDER BY n),
            changed AS (
                INSERT INTO drover_change (time, feature, kind, key, node)
                SELECT \(time), \(feature), kind, key, \(node)
                FROM unnest(\(changes.map(\.kind))::text[], \(changes.map(\.key.storable))::text[]) WITH ORDINALITY AS t(kind, key, n)
                ORDER BY n RETURNING seq)
            SELECT MAX(seq), CASE WHEN COUNT(*) > 0 THEN pg_notify(\(PostgresControlPlane.channel), \(node)) END FROM changed
            """, doing: "writing registry records")
        let last = try rows.first?.column(0, Int64?.self)
        if let last { try PostgresChangeFeed.prune(session, last: last, added: changes.count) }
        return last
    }

    public func keys(kind: String, prefix: String, after: String?, limit: Int) throws -> [String] {
        // Keys are ASCII names and ids; U+10FFFF sorts after every one that starts with `prefix`.
        let from = after ?? prefix
        let upper = prefix + "\u{10FFFF}"
        return try pool.withConnection { session in
            try session.query("""
                SELECT key FROM drover_record WHERE kind = \(kind) AND key > \(from.storable) AND key < \(upper.storable)
                ORDER BY key LIMIT \(max(0, limit))
                """, doing: "listing registry keys").map { try $0.column(0, String.self) }
        }
    }

    public func keys(kind: String, prefix: String, before: String?, limit: Int) throws -> [String] {
        let upper = before ?? prefix + "\u{10FFFF}"
        return try pool.withConnection { session in
            try session.query("""
                SELECT key FROM drover_record WHERE kind = \(kind) AND key >= \(prefix.storable) AND key < \(upper.storable)
                ORDER BY key DESC LIMIT \(max(0, limit))
                """, doing: "listing registry keys").map { try $0.column(0, String.self) }
        }
    }

    public func record(kind: String, key: String) throws -> [UInt8]? {
        try pool.withConnection { session in
            try session.query("SELECT value FROM drover_record WHERE kind = \(kind) AND key = \(key.storable)",
                              doing: "reading a registry record").first.map { try $0.column(0, ByteBuffer.self).bytes }
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws {
        try pool.withConnection { session in try Self.insert(entry, session) }
    }

    static func insert(_ entry: AuditEntry, _ session: PostgresSession) throws {
        try session.query("""
            INSERT INTO drover_audit (time, principal, operation, resource, outcome, message)
            VALUES (\(entry.time), \(entry.principal.storable), \(entry.operation.storable), \(entry.resource.storable),
                    \(entry.outcome.storable), \(entry.message?.storable))
            """, doing: "writing the audit log")
    }

    public func queryAudit(_ query: AuditQuery) throws -> [AuditEntry] {
        var sql = "SELECT id, time, principal, operation, resource, outcome, message FROM drover_audit WHERE TRUE"
        var binds = PostgresBindings()
        func add(_ clause: String, _ value: some PostgresDynamicTypeEncodable) {
            binds.append(value)
            sql += " AND \(clause) $\(binds.count)"
        }
        if let from = query.from { add("time >=", from) }
        if let to = query.to { add("time <=", to) }
        if let resource = query.resource { add("resource =", resource.storable) }
        if let principal = query.principal { add("principal =", principal.storable) }
        if let operation = query.operation { add("operation =", operation.storable) }
        if let before = query.before { add("id <", before) }
        binds.append(Int64(max(1, min(query.limit, 1000))))
        sql += " ORDER BY id DESC LIMIT $\(binds.count)"
        let statement = PostgresQuery(unsafeSQL: sql, binds: binds)
        return try pool.withConnection { session in
            try session.query(statement, doing: "reading the audit log").map { row in
                var entry = AuditEntry(time: try row.column(1), principal: try row.column(2), operation: try row.column(3),
                                       resource: try row.column(4), outcome: try row.column(5), message: try row.column(6))
                entry.id = try row.column(0, Int64.self)
                return entry
            }
        }
    }

    public func feedPosition() throws -> Int64 {
        try pool.withConnection { session in try PostgresChangeFeed.last(session) }
    }
}
