import DroverFleetConfig
import DroverRegistry
import Foundation
import NIOCore
import PostgresNIO

/// Fleet configuration's records on PostgreSQL, behind ``FleetConfigStore``: one transaction
/// per `apply`, with its audit entry and change rows; the rollout lease is a row of
/// `drover_meta`, taken with one conditional upsert.
public final class PostgresFleetConfigStore: FleetConfigStore {
    let pool: PostgresPool
    private let node: String
    static let feature = "config"

    init(pool: PostgresPool, node: String) {
        self.pool = pool
        self.node = node
    }

    public func loadAll() throws -> [String: [String: [UInt8]]] {
        try pool.withConnection { session in
            var records: [String: [String: [UInt8]]] = [:]
            for row in try session.query("SELECT kind, key, value FROM drover_config_record", doing: "reading fleet configuration") {
                records[try row.column(0, String.self), default: [:]][try row.column(1, String.self)] = try row.column(2, ByteBuffer.self).bytes
            }
            return records
        }
    }

    public func apply(_ changes: [ConfigRecordChange], audit: AuditEntry?) throws {
        guard !changes.isEmpty || audit != nil else { return }
        let time = audit?.time ?? Date().timeIntervalSince1970
        let final = lastOfEachKey(changes) { $0.kind + "\u{0}" + $0.key }
        let stored = final.filter { $0.value != nil }
        let removed = final.filter { $0.value == nil }
        try pool.transaction { session in
            if !changes.isEmpty { try session.lockFeed() }
            if !stored.isEmpty {
                try session.query("""
                    INSERT INTO drover_config_record (kind, key, value)
                    SELECT * FROM unnest(\(stored.map(\.kind))::text[], \(stored.map(\.key.storable))::text[], \(stored.map { ByteBuffer(bytes: $0.value ?? []) })::bytea[])
                    ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value
                    """, doing: "writing configuration records")
            }
            if !removed.isEmpty {
                try session.query("""
                    DELETE FROM drover_config_record r USING unnest(\(removed.map(\.kind))::text[], \(removed.map(\.key.storable))::text[]) AS t(kind, key)
                    WHERE r.kind = t.kind AND r.key = t.key
                    """, doing: "removing configuration records")
            }
            if let last = try PostgresChangeFeed.append(session, feature: Self.feature, kinds: changes.map(\.kind),
                                                        keys: changes.map(\.key), time: time, node: node) {
                try PostgresChangeFeed.prune(session, last: last, added: changes.count)
                try PostgresChangeFeed.notify(session, node: node)
            }
            if let audit { try PostgresRegistryStore.insert(audit, session) }
        }
    }

    public func othersChanged(after sequence: Int64) throws -> (changed: Bool, position: Int64) {
        try pool.transaction("REPEATABLE READ READ ONLY") { session in
            let last = try PostgresChangeFeed.last(session)
            guard sequence < last else { return (false, last) }
            let changed = try session.query("""
                SELECT EXISTS (SELECT 1 FROM drover_change WHERE feature = \(Self.feature) AND seq > \(sequence) AND seq <= \(last)
                               AND (node IS NULL OR node <> \(node)))
                """).first?.column(0, Bool.self) ?? false
            return (changed, last)
        }
    }

    /// "NODE EXPIRY" in `drover_meta`: taken when absent, expired or this node's; renewed (a
    /// write) only when less than half of it is left.
    public func holdLease(_ name: String, seconds: Double) throws -> Bool {
        let now = Date().timeIntervalSince1970
        let key = "lease " + name
        let node = self.node
        return try pool.withConnection { session in
            let current = try session.query("SELECT value FROM drover_meta WHERE key = \(key)").first?.column(0, String.self)
            let parts = current?.split(separator: " ") ?? []
            let (holder, expiry) = (parts.first.map(String.init), parts.count > 1 ? Double(parts[1]) ?? 0 : 0)
            if holder == node && expiry - now > seconds / 2 { return true }
            if let holder, holder != node, expiry >= now { return false }
            let value = "\(node) \(now + seconds)"
            // Atomic under the row's lock: of two nodes that try at once, one takes it.
            return try !session.query("""
                INSERT INTO drover_meta (key, value) VALUES (\(key), \(value))
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                WHERE split_part(drover_meta.value, ' ', 1) = \(node)
                   OR COALESCE(NULLIF(split_part(drover_meta.value, ' ', 2), '')::double precision, 0) < \(now)
                RETURNING value
                """, doing: "taking the lease \(name)").isEmpty
        }
    }
}
