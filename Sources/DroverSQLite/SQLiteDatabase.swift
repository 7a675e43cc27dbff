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
