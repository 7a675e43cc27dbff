import DroverShadowService
import Foundation
import NIOCore
import PostgresNIO

/// Shadows on PostgreSQL, behind ``ShadowStore``: one row per shadow (NULL document for a
/// deleted one whose version is remembered); each batch of writes, its change rows and the
/// messages it announces to other processes are one transaction.
public final class PostgresShadowStore: ShadowStore {
    let pool: PostgresPool
    private let node: String
    static let feature = "shadow"

    init(pool: PostgresPool, node: String) {
        self.pool = pool
        self.node = node
    }

    public func load(thing: String, name: String) throws -> (document: [UInt8]?, deletedVersion: Int) {
        try pool.withConnection { session in
            guard let row = try session.query("""
                SELECT document, version FROM drover_shadow WHERE thing = \(thing.storable) AND name = \(name.storable)
                """, doing: "reading a shadow").first else { return (nil, 0) }
            if let document = try row.column(0, ByteBuffer?.self) { return (document.bytes, 0) }
            return (nil, Int(try row.column(1, Int64.self)))
        }
    }

    public func apply(_ writes: [ShadowWrite], announcing messages: [ShadowMessage], expecting bases: [ShadowBase]) throws {
        guard !writes.isEmpty else { return }
        let time = Date().timeIntervalSince1970
        // The last write of each shadow is what is stored; every write gets its change row.
        var final: [String: (thing: String, name: String, document: [UInt8]?, version: Int)] = [:]
        var keys: [String] = []
        for write in writes {
            switch write {
            case .save(let thing, let name, let document, let version):
                final[thing + "/" + name] = (thing, name, document, version)
                keys.append(thing + "/" + name)
            case .delete(let thing, let name, let version):
                final[thing + "/" + name] = (thing, name, nil, version)
                keys.append(thing + "/" + name)
            }
        }
        let rows = Array(final.values)
        try pool.transaction { session in
            try session.lockFeed()
            // Under the feed's lock: a shadow another process wrote since the batch read it
            // refuses the batch.
            if !bases.isEmpty {
                let changed = try session.query("""
                    SELECT t.thing, t.name FROM unnest(\(bases.map(\.thing.storable))::text[], \(bases.map(\.name.storable))::text[],
                                                     \(bases.map { Int64($0.version) })::int8[]) AS t(thing, name, version)
                    LEFT JOIN drover_shadow s ON s.thing = t.thing AND s.name = t.name
                    WHERE COALESCE(s.version, 0) <> t.version LIMIT 1
                    """, doing: "checking shadow versions")
                if let row = changed.first {
                    throw ShadowStoreConflict(thing: try row.column(0, String.self), name: try row.column(1, String.self))
                }
            }
            var binds = PostgresBindings()
            binds.append(rows.map(\.thing.storable))
            binds.append(rows.map(\.name.storable))
            binds.append(rows.map { ByteBuffer(bytes: $0.document ?? []) })
            binds.append(rows.map { $0.document != nil })
            binds.append(rows.map { Int64($0.version) })
            try session.query(PostgresQuery(unsafeSQL: """
                INSERT INTO drover_shadow (thing, name, document, version)
                SELECT thing, name, CASE WHEN present THEN document END, version
                FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bool[], $5::int8[]) AS t(thing, name, document, present, version)
                ON CONFLICT (thing, name) DO UPDATE SET document = EXCLUDED.document, version = EXCLUDED.version
                """, binds: binds), doing: "writing shadows")
            var last = try PostgresChangeFeed.append(session, feature: Self.feature, kinds: keys.map { _ in "shadow" }, keys: keys,
                                                     time: time, node: node) ?? 0
            if !messages.isEmpty {
                let inserted = try session.query("""
                    INSERT INTO drover_change (time, feature, kind, key, node, payload)
                    SELECT \(time), \(Self.feature), 'message', topic, \(node), payload
                    FROM unnest(\(messages.map(\.topic.storable))::text[], \(messages.map { ByteBuffer(bytes: $0.payload) })::bytea[])
                         WITH ORDINALITY AS t(topic, payload, n)
                    ORDER BY n RETURNING seq
                    """, doing: "announcing shadow messages")
                last = max(last, try inserted.map { try $0.column(0, Int64.self) }.max() ?? 0)
            }
            try PostgresChangeFeed.prune(session, last: last, added: writes.count + messages.count)
            try PostgresChangeFeed.notify(session, node: node)
        }
    }

    public func messages(after sequence: Int64, limit: Int) throws -> (messages: [ShadowMessage], position: Int64) {
        try pool.transaction("REPEATABLE READ READ ONLY") { session in
            let rows = try session.query("""
                SELECT seq, key, payload, node FROM drover_change
                WHERE feature = \(Self.feature) AND kind = 'message' AND seq > \(sequence) ORDER BY seq LIMIT \(max(1, limit))
                """, doing: "reading shadow messages")
            var position = sequence
            var messages: [ShadowMessage] = []
            for row in rows {
                position = try row.column(0, Int64.self)
                let from = try row.column(3, String?.self)
                if from != node, let payload = try row.column(2, ByteBuffer?.self) {
                    messages.append(ShadowMessage(topic: try row.column(1, String.self), payload: payload.bytes))
                }
            }
            if rows.count < limit { position = max(position, try PostgresChangeFeed.last(session)) }
            return (messages, position)
        }
    }

    public func feedPosition() throws -> Int64 {
        try pool.withConnection { session in try PostgresChangeFeed.last(session) }
    }

    public func names(thing: String) throws -> [String] {
        try pool.withConnection { session in
            try session.query("""
                SELECT name FROM drover_shadow WHERE thing = \(thing.storable) AND document IS NOT NULL ORDER BY name COLLATE "C"
                """, doing: "listing shadows").map { try $0.column(0, String.self) }
        }
    }

    public func deleteAll(thing: String) throws {
        let time = Date().timeIntervalSince1970
        try pool.transaction { session in
            try session.lockFeed()
            try session.query("DELETE FROM drover_shadow WHERE thing = \(thing.storable)", doing: "deleting shadows")
            _ = try PostgresChangeFeed.append(session, feature: Self.feature, kinds: ["shadows"], keys: [thing], time: time, node: node)
            try PostgresChangeFeed.notify(session, node: node)
        }
    }
}
