import DroverFleetConfig
import Foundation
import GRDB

/// Fleet configuration's records in SQLite (WAL), behind ``FleetConfigStore``: templates,
/// versions, deployments, factory defaults and which revision each member holds. Each `apply`
/// is one transaction; a rollout stores a whole batch of members in one.
public final class SQLiteFleetConfigStore: FleetConfigStore {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private let database: DatabaseQueue

    public init(path: String, durability: SQLiteBrokerStore.Durability) throws {
        do {
            database = try SQLiteDatabase.open(
                path: path, label: "drover.config", what: "configuration database",
                synchronous: durability == .fsync ? "FULL" : "NORMAL", migrator: Self.migrator)
        } catch {
            throw Error(description: "\(error)")
        }
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

    public func apply(_ changes: [ConfigRecordChange]) throws {
        guard !changes.isEmpty else { return }
        try database.write { db in
            for change in changes {
                if let value = change.value {
                    try db.execute(sql: "INSERT OR REPLACE INTO record (kind, key, value) VALUES (?, ?, ?)",
                                   arguments: [change.kind, change.key, Data(value)])
                } else {
                    try db.execute(sql: "DELETE FROM record WHERE kind = ? AND key = ?", arguments: [change.kind, change.key])
                }
            }
        }
    }

    public func close() {
        try? database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try? database.close()
    }
}
