import DroverShadowService
import Foundation
import GRDB

/// Shadows in the control-plane database, behind ``ShadowStore``: one row per shadow, the
/// document as the bytes DroverShadow stores, or NULL for a deleted one whose version is
/// remembered. Each write appends a change-feed row ("THING/NAME") in its transaction.
public final class SQLiteShadowStore: ShadowStore {
    private let database: any DatabaseWriter
    /// This process's mark on its change rows, so that it does not announce its own messages.
    private let node: String
    static let feature = "shadow"

    init(database: any DatabaseWriter, node: String) {
        self.database = database
        self.node = node
    }

    public func load(thing: String, name: String) throws -> (document: [UInt8]?, deletedVersion: Int) {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT document, version FROM shadow WHERE thing = ? AND name = ?",
                                             arguments: [thing, name]) else { return (nil, 0) }
            let document: Data? = row["document"]
            return document.map { (Array($0), 0) } ?? (nil, row["version"])
        }
    }

    public func apply(_ writes: [ShadowWrite], announcing messages: [ShadowMessage], expecting bases: [ShadowBase]) throws {
        guard !writes.isEmpty else { return }
        let time = Date().timeIntervalSince1970
        // IMMEDIATE: the write lock before the versions are read, so that no other process
        // writes between the check and the write.
        try database.writeWithoutTransaction { db in try db.inTransaction(.immediate) {
            // A shadow another process wrote since the batch read it refuses the batch.
            for base in bases {
                let stored = try Int.fetchOne(db.cachedStatement(sql: "SELECT version FROM shadow WHERE thing = ? AND name = ?"),
                                              arguments: [base.thing, base.name]) ?? 0
                if stored != base.version { throw ShadowStoreConflict(thing: base.thing, name: base.name) }
            }
            for write in writes {
                switch write {
                case .save(let thing, let name, let document, let version):
                    try db.run("INSERT OR REPLACE INTO shadow (thing, name, document, version) VALUES (?, ?, ?, ?)",
                               [thing, name, Data(document), version])
                    try ChangeFeed.append(db, feature: Self.feature, kind: "shadow", key: thing + "/" + name, time: time, node: node)
                case .delete(let thing, let name, let version):
                    try db.run("INSERT OR REPLACE INTO shadow (thing, name, document, version) VALUES (?, ?, NULL, ?)",
                               [thing, name, version])
                    try ChangeFeed.append(db, feature: Self.feature, kind: "shadow", key: thing + "/" + name, time: time, node: node)
                }
            }
            for message in messages {
                try db.run("INSERT INTO change (time, feature, kind, key, node, payload) VALUES (?, ?, 'message', ?, ?, ?)",
                           [time, Self.feature, message.topic, node, Data(message.payload)])
            }
            try ChangeFeed.prune(db, added: writes.count + messages.count)
            return .commit
        } }
    }

    public func messages(after sequence: Int64, limit: Int) throws -> (messages: [ShadowMessage], position: Int64) {
        try database.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT seq, key, payload, node FROM change WHERE feature = ? AND kind = 'message' AND seq > ? ORDER BY seq LIMIT ?
                """, arguments: [Self.feature, sequence, limit])
            var position = sequence
            var messages: [ShadowMessage] = []
            for row in rows {
                position = row["seq"]
                let from: String? = row["node"]
                let payload: Data? = row["payload"]
                if from != node, let payload { messages.append(ShadowMessage(topic: row["key"], payload: Array(payload))) }
            }
            if rows.count < limit { position = max(position, try ChangeFeed.last(db)) }
            return (messages, position)
        }
    }

    public func feedPosition() throws -> Int64 {
        try database.read { db in try ChangeFeed.last(db) }
    }

    public func names(thing: String) throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM shadow WHERE thing = ? AND document IS NOT NULL ORDER BY name",
                                arguments: [thing])
        }
    }

    public func deleteAll(thing: String) throws {
        try database.write { db in
            try db.run("DELETE FROM shadow WHERE thing = ?", [thing])
            try ChangeFeed.append(db, feature: Self.feature, kind: "shadows", key: thing, time: Date().timeIntervalSince1970, node: node)
        }
    }
}
