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
    static let feature = "config"

    init(database: any DatabaseWriter) {
        self.database = database
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
                    try db.execute(sql: "INSERT OR REPLACE INTO config_record (kind, key, value) VALUES (?, ?, ?)",
                                   arguments: [change.kind, change.key, Data(value)])
                } else {
                    try db.execute(sql: "DELETE FROM config_record WHERE kind = ? AND key = ?", arguments: [change.kind, change.key])
                }
                try ChangeFeed.append(db, feature: Self.feature, kind: change.kind, key: change.key, time: time)
            }
            try ChangeFeed.prune(db, added: changes.count)
            if let audit { try SQLiteRegistryStore.insert(audit, db) }
        }
    }
}
