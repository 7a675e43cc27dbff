import Foundation
import GRDB

/// Opening a Drover database file: private (0600, with its -wal and -shm), WAL mode, migrated,
/// checked. A marker file remembers that the data directory had the database, so that a missing
/// file is an error rather than a silently empty start.
enum SQLiteDatabase {
    struct OpenError: Error, CustomStringConvertible {
        var description: String
    }

    static func open(path: String, label: String, what: String, synchronous: String, migrator: DatabaseMigrator) throws -> DatabaseQueue {
        let marker = path + ".created"
        let exists = FileManager.default.fileExists(atPath: path)
        if !exists && FileManager.default.fileExists(atPath: marker) {
            throw OpenError(description: "\(what) \(path) is missing, but this data directory had one (\(marker)); restore it, or remove the marker to start empty")
        }
        if !exists {
            // Created private first: SQLite gives its -wal and -shm files the database's mode.
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        var configuration = Configuration()
        configuration.label = label
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
        }
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
            try migrator.migrate(database)
            _ = try database.read { db in try Int.fetchOne(db, sql: "PRAGMA quick_check") }
        } catch {
            throw OpenError(description: "cannot open the \(what) \(path): \(error)")
        }
        if !exists {
            _ = FileManager.default.createFile(atPath: marker, contents: Data(), attributes: [.posixPermissions: 0o600])
        }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
        return database
    }
}
