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

/// The storage port of fleet configuration. `apply` is one transaction, durable when it returns.
public protocol FleetConfigStore: Sendable {
    /// Every record, by kind, then key.
    func loadAll() throws -> [String: [String: [UInt8]]]
    func apply(_ changes: [ConfigRecordChange]) throws
    func close()
}

extension FleetConfigStore {
    public func close() {}
}

/// For tests and `storage.backend: memory`.
public final class InMemoryFleetConfigStore: FleetConfigStore {
    private let records = NIOLockedValueBox<[String: [String: [UInt8]]]>([:])

    public init() {}

    public func loadAll() throws -> [String: [String: [UInt8]]] { records.withLockedValue { $0 } }

    public func apply(_ changes: [ConfigRecordChange]) throws {
        records.withLockedValue { records in
            for change in changes { records[change.kind, default: [:]][change.key] = change.value }
        }
    }
}
