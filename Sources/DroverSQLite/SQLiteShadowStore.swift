import DroverShadowService
import Foundation
import GRDB

/// Shadows in SQLite (WAL), behind ``ShadowStore``: one row per shadow, the document as the
/// bytes DroverShadow stores, or NULL for a deleted one whose version is remembered.
public final class SQLiteShadowStore: ShadowStore {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private let database: DatabaseQueue

    public init(path: String, durability: SQLiteBrokerStore.Durability) throws {
        do {
            database = try SQLiteDatabase.open(
                path: path, label: "drover.shadows", what: "shadow database",
                synchronous: durability == .fsync ? "FULL" : "NORMAL", migrator: Self.migrator)
        } catch {
            throw Error(description: "\(error)")
        }
    }

    /// Append-only: a shipped migration is never edited.
    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "shadow") { t in
                t.column("thing", .text).notNull()
                t.column("name", .text).notNull()
                t.column("document", .blob)
                t.column("version", .integer).notNull()
                t.primaryKey(["thing", "name"])
            }
        }
        return migrator
    }

    public func load(thing: String, name: String) throws -> (document: [UInt8]?, deletedVersion: Int) {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT document, version FROM shadow WHERE thing = ? AND name = ?",
                                             arguments: [thing, name]) else { return (nil, 0) }
            let document: Data? = row["document"]
            return document.map { (Array($0), 0) } ?? (nil, row["version"])
        }
    }

    public func apply(_ writes: [ShadowWrite]) throws {
        guard !writes.isEmpty else { return }
        try database.write { db in
            for write in writes {
                switch write {
                case .save(let thing, let name, let document, let version):
                    try db.execute(sql: "INSERT OR REPLACE INTO shadow (thing, name, document, version) VALUES (?, ?, ?, ?)",
                                   arguments: [thing, name, Data(document), version])
                case .delete(let thing, let name, let version):
                    try db.execute(sql: "INSERT OR REPLACE INTO shadow (thing, name, document, version) VALUES (?, ?, NULL, ?)",
                                   arguments: [thing, name, version])
                }
            }
        }
    }

    public func names(thing: String) throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM shadow WHERE thing = ? AND document IS NOT NULL ORDER BY name",
                                arguments: [thing])
        }
    }

    public func deleteAll(thing: String) throws {
        try database.write { db in try db.execute(sql: "DELETE FROM shadow WHERE thing = ?", arguments: [thing]) }
    }

    public func close() {
        try? database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try? database.close()
    }
}
