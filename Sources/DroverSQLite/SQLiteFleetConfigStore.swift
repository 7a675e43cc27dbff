import DroverFleetConfig
import DroverRegistry
import Foundation
import GRDB

/// Fleet configuration's records in the control-plane database, behind ``FleetConfigStore``:
/// templates, versions, deployments, factory defaults and which revision each member holds.
/// Each `apply` is one transaction with its audit entry and change-feed rows; a rollout stores
/// a whole batch of members in one.
public final class SQLiteFleetConfigStore: FleetConfigStore {
    private let database: any DatabaseWriter
    private let node: String
    static let feature = "config"

    init(database: any DatabaseWriter, node: String) {
        self.database = database
        self.node = node
    }

    public func othersChanged(after sequence: Int64) throws -> (changed: Bool, position: Int64) {
        try database.read { db in
            let last = try ChangeFeed.last(db)
            guard sequence < last else { return (false, last) }
            let changed = try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM change WHERE feature = ? AND seq > ? AND seq <= ? AND (node IS NULL OR node != ?))
                """, arguments: [Self.feature, sequence, last, node]) ?? false
            return (changed, last)
        }
    }

    /// The lease is a row of `meta`: "NODE EXPIRY". Taken when absent, expired or this node's;
    /// renewed (a write) only when less than half of it is left.
    public func holdLease(_ name: String, seconds: Double) throws -> Bool {
        let now = Date().timeIntervalSince1970
        let key = "lease " + name
        let (holder, expiry) = try database.read { db in
            Self.lease(try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]))
        }
        if holder == node && expiry - now > seconds / 2 { return true }
        if let holder, holder != node, expiry >= now { return false }
        return try database.writeWithoutTransaction { db in
            var held = false
            try db.inTransaction(.immediate) {
                let (holder, expiry) = Self.lease(try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]))
                if holder == nil || holder == node || expiry < now {
                    try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, "\(node) \(now + seconds)"])
                    held = true
                }
                return .commit
            }
            return held
        }
    }

    static func lease(_ value: String?) -> (holder: String?, expiry: Double) {
        let parts = value?.split(separator: " ") ?? []
        return (parts.first.map(String.init), parts.count > 1 ? Double(parts[1]) ?? 0 : 0)
    }

    public func loadAll() throws -> [String: [String: [UInt8]]] {
        try database.read { db in
            var records: [String: [String: [UInt8]]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kind, key, value FROM config_record") {
                let value: Data = row["value"]
                records[row["kind"], default: [:]][row["key"]] = Array(value)
            }
            return records
        }
    }

    public func apply(_ changes: [ConfigRecordChange], audit: AuditEntry?) throws {
        guard !changes.isEmpty || audit != nil else { return }
        let time = audit?.time ?? Date().timeIntervalSince1970
        try database.write { db in
            for change in changes {
                if let value = change.value {
                    try db.run("INSERT OR REPLACE INTO config_record (kind, key, value) VALUES (?, ?, ?)",
                               [change.kind, change.key, Data(value)])
                } else {
                    try db.run("DELETE FROM config_record WHERE kind = ? AND key = ?", [change.kind, change.key])
                }
                try ChangeFeed.append(db, feature: Self.feature, kind: change.kind, key: change.key, time: time, node: node)
            }
            try ChangeFeed.prune(db, added: changes.count)
            if let audit { try SQLiteRegistryStore.insert(audit, db) }
        }
    }
}
