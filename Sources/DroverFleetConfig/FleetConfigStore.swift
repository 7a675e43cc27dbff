import DroverRegistry
import NIOConcurrencyHelpers

/// One record written or removed, stored by kind and key as JSON (as the registry's are).
public struct ConfigRecordChange: Sendable, Hashable {
    public var kind: String
    public var key: String
    /// nil removes the record.
    public var value: [UInt8]?

    public init(kind: String, key: String, value: [UInt8]?) {
        self.kind = kind
        self.key = key
        self.value = value
    }
}

/// The storage port of fleet configuration. `apply` is one transaction, durable when it
/// returns: the records and the audit entry (into the audit log that the registry reads).
public protocol FleetConfigStore: Sendable {
    /// Every record, by kind, then key.
    func loadAll() throws -> [String: [String: [UInt8]]]
    func apply(_ changes: [ConfigRecordChange], audit: AuditEntry?) throws
    /// Whether other processes changed configuration records after `sequence`, and the feed's
    /// last number (`.max` asks only for the number).
    func othersChanged(after sequence: Int64) throws -> (changed: Bool, position: Int64)
    /// Takes or renews the lease `name` for this process for `seconds`; false while another
    /// process holds it.
    func holdLease(_ name: String, seconds: Double) throws -> Bool
    func close()
}

extension FleetConfigStore {
    public func close() {}
}

/// For tests and `storage.backend: memory`.
public final class InMemoryFleetConfigStore: FleetConfigStore {
    private let records = NIOLockedValueBox<[String: [String: [UInt8]]]>([:])
    private let auditLog: (any RegistryStore)?

    /// `auditLog`: where audit entries go (the registry's store); nil drops them.
    public init(auditLog: (any RegistryStore)? = nil) { self.auditLog = auditLog }

    public func loadAll() throws -> [String: [String: [UInt8]]] { records.withLockedValue { $0 } }

    /// One process: no one else changes anything, and the lease is always this one's.
    public func othersChanged(after sequence: Int64) throws -> (changed: Bool, position: Int64) { (false, 0) }
    public func holdLease(_ name: String, seconds: Double) throws -> Bool { true }

    public func apply(_ changes: [ConfigRecordChange], audit: AuditEntry?) throws {
        records.withLockedValue { records in
            for change in changes { records[change.kind, default: [:]][change.key] = change.value }
        }
        if let audit { try auditLog?.appendAudit(audit) }
    }
}
