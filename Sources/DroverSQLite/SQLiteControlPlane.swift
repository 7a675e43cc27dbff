import Foundation
import GRDB
import Logging

/// The control plane's one database, `drover.sqlite`: the registry's records and the audit
/// log, fleet configuration, shadows, and the change feed that all of them append to. One file
/// means that a command is one transaction: its records, its audit entry and its change rows
/// are durable together or not at all. (The broker's own state, whose write load is far
/// heavier, keeps `broker.sqlite`.)
///
/// Opened as a `DatabasePool` in WAL mode: reads (listings, shadow reads) run beside the
/// writer, and a second process on the same file serializes with this one on SQLite's lock.
///
/// On the first start over a data directory of the older layout (`registry.sqlite`,
/// `config.sqlite` and `shadows.sqlite`, each with a `.created` marker) their rows are copied
/// in, in one transaction; the old files are then renamed `*.migrated` and the markers go.
public final class SQLiteControlPlane: Sendable {
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    public static let fileName = "drover.sqlite"
    static let legacyFiles = ["registry.sqlite", "config.sqlite", "shadows.sqlite"]

    let database: any DatabaseWriter
    public let registry: SQLiteRegistryStore
    public let fleetConfig: SQLiteFleetConfigStore
    public let shadows: SQLiteShadowStore

    /// Opens `DATA_DIR/drover.sqlite` (or `path`), making it (and importing an older layout
    /// from the data directory) when it is not there.
    public init(dataDir: String, path: String? = nil, durability: SQLiteBrokerStore.Durability, logger: Logger) throws {
        let path = path ?? (dataDir as NSString).appendingPathComponent(Self.fileName)
        let fileManager = FileManager.default
        let legacy = Self.legacyFiles.map { (dataDir as NSString).appendingPathComponent($0) }
        let hasLegacy = legacy.contains { fileManager.fileExists(atPath: $0) }
        if !fileManager.fileExists(atPath: path) && !hasLegacy {
            // The files made after this one, there without it: the database was lost.
            let evidence = ["broker.sqlite", "ca.key"].filter {
                fileManager.fileExists(atPath: (dataDir as NSString).appendingPathComponent($0))
            }
            if !evidence.isEmpty {
                throw Error(description: "the control-plane database \(path) is missing, but this data directory has \(evidence.joined(separator: " and ")), made after it; restore it from a backup, or start with an empty data directory")
            }
        }
        do {
            database = try SQLiteDatabase.open(
                path: path, label: "drover.control-plane", what: "control-plane database",
                synchronous: durability == .fsync ? "FULL" : "NORMAL", migrator: Self.migrator, pool: true)
            try Self.adopt(legacy, into: database, dataDir: dataDir, logger: logger)
        } catch let error as Error {
            throw error
        } catch {
            throw Error(description: "\(error)")
        }
        let node = UUID().uuidString
        registry = SQLiteRegistryStore(database: database, node: node)
        fleetConfig = SQLiteFleetConfigStore(database: database, node: node)
        shadows = SQLiteShadowStore(database: database, node: node)
    }

