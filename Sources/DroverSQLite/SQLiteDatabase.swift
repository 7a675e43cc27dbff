import Foundation
import GRDB

/// Opening a Drover database file: private (0600, with its -wal and -shm), WAL mode, migrated,
/// checked.
enum SQLiteDatabase {
    struct OpenError: Error, CustomStringConvertible {
        var description: String
    }

    /// `mustExist`: the data directory is known to have had this database (the other database
    /// says so), so a missing file is an error rather than a silently empty start.
    /// What `PRAGMA synchronous` reads back for each level set.
    static let synchronousLevels = ["OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3]

    /// The `PRAGMA synchronous` level of the connection that writes.
    static func synchronousLevel(of database: any DatabaseWriter) throws -> Int? {
        try database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
    }

    static func open(path: String, label: String, what: String, synchronous: String, migrator: DatabaseMigrator,
                     mustExist: Bool = false, pool: Bool = false) throws -> any DatabaseWriter {
        let exists = FileManager.default.fileExists(atPath: path)
        if !exists && mustExist {
            throw OpenError(description: "\(what) \(path) is missing, but this data directory had one; restore it from a backup, or start with an empty data directory")
        }
        if !exists {
            // Created private first: SQLite gives its -wal and -shm files the database's mode.
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        var configuration = Configuration()
        configuration.label = label
        // Another process on the same file (a second node) holds the write lock for a moment.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA journal_mode = WAL")
            }
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let database: any DatabaseWriter
        do {
            database = pool ? try DatabasePool(path: path, configuration: configuration)
                : try DatabaseQueue(path: path, configuration: configuration)
            // A pool's writer runs `PRAGMA synchronous = NORMAL` in GRDB's WAL set-up, after
            // `prepareDatabase`: set the level again, on the writer, and read it back. Without
            // this, `durability: fsync` gave the control plane NORMAL (commits not fsynced).
            let level = try database.writeWithoutTransaction { db -> Int? in
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                return try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            guard level == Self.synchronousLevels[synchronous] else {
                throw OpenError(description: "PRAGMA synchronous is \(level.map(String.init) ?? "unknown"), not \(synchronous)")
            }
            try migrator.migrate(database)
            _ = try database.read { db in try Int.fetchOne(db, sql: "PRAGMA quick_check") }
        } catch {
            throw OpenError(description: "cannot open the \(what) \(path): \(error)")
        }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
        return database
    }
}

extension Database {
    /// Runs `sql` from the connection's statement cache: it is compiled (and checked by GRDB's
    /// authorizer) once per connection, not on every write.
    func run(_ sql: String, _ arguments: StatementArguments = []) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}
