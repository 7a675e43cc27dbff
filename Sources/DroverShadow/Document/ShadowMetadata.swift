/// When each part of a shadow's state was last written.
///
/// The tree mirrors the state it describes: an object has the same keys, an array has one entry
/// per element (AWS's own captured responses give `"ColorRGB": [{"timestamp": N}, ...]` for a
/// three-element array), and every other value, `null` and the empty object included, is a leaf
/// `{"timestamp": N}` in epoch seconds. Keeping the tree typed rather than as JSON avoids the
/// ambiguity of a state key that is itself called `timestamp`.
public indirect enum ShadowMetadata: Hashable, Sendable {
    case timestamp(Int64)
    case object([String: ShadowMetadata])
    case array([ShadowMetadata])

    /// The metadata of `value` written at `time`: every leaf gets `time`.
    public init(for value: JSONValue, at time: Int64) {
        switch value {
        case .object(let members) where !members.isEmpty:
            self = .object(members.mapValues { ShadowMetadata(for: $0, at: time) })
        case .array(let elements):
            self = .array(elements.map { ShadowMetadata(for: $0, at: time) })
        default:
            self = .timestamp(time)
        }
    }

    /// The metadata of each member of `members`, written at `time`.
    static func members(of members: [String: JSONValue], at time: Int64) -> [String: ShadowMetadata] {
        members.mapValues { ShadowMetadata(for: $0, at: time) }
    }

    /// As it appears in a payload's `metadata`.
    public var json: JSONValue {
        switch self {
        case .timestamp(let time): .object(["timestamp": .number(JSONNumber(time))])
        case .object(let members): .object(members.mapValues(\.json))
        case .array(let elements): .array(elements.map(\.json))
        }
    }

    /// Reads metadata back from JSON, guided by the state it describes; nil unless it mirrors
    /// `value` exactly, so a document restored from storage keeps the invariant.
    init?(json: JSONValue, mirroring value: JSONValue) {
        switch (value, json) {
        case (.object(let members), .object(let metadata)) where !members.isEmpty:
            guard let mirrored = Self.members(json: metadata, mirroring: members) else { return nil }
            self = .object(mirrored)
        case (.array(let elements), .array(let metadata)):
            guard elements.count == metadata.count else { return nil }
            var mirrored: [ShadowMetadata] = []
            mirrored.reserveCapacity(elements.count)
            for (element, entry) in zip(elements, metadata) {
                guard let one = ShadowMetadata(json: entry, mirroring: element) else { return nil }
                mirrored.append(one)
            }
            self = .array(mirrored)
        case (.object(let members), _) where !members.isEmpty:
            return nil
        case (.array, _):
            return nil
        default:
            guard case .object(let leaf) = json, leaf.count == 1, let time = leaf["timestamp"]?.numberValue?.int64Value
            else { return nil }
            self = .timestamp(time)
        }
    }

    static func members(json: [String: JSONValue], mirroring members: [String: JSONValue]) -> [String: ShadowMetadata]?
    {
        guard json.count == members.count else { return nil }
        var mirrored: [String: ShadowMetadata] = [:]
        mirrored.reserveCapacity(members.count)
        for (key, member) in members {
            guard let entry = json[key], let one = ShadowMetadata(json: entry, mirroring: member) else { return nil }
            mirrored[key] = one
        }
        return mirrored
    }
}
