/// Topic names (in PUBLISH) and topic filters (in SUBSCRIBE), spec section 4.7.
public enum TopicName {
    /// [MQTT-4.7.1-1] No wildcards in a topic name; [MQTT-4.7.3-1] at least one character.
    /// UTF-8 validity and U+0000 are checked when the string is decoded.
    public static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 65_535 else { return false }
        for byte in name.utf8 where byte == UInt8(ascii: "+") || byte == UInt8(ascii: "#") { return false }
        return true
    }
}

/// A parsed topic filter, with the shared subscription prefix split off.
public struct TopicFilter: Sendable, Hashable {
    /// The filter that matches topics, without `$share/group/`.
    public var filter: String
    /// The share name of a `$share/{group}/{filter}` subscription.
    public var shareGroup: String?
    /// The filter exactly as the client sent it; unsubscribe uses this.
    public var raw: String

    public var hasWildcards: Bool { filter.utf8.contains(UInt8(ascii: "+")) || filter.utf8.contains(UInt8(ascii: "#")) }

    /// Parses and validates a filter ([MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.8.2-1]); nil when invalid.
    public init?(_ raw: String) {
        guard !raw.isEmpty else { return nil }
        self.raw = raw
        var filter = raw
        if raw.hasPrefix("$share/") {
            let rest = raw.dropFirst("$share/".count)
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            let group = String(rest[..<slash])
            guard !group.isEmpty, !group.contains("+"), !group.contains("#") else { return nil }
            filter = String(rest[rest.index(after: slash)...])
            shareGroup = group
        } else {
            shareGroup = nil
        }
        guard TopicFilter.isValidFilter(filter) else { return nil }
        self.filter = filter
    }

    static func isValidFilter(_ filter: String) -> Bool {
        guard !filter.isEmpty else { return false }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") {
                guard level == "#", index == levels.count - 1 else { return false }
            }
            if level.contains("+") && level != "+" { return false }
        }
        return true
    }

    /// Whether this filter matches a topic name. [MQTT-4.7.2-1] A filter starting with a wildcard
    /// does not match a topic starting with `$`.
    public func matches(_ topic: String) -> Bool {
        TopicFilter.matches(filter: filter, topic: topic)
    }

    public static func matches(filter: String, topic: String) -> Bool {
        var f = filter.utf8[...]
        var t = topic.utf8[...]
        if t.first == UInt8(ascii: "$"), let first = f.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "#") {
            return false
        }
        while true {
            let fEnd = f.firstIndex(of: UInt8(ascii: "/")) ?? f.endIndex
            let fLevel = f[f.startIndex..<fEnd]
            if fLevel.elementsEqual("#".utf8) { return true }
            let tEnd = t.firstIndex(of: UInt8(ascii: "/")) ?? t.endIndex
            let tLevel = t[t.startIndex..<tEnd]
            if !(fLevel.elementsEqual("+".utf8) || fLevel.elementsEqual(tLevel)) { return false }
            let fDone = fEnd == f.endIndex
            let tDone = tEnd == t.endIndex
            if fDone && tDone { return true }
            if tDone {
                // "a/#" matches "a": the remaining filter must be exactly "/#".
                return f[fEnd...].elementsEqual("/#".utf8)
            }
            if fDone { return false }
            f = f[f.index(after: fEnd)...]
            t = t[t.index(after: tEnd)...]
        }
    }
}
