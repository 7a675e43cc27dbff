/// One section of a shadow, `desired` or `reported`, with its metadata.
///
/// Invariants: `metadata` mirrors `values` (same keys, same shape; an empty object's metadata is
/// a leaf timestamp); no value is `null`. An empty object is a value like any other, as on AWS:
/// only a `null` removes a member. A section that would be empty is not kept at all (the
/// document holds nil).
struct ShadowSection: Hashable, Sendable {
    var values: [String: JSONValue]
    var metadata: [String: ShadowMetadata]

    init() {
        values = [:]
        metadata = [:]
    }

    init(values: [String: JSONValue], metadata: [String: ShadowMetadata]) {
        self.values = values
        self.metadata = metadata
    }

    var isEmpty: Bool { values.isEmpty }

    /// Applies a request's section to this one, as AWS describes: members of `patch` that are
    /// objects merge into objects recursively (into `{}` when the member was missing or not an
    /// object), `null` removes the member, and any other value (arrays included) replaces the
    /// member whole. An object left empty stays, as `{}`. What a patch writes gets the time
    /// `time`; untouched members keep their timestamps.
    mutating func merge(_ patch: [String: JSONValue], at time: Int64) {
        Self.merge(patch, into: &values, metadata: &metadata, at: time)
    }

    private static func merge(
        _ patch: [String: JSONValue],
        into values: inout [String: JSONValue],
        metadata: inout [String: ShadowMetadata],
        at time: Int64
    ) {
        for (key, change) in patch {
            switch change {
            case .null:
                values.removeValue(forKey: key)
                metadata.removeValue(forKey: key)
            case .object(let nested):
                // Taken out of the parent, so the merge below mutates it without a copy.
                var nestedValues: [String: JSONValue] = [:]
                var nestedMetadata: [String: ShadowMetadata] = [:]
                let existing = values.removeValue(forKey: key)
                let existingMetadata = metadata.removeValue(forKey: key)
                if case .object(let members)? = existing, case .object(let entries)? = existingMetadata {
                    nestedValues = members
                    nestedMetadata = entries
                }
                merge(nested, into: &nestedValues, metadata: &nestedMetadata, at: time)
                values[key] = .object(nestedValues)
                metadata[key] = nestedValues.isEmpty ? .timestamp(time) : .object(nestedMetadata)
            default:
                values[key] = change
                metadata[key] = ShadowMetadata(for: change, at: time)
            }
        }
    }
}
