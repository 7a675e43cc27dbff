import DroverShadow

/// The pure rules of fleet configuration: what a template may hold, what to write into a
/// shadow's `desired` to move it from one configuration to another, and how a member's shadow
/// compares with the configuration deployed to it. No I/O and no clock.
public enum ConfigDocument {
    /// Why a template document is refused; the message says what to fix.
    public struct Problem: Error, Hashable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// A template's document is a desired state: a non-empty object, without `null` (which
    /// would delete keys rather than set them), within the shadow limits that the members'
    /// shadows will enforce.
    public static func validate(_ value: JSONValue, limits: ShadowLimits) -> Result<[String: JSONValue], Problem> {
        guard case .object(let members) = value else {
            return .failure(Problem(description: "document must be a JSON object: the desired state to deploy"))
        }
        guard !members.isEmpty else { return .failure(Problem(description: "document must set at least one key")) }
        if let path = firstNull(value, path: []) {
            return .failure(Problem(description: "document sets \(path.joined(separator: ".")) to null; a template sets values, it does not delete them"))
        }
        let depth = depth(of: value) - 1
        guard depth <= limits.maximumDepth else {
            return .failure(Problem(description: "document nests \(depth) levels deep; a shadow allows \(limits.maximumDepth)"))
        }
        let size = JSONValue.object(["desired": value]).jsonBytes.count
        guard size <= limits.maximumDocumentSize else {
            return .failure(Problem(description: "document is \(size) bytes as desired state; a shadow allows \(limits.maximumDocumentSize)"))
        }
        return .success(members)
    }

