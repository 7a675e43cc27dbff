import DroverRegistry
import Foundation
import GRDB

/// The registry's records and the audit log in the control-plane database, behind
/// ``RegistryStore``. Each `apply` is one transaction: the records, the audit entry and one
/// change-feed row per record. The registry's writer queue calls in one change at a time.
public final class SQLiteRegistryStore: RegistryStore {
    private let database: any DatabaseWriter
    private let node: String
    static let feature = "registry"

    init(database: any DatabaseWriter, node: String) {
        self.database = database
        self.node = node
    }

    public func loadAll() throws -> [String: [String: [UInt8]]] {
        try database.read { db in
            var records: [String: [String: [UInt8]]] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT kind, key, value FROM record")
            while let row = try rows.next() {
                let value: Data = row["value"]
                records[row["kind"], default: [:]][row["key"]] = Array(value)
            }
            return records
        }
    }

    /// A cursor: a million records are read without a million arrays alive at once.
    public func forEachRecord(_ body: (String, String, [UInt8]) throws -> Void) throws {
        try database.read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT kind, key, value FROM record")
            while let row = try rows.next() {
                let value: Data = row["value"]
                try body(row["kind"], row["key"], Array(value))
            }
        }
    }

    public func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws {
        try database.write { db in try Self.store(changes, audits: audit.map { [$0] } ?? [], node: node, db) }
    }

    public func write(after sequence: Int64,
                      _ body: ([RegistryRecordChange]) throws -> ([RegistryRecordChange], [AuditEntry])) throws -> Int64 {
        try database.writeWithoutTransaction { db in
            var position: Int64 = 0
            // IMMEDIATE: the write lock is taken before the feed is read, so no other process
            // commits between what `body` saw and what it writes.
            try db.inTransaction(.immediate) {
                let external = try Self.changes(after: sequence, limit: Int.max, db)
                let (changes, audits) = try body(external.changes)
                try Self.store(changes, audits: audits, node: node, db)
                position = try ChangeFeed.last(db)
                return .commit
            }
            return position
        }
    }

    public func changes(after sequence: Int64, limit: Int) throws -> (changes: [RegistryRecordChange], position: Int64)? {
        try database.read { db in
            // Rows up to `sequence` pruned while rows after it remain: the reader missed some.
            let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM change") ?? 0
            if oldest > sequence + 1 && sequence > 0 { return nil }
            return try Self.changes(after: sequence, limit: limit, db)
        }
    }

    /// The registry's rows after `sequence`, each with its record's value now.
    static func changes(after sequence: Int64, limit: Int, _ db: Database) throws -> (changes: [RegistryRecordChange], position: Int64) {
        let rows = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT change.seq, change.kind, change.key, record.value FROM change
            LEFT JOIN record ON record.kind = change.kind AND record.key = change.key
            WHERE change.feature = ? AND change.seq > ? ORDER BY change.seq LIMIT ?
            """), arguments: [feature, sequence, min(limit, 1_000_000)])
        var position = sequence
        var changes: [RegistryRecordChange] = []
        changes.reserveCapacity(rows.count)
        for row in rows {
            position = row["seq"]
            let value: Data? = row["value"]
            changes.append(RegistryRecordChange(kind: row["kind"], key: row["key"], value: value.map(Array.init)))
        }
        // Rows of other features after the last registry row count as read too.
        if rows.count < limit { position = max(position, try ChangeFeed.last(db)) }
        return (changes, position)
    }

    static func store(_ changes: [RegistryRecordChange], audits: [AuditEntry], node: String, _ db: Database) throws {
        let time = audits.first?.time ?? Date().timeIntervalSince1970
        for change in changes {
            if let value = change.value {
                try db.run("INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)",
                           [change.kind, change.key, Data(value)])
            } else {
                try db.run("DELETE FROM record WHERE kind = ? AND key = ?", [change.kind, change.key])
            }
            try ChangeFeed.append(db, feature: feature, kind: change.kind, key: change.key, time: time, node: node)
        }
        try ChangeFeed.prune(db, added: changes.count)
        for audit in audits { try insert(audit, db) }
    }

    public func keys(kind: String, prefix: String, after: String?, limit: Int) throws -> [String] {
        // Keys are ASCII names and ids; U+10FFFF sorts after every one that starts with `prefix`.
        let from = after ?? prefix
        return try database.read { db in
            try String.fetchAll(db, sql: """
                SELECT key FROM record WHERE kind = ? AND key > ? AND key < ? ORDER BY key LIMIT ?
                """, arguments: [kind, from, prefix + "\u{10FFFF}", limit])
        }
    }

    public func keys(kind: String, prefix: String, before: String?, limit: Int) throws -> [String] {
        let upper = before ?? prefix + "\u{10FFFF}"
        return try database.read { db in
            try String.fetchAll(db, sql: """
                SELECT key FROM record WHERE kind = ? AND key >= ? AND key < ? ORDER BY key DESC LIMIT ?
                """, arguments: [kind, prefix, upper, limit])
        }
    }

    public func record(kind: String, key: String) throws -> [UInt8]? {
        try database.read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM record WHERE kind = ? AND key = ?", arguments: [kind, key]).map(Array.init)
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws {
        try database.write { db in try Self.insert(entry, db) }
    }

    static func insert(_ entry: AuditEntry, _ db: Database) throws {
        try db.run("INSERT INTO audit (time, principal, operation, resource, outcome, message) VALUES (?, ?, ?, ?, ?, ?)",
                   [entry.time, entry.principal, entry.operation, entry.resource, entry.outcome, entry.message])
    }

    public func queryAudit(_ query: AuditQuery) throws -> [AuditEntry] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let from = query.from { clauses.append("time >= ?"); arguments += [from] }
        if let to = query.to { clauses.append("time <= ?"); arguments += [to] }
        if let resource = query.resource { clauses.append("resource = ?"); arguments += [resource] }
        if let principal = query.principal { clauses.append("principal = ?"); arguments += [principal] }
        if let operation = query.operation { clauses.append("operation = ?"); arguments += [operation] }
        if let before = query.before { clauses.append("id < ?"); arguments += [before] }
        let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments += [max(1, min(query.limit, 1000))]
        return try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit \(filter) ORDER BY id DESC LIMIT ?", arguments: arguments).map { row in
                var entry = AuditEntry(time: row["time"], principal: row["principal"], operation: row["operation"],
                                       resource: row["resource"], outcome: row["outcome"], message: row["message"])
                entry.id = row["id"]
                return entry
            }
        }
    }

    /// The last number of the change feed (of every feature).
    public func feedPosition() throws -> Int64 {
        try database.read { db in try ChangeFeed.last(db) }
    }
}
