/// One section of a shadow, `desired` or `reported`, with its metadata.
///
/// Invariants: `metadata` mirrors `values` (same keys, same shape); no value is `null`; no
/// object outside an array is empty, since an update that empties an object removes it. A
/// section that would be empty is not kept at all (the document holds nil).
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
    /// objects merge into objects recursively, `null` removes the member, and any other value
    /// (arrays included) replaces the member whole. What a patch writes gets the time `time`;
    /// untouched members keep their timestamps.
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
                if !nestedValues.isEmpty {
                    values[key] = .object(nestedValues)
                    metadata[key] = .object(nestedMetadata)
                }
            default:
                values[key] = change
                metadata[key] = ShadowMetadata(for: change, at: time)
            }
        }
    }
}