    /// An in-memory database, for tests.
    public init() throws {
        let queue = try DatabaseQueue()
        try Self.migrator.migrate(queue)
        try queue.write { db in try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('origin', 'new')") }
        database = queue
        let node = UUID().uuidString
        registry = SQLiteRegistryStore(database: database, node: node)
        fleetConfig = SQLiteFleetConfigStore(database: database, node: node)
        shadows = SQLiteShadowStore(database: database, node: node)
    }

    /// Whether the broker's own database was made in this data directory (so that a missing
    /// `broker.sqlite` is an error, not an empty broker). Kept per data directory: processes
    /// that share this database each have their own.
    public func brokerStoreCreated(dataDir: String) -> Bool {
        (try? database.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [Self.brokerKey(dataDir)])
        }) != nil
    }

    public func markBrokerStoreCreated(dataDir: String) throws {
        try database.write { db in
            try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, 'created')", [Self.brokerKey(dataDir)])
        }
    }

    static func brokerKey(_ dataDir: String) -> String {
        "broker-store " + URL(fileURLWithPath: dataDir).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Checkpoints the WAL into the file and closes it; once, when the server stops.
    public func close() {
        try? database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try? database.close()
    }

    /// Append-only: a shipped migration is never edited.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // The registry's records by kind and key, as JSON.
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
            // Fleet configuration's records, the same way.
            try db.create(table: "config_record") { t in
                t.column("kind", .text).notNull()
                t.column("key", .text).notNull()
                t.column("value", .blob).notNull()
                t.primaryKey(["kind", "key"])
            }
            try db.create(table: "shadow") { t in
                t.column("thing", .text).notNull()
                t.column("name", .text).notNull()
                t.column("document", .blob)
                t.column("version", .integer).notNull()
                t.primaryKey(["thing", "name"])
            }
            // The change feed: one row per record that a command wrote or removed, numbered in
            // commit order. Readers resume after the last number they applied.
            try db.create(table: "change") { t in
                t.column("seq", .integer).primaryKey(autoincrement: true)
                t.column("time", .double).notNull()
                t.column("feature", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("key", .text).notNull()
            }
            try db.create(index: "change_by_feature", on: "change", columns: ["feature", "seq"])
            try db.create(table: "meta") { t in
                t.column("key", .text).primaryKey()
                t.column("value", .text).notNull()
            }
        }
        // The process that wrote a row, and a message it carries for other processes (a shadow's
        // accepted update, delta and documents, published again by each of them).
        migrator.registerMigration("v2-change-node") { db in
            try db.alter(table: "change") { t in
                t.add(column: "node", .text)
                t.add(column: "payload", .blob)
            }
        }
        return migrator
    }

    /// Copies the rows of an older layout in, once, in one transaction; then renames the old
    /// files and drops their markers. A crash before the commit leaves the old files as they
    /// were, and the next start imports them again; a crash after it, only the renames to do.
    static func adopt(_ legacy: [String], into database: any DatabaseWriter, dataDir: String, logger: Logger) throws {
        let fileManager = FileManager.default
        let origin = try database.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'origin'") }
        let present = legacy.filter { fileManager.fileExists(atPath: $0) }
        if origin == nil {
            try database.writeWithoutTransaction { db in
                for (index, file) in present.enumerated() {
                    do {
                        try db.execute(sql: "ATTACH DATABASE ? AS legacy\(index)", arguments: [file])
                    } catch {
                        throw Error(description: "cannot read \(file) to bring it into \(fileName): \(error)")
                    }
                }
                try db.inTransaction {
                    for (index, file) in present.enumerated() {
                        let schema = "legacy\(index)"
                        switch (file as NSString).lastPathComponent {
                        case "registry.sqlite":
                            try db.execute(sql: "INSERT INTO record (kind, key, value) SELECT kind, key, value FROM \(schema).record")
                            try db.execute(sql: """
                                INSERT INTO audit (id, time, principal, operation, resource, outcome, message)
                                SELECT id, time, principal, operation, resource, outcome, message FROM \(schema).audit
                                """)
                        case "config.sqlite":
                            try db.execute(sql: "INSERT INTO config_record (kind, key, value) SELECT kind, key, value FROM \(schema).record")
                        default:
                            try db.execute(sql: "INSERT INTO shadow (thing, name, document, version) SELECT thing, name, document, version FROM \(schema).shadow")
                        }
                    }
                    let imported = present.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
                    try db.run("INSERT INTO meta (key, value) VALUES ('origin', ?)",
                               [present.isEmpty ? "new" : "imported from \(imported)"])
                    let broker = (dataDir as NSString).appendingPathComponent("broker.sqlite")
                    if fileManager.fileExists(atPath: broker) {
                        try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, 'created')", [brokerKey(dataDir)])
                    }
                    return .commit
                }
                for index in present.indices { try db.execute(sql: "DETACH DATABASE legacy\(index)") }
            }
            if !present.isEmpty {
                logger.notice("the control-plane databases were brought into one", metadata: [
                    "database": "\((dataDir as NSString).appendingPathComponent(fileName))",
                    "from": "\(present.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))",
                ])
            }
        }
        // The old files, kept aside (not deleted) until the operator removes them.
        for file in present {
            for suffix in ["", "-wal", "-shm"] where fileManager.fileExists(atPath: file + suffix) {
                let target = file + ".migrated" + suffix
                try? fileManager.removeItem(atPath: target)
                try fileManager.moveItem(atPath: file + suffix, toPath: target)
            }
        }
        for name in legacy.map({ ($0 as NSString).lastPathComponent }) + ["broker.sqlite"] {
            try? fileManager.removeItem(atPath: (dataDir as NSString).appendingPathComponent(name + ".created"))
        }
    }
}

/// The change feed's rows, shared by the stores of one database.
enum ChangeFeed {
    /// Rows kept; older ones are pruned as new ones come. A reader further behind reloads (a
    /// process reads every follow interval, so only a bulk load puts it that far behind). Shadow
    /// messages carry their payloads: 100 000 rows are some tens of MB at most.
    static let retained: Int64 = 100_000

    static func append(_ db: Database, feature: String, kind: String, key: String, time: Double, node: String) throws {
        try db.run("INSERT INTO change (time, feature, kind, key, node) VALUES (?, ?, ?, ?, ?)",
                   [time, feature, kind, key, node])
    }

    /// Each time the numbers pass a multiple of 4096, the rows before the retained window go.
    static func prune(_ db: Database, added: Int) throws {
        let last = db.lastInsertedRowID
        guard added > 0, last / 4096 != (last - Int64(added)) / 4096 else { return }
        try db.run("DELETE FROM change WHERE seq <= ?", [last - retained])
    }

    static func last(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = 'change'")) ?? 0
    }
}