    private static func firstNull(_ value: JSONValue, path: [String]) -> [String]? {
        switch value {
        case .null: return path
        case .object(let members):
            for key in members.keys.sorted() { if let found = firstNull(members[key]!, path: path + [key]) { return found } }
            return nil
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                if let found = firstNull(element, path: path + ["\(index)"]) { return found }
            }
            return nil
        default: return nil
        }
    }

    /// Objects and arrays count one level each; scalars none.
    static func depth(of value: JSONValue) -> Int {
        switch value {
        case .object(let members): 1 + (members.values.map(depth(of:)).max() ?? 0)
        case .array(let elements): 1 + (elements.map(depth(of:)).max() ?? 0)
        default: 0
        }
    }

    /// What to merge into `desired` so that the keys `old` set become those of `new`: `new`
    /// itself, plus `null` for every key of `old` (at any depth) that `new` no longer has.
    /// Keys that neither set, such as an operator's own, are left alone. With `old` being the
    /// whole current desired state, the result replaces it exactly (a reset).
    public static func patch(from old: [String: JSONValue]?, to new: [String: JSONValue]) -> [String: JSONValue] {
        var patch = new
        for (key, oldValue) in old ?? [:] {
            switch (oldValue, new[key]) {
            case (_, nil):
                patch[key] = .null
            case (.object(let oldMembers), .object(let newMembers)?):
                patch[key] = .object(Self.patch(from: oldMembers, to: newMembers))
            default:
                break
            }
        }
        return patch
    }

    /// The request that applies `patch` to a shadow's desired state.
    public static func updateRequest(_ patch: [String: JSONValue], version: Int? = nil) -> [UInt8] {
        var request: [String: JSONValue] = ["state": .object(["desired": .object(patch)])]
        if let version { request["version"] = .number(JSONNumber(version)) }
        return JSONValue.object(request).jsonBytes
    }

    /// Every leaf of `members` with its path. Arrays are leaves: a shadow replaces them whole.
    public static func leaves(_ members: [String: JSONValue], path: [String] = []) -> [(path: [String], value: JSONValue)] {
        members.keys.sorted().flatMap { key -> [(path: [String], value: JSONValue)] in
            let value = members[key]!
            if case .object(let inner) = value { return leaves(inner, path: path + [key]) }
            return [(path + [key], value)]
        }
    }

    static func value(at path: [String], in members: [String: JSONValue]?) -> JSONValue? {
        guard var current = members.map(JSONValue.object) else { return nil }
        for key in path {
            guard let next = current[key] else { return nil }
            current = next
        }
        return current
    }

    /// The latest time anything at `path` (or under it) was written.
    static func latest(at path: [String], in metadata: [String: ShadowMetadata]?) -> Int64? {
        guard var current = metadata.map(ShadowMetadata.object) else { return nil }
        for key in path {
            guard case .object(let members) = current, let next = members[key] else { return nil }
            current = next
        }
        return current.latestTimestamp
    }

    /// How a member stands against the configuration deployed to it.
    public struct Condition: Hashable, Sendable {
        public struct State: Hashable, Sendable, CustomStringConvertible {
            let name: String
            /// Reported matches the configuration on every key it sets.
            public static let inSync = State(name: "IN_SYNC")
            /// The device has not reported the configuration yet (offline, or still applying).
            public static let pending = State(name: "PENDING")
            /// The device reported something else after the configuration was written, or the
            /// desired state no longer holds the configuration.
            public static let drifted = State(name: "DRIFTED")
            public var description: String { name }
        }

        public var state: State
        /// Why, for pending and drifted members: see ``Reason``.
        public var reason: String?
        /// The keys (dotted paths) that differ.
        public var keys: [String]

        public static let inSync = Condition(state: .inSync, reason: nil, keys: [])
    }

    public enum Reason {
        /// Reported differs, and was written after the configuration was.
        public static let reportedDiffers = "REPORTED_DIFFERS"
        /// Someone changed desired after the deployment wrote it.
        public static let desiredChanged = "DESIRED_CHANGED"
        /// The shadow was deleted after the deployment wrote it.
        public static let shadowDeleted = "SHADOW_DELETED"
        /// Not reported since the configuration was written.
        public static let notReported = "NOT_REPORTED"
        /// The deployment has not written this member's shadow yet.
        public static let notApplied = "NOT_APPLIED"
        /// Writing this member's shadow was refused; the message follows.
        public static let applyFailed = "APPLY_FAILED"
    }

    /// Compares a member's shadow, which the deployment has written, with the configuration.
    ///
    /// A key whose reported value differs counts as drifted if the device reported it after the
    /// configuration was written. Metadata timestamps are in seconds, so within the same second
    /// the shadow's version decides: `writtenVersion` is the version the configuration write
    /// made, and a later one means the report came after it. Without it, a report in the same
    /// second counts as pending.
    public static func condition(of shadow: ShadowDocument?, against configuration: [String: JSONValue],
                                 writtenVersion: Int? = nil) -> Condition {
        guard let shadow else { return Condition(state: .drifted, reason: Reason.shadowDeleted, keys: []) }
        var changed: [String] = [], differs: [String] = [], unreported: [String] = []
        for (path, expected) in leaves(configuration) {
            let name = path.joined(separator: ".")
            guard value(at: path, in: shadow.desired) == expected else {
                changed.append(name)
                continue
            }
            if value(at: path, in: shadow.reported) == expected { continue }
            let written = latest(at: path, in: shadow.desiredMetadata) ?? 0
            if let reportedAt = latest(at: path, in: shadow.reportedMetadata),
               reportedAt > written || (reportedAt == written && writtenVersion.map { shadow.version > $0 } == true) {
                differs.append(name)
            } else {
                unreported.append(name)
            }
        }
        if !changed.isEmpty { return Condition(state: .drifted, reason: Reason.desiredChanged, keys: changed) }
        if !differs.isEmpty { return Condition(state: .drifted, reason: Reason.reportedDiffers, keys: differs) }
        if !unreported.isEmpty { return Condition(state: .pending, reason: Reason.notReported, keys: unreported) }
        return .inSync
    }
}

extension ShadowMetadata {
    /// The latest timestamp in this tree.
    var latestTimestamp: Int64? {
        switch self {
        case .timestamp(let time): time
        case .object(let members): members.values.compactMap(\.latestTimestamp).max()
        case .array(let elements): elements.compactMap(\.latestTimestamp).max()
        }
    }
}
