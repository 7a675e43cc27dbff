import DroverRegistry
import Foundation
import GRDB

/// The registry's records and the audit log in the control-plane database, behind
/// ``RegistryStore``. Each `apply` is one transaction: the records, the audit entry and one
/// change-feed row per record. The registry's writer queue calls in one change at a time.
public final class SQLiteRegistryStore: RegistryStore {
    private let database: any DatabaseWriter
    static let feature = "registry"

    init(database: any DatabaseWriter) {
        self.database = database
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

    public func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws {
        let time = audit?.time ?? Date().timeIntervalSince1970
        try database.write { db in
            for change in changes {
                if let value = change.value {
                    try db.execute(sql: "INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)",
                                   arguments: [change.kind, change.key, Data(value)])
                } else {
                    try db.execute(sql: "DELETE FROM record WHERE kind = ? AND key = ?", arguments: [change.kind, change.key])
                }
                try ChangeFeed.append(db, feature: Self.feature, kind: change.kind, key: change.key, time: time)
            }
            try ChangeFeed.prune(db, added: changes.count)
            if let audit { try Self.insert(audit, db) }
        }
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

    public func appendAudit(_ entry: AuditEntry) throws {
        try database.write { db in try Self.insert(entry, db) }
    }

    static func insert(_ entry: AuditEntry, _ db: Database) throws {
        try db.execute(
            sql: "INSERT INTO audit (time, principal, operation, resource, outcome, message) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [entry.time, entry.principal, entry.operation, entry.resource, entry.outcome, entry.message])
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

    /// The registry's change rows after `sequence`, oldest first: (number, kind, key).
    public func changes(after sequence: Int64, limit: Int) throws -> [(sequence: Int64, kind: String, key: String)] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT seq, kind, key FROM change WHERE feature = ? AND seq > ? ORDER BY seq LIMIT ?
                """, arguments: [Self.feature, sequence, limit]).map { ($0["seq"], $0["kind"], $0["key"]) }
        }
    }
}
