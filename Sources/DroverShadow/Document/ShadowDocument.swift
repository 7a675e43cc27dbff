/// One shadow as the service stores it: its state, the metadata of that state, its version,
/// and when it was last updated.
///
/// Invariants, which hold because a document is only made by ``Shadow/update(_:request:now:limits:deletedVersion:)``
/// or read back with ``init(storageBytes:)``, which checks them:
/// - `desired` and `reported` are nil or non-empty objects: AWS removes a section that an update
///   empties or sets to `null`.
/// - No stored value is `null`. An empty object is a value (only a `null` removes a member).
/// - The metadata mirrors the state leaf for leaf (see ``ShadowMetadata``).
/// - `version` starts at 1 for a new shadow (or follows a recently deleted one) and grows by one
///   with every accepted update.
public struct ShadowDocument: Hashable, Sendable {
    var desiredSection: ShadowSection?
    var reportedSection: ShadowSection?
    /// The document's version; every accepted update adds one.
    public private(set) var version: Int
    /// When the document was last updated, in epoch seconds.
    public private(set) var timestamp: Int64

    init(desired: ShadowSection?, reported: ShadowSection?, version: Int, timestamp: Int64) {
        self.desiredSection = desired.flatMap { $0.isEmpty ? nil : $0 }
        self.reportedSection = reported.flatMap { $0.isEmpty ? nil : $0 }
        self.version = version
        self.timestamp = timestamp
    }

    /// The desired state, if the shadow has one.
    public var desired: [String: JSONValue]? { desiredSection?.values }

    /// The reported state, if the shadow has one.
    public var reported: [String: JSONValue]? { reportedSection?.values }

    /// When each member of `desired` was written.
    public var desiredMetadata: [String: ShadowMetadata]? { desiredSection?.metadata }

    /// When each member of `reported` was written.
    public var reportedMetadata: [String: ShadowMetadata]? { reportedSection?.metadata }

    /// What the device has yet to do: see ``Shadow/delta(desired:reported:)``.
    public var delta: [String: JSONValue] {
        Shadow.delta(desired: desired, reported: reported)
    }

    /// `{"desired": ..., "reported": ...}`, with absent sections left out.
    public var state: JSONValue {
        var members: [String: JSONValue] = [:]
        if let desired { members["desired"] = .object(desired) }
        if let reported { members["reported"] = .object(reported) }
        return .object(members)
    }

    /// `{"desired": ..., "reported": ...}` of the metadata, with absent sections left out.
    public var metadata: JSONValue {
        var members: [String: JSONValue] = [:]
        if let desiredMetadata { members["desired"] = ShadowMetadata.object(desiredMetadata).json }
        if let reportedMetadata { members["reported"] = ShadowMetadata.object(reportedMetadata).json }
        return .object(members)
    }

    /// The size that counts against ``ShadowLimits/maximumDocumentSize``: the bytes of the
    /// compact JSON of ``state``. Metadata does not count, as with AWS.
    public var stateSize: Int {
        state.jsonBytes.count
    }

    /// The size that counts against ``ShadowLimits/maximumStoredSize``: the bytes of
    /// ``storageBytes``, metadata included.
    public var storedSize: Int {
        storageBytes.count
    }
}

// MARK: Storage

extension ShadowDocument {
    /// The document as compact JSON, for storage:
    /// `{"metadata":{...},"state":{...},"timestamp":N,"version":N}`.
    public var storageBytes: [UInt8] {
        JSONValue.object([
            "state": state,
            "metadata": metadata,
            "version": .number(JSONNumber(version)),
            "timestamp": .number(JSONNumber(timestamp)),
        ]).jsonBytes
    }

    /// Reads back what ``storageBytes`` wrote; nil for anything that is not such a document or
    /// that breaks one of the invariants (metadata that does not mirror the state, a `null`, an
    /// empty section), so a damaged row is noticed rather than served. Rows written before empty
    /// objects were kept hold none, so they read back the same.
    public init?(storageBytes: some Collection<UInt8>) {
        guard case .success(let json) = JSONValue.parse(storageBytes, limits: JSONParseLimits(maximumBytes: .max)),
            let root = json.objectValue,
            let version = root["version"]?.numberValue?.int64Value, version >= 0, version <= Int64(Int.max),
            let timestamp = root["timestamp"]?.numberValue?.int64Value,
            let state = root["state"]?.objectValue,
            let metadata = root["metadata"]?.objectValue,
            Set(state.keys).isSubset(of: ["desired", "reported"]),
            Set(metadata.keys) == Set(state.keys)
        else { return nil }
        func section(_ name: String) -> ShadowSection?? {
            guard let values = state[name] else { return .some(nil) }
            guard case .object(let members) = values, !members.isEmpty, Shadow.isStorable(members),
                let entries = metadata[name]?.objectValue,
                let mirrored = ShadowMetadata.members(json: entries, mirroring: members)
            else { return nil }
            return .some(ShadowSection(values: members, metadata: mirrored))
        }
        guard let desired = section("desired"), let reported = section("reported") else { return nil }
        self.init(desired: desired, reported: reported, version: Int(version), timestamp: timestamp)
    }
}
