import DroverRegistry
import Foundation
import GRDB

/// The registry's records and the audit log in SQLite (WAL), behind ``RegistryStore``. Each
/// `apply` is one transaction. Control-plane writes are rare next to MQTT traffic, so there is
/// no group commit here: the registry's writer queue calls in one change at a time.
public final class SQLiteRegistryStore: RegistryStore {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private let database: DatabaseQueue

    public init(path: String, durability: SQLiteBrokerStore.Durability) throws {
        do {
            database = try SQLiteDatabase.open(
                path: path, label: "drover.registry", what: "registry database",
                synchronous: durability == .fsync ? "FULL" : "NORMAL", migrator: Self.migrator)
        } catch {
            throw Error(description: "\(error)")
        }
    }

    public func close() {
        try? database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try? database.close()
    }

    /// An in-memory database, for tests.
    public init() throws {
        database = try DatabaseQueue()
        try Self.migrator.migrate(database)
    }

    /// Append-only: a shipped migration is never edited.
    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "record") { t in
                t.column("kind", .text).notNull()
                t.column("key", .text).notNull()
                t.column("value", .blob).notNull()
                t.primaryKey(["kind", "key"])
            }
            try db.create(table: "audit") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull().indexed()
                t.column("principal", .text).notNull().indexed()
                t.column("operation", .text).notNull()
                t.column("resource", .text).notNull().indexed()
                t.column("outcome", .text).notNull()
                t.column("message", .text)
            }
        }
        return migrator
    }

    public func loadAll() throws -> [String: [String: [UInt8]]] {
        try database.read { db in
            var records: [String: [String: [UInt8]]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kind, key, value FROM record") {
                let value: Data = row["value"]
                records[row["kind"], default: [:]][row["key"]] = Array(value)
            }
            return records
        }
    }

    public func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws {
        try database.write { db in
            for change in changes {
                if let value = change.value {
                    try db.execute(sql: "INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)",
                                   arguments: [change.kind, change.key, Data(value)])
                } else {
                    try db.execute(sql: "DELETE FROM record WHERE kind = ? AND key = ?", arguments: [change.kind, change.key])
                }
            }
            if let audit { try Self.insert(audit, db) }
        }
    }

    public func appendAudit(_ entry: AuditEntry) throws {
        try database.write { db in try Self.insert(entry, db) }
    }

    private static func insert(_ entry: AuditEntry, _ db: Database) throws {
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
}
