import MQTTCodec
import NIOConcurrencyHelpers

/// One subscription of a session.
public struct Subscription: Sendable, Hashable {
    public var filter: TopicFilter
    public var options: SubscriptionOptions
    public var identifier: Int?

    public init(filter: TopicFilter, options: SubscriptionOptions, identifier: Int?) {
        self.filter = filter
        self.options = options
        self.identifier = identifier
    }
}

/// A session that a message is to be delivered to, with the subscriptions that matched merged:
/// the highest QoS [MQTT-3.3.5-1] and every subscription identifier [MQTT-3.3.4-3].
struct MatchedSubscriber {
    let session: Session
    var qos: MQTTQoS
    var identifiers: [Int]
    var retainAsPublished: Bool
}

/// Finds the subscribers of a topic. Exact filters sit in a hash map and wildcard filters in a
/// trie of levels, as emqx does. Not thread-safe: the broker guards it with a reader-writer
/// lock. `match` only reads the structure; the round-robin position of each shared group lives
/// in a counter with its own lock, so matches can run side by side.
final class SubscriptionIndex {
    fileprivate struct Entry {
        let session: Session
        var options: SubscriptionOptions
        var identifier: Int?
    }

    fileprivate final class Node {
        var children: [String: Node] = [:]
        /// Subscriptions whose filter ends at this node.
        var entries: [ObjectIdentifier: Entry] = [:]
        /// Subscriptions whose filter ends with `#` after this node.
        var hashEntries: [ObjectIdentifier: Entry] = [:]

        var isEmpty: Bool { children.isEmpty && entries.isEmpty && hashEntries.isEmpty }
    }

    private struct SharedKey: Hashable {
        var group: String
        var filter: String
    }

    private struct SharedGroup {
        var members: [ObjectIdentifier: Entry] = [:]
        var order: [ObjectIdentifier] = []
        let next = NIOLockedValueBox(0)
    }

    private var exact: [String: [ObjectIdentifier: Entry]] = [:]
    private let root = Node()
    private var shared: [SharedKey: SharedGroup] = [:]
    private(set) var count = 0

    /// Adds or replaces a session's subscription; returns whether it already existed.
    @discardableResult
    func insert(_ session: Session, _ subscription: Subscription) -> Bool {
        let key = ObjectIdentifier(session)
        let entry = Entry(session: session, options: subscription.options, identifier: subscription.identifier)
        let existed: Bool
        if let group = subscription.filter.shareGroup {
            let sharedKey = SharedKey(group: group, filter: subscription.filter.filter)
            existed = shared[sharedKey, default: SharedGroup()].members.updateValue(entry, forKey: key) != nil
            if !existed { shared[sharedKey]!.order.append(key) }
        } else if !subscription.filter.hasWildcards {
            existed = exact[subscription.filter.filter, default: [:]].updateValue(entry, forKey: key) != nil
        } else {
            var node = root
            let levels = subscription.filter.filter.split(separator: "/", omittingEmptySubsequences: false)
            for level in levels.dropLast() {
                node = node.child(String(level))
            }
            if levels.last == "#" {
                existed = node.hashEntries.updateValue(entry, forKey: key) != nil
            } else {
                existed = node.child(String(levels.last!)).entries.updateValue(entry, forKey: key) != nil
            }
        }
        if !existed { count += 1 }
        return existed
    }

    /// Removes a session's subscription; returns whether it existed.
    @discardableResult
    func remove(_ session: Session, _ filter: TopicFilter) -> Bool {
        let key = ObjectIdentifier(session)
        var removed = false
        if let group = filter.shareGroup {
            let sharedKey = SharedKey(group: group, filter: filter.filter)
            if shared[sharedKey]?.members.removeValue(forKey: key) != nil {
                removed = true
                shared[sharedKey]!.order.removeAll { $0 == key }
                if shared[sharedKey]!.members.isEmpty { shared[sharedKey] = nil }
            }
        } else if !filter.hasWildcards {
            if exact[filter.filter]?.removeValue(forKey: key) != nil {
                removed = true
                if exact[filter.filter]!.isEmpty { exact[filter.filter] = nil }
            }
        } else {
            let levels = filter.filter.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            removed = Self.remove(key, levels: levels[...], from: root)
        }
        if removed { count -= 1 }
        return removed
    }

    private static func remove(_ key: ObjectIdentifier, levels: ArraySlice<String>, from node: Node) -> Bool {
        guard let first = levels.first else { return false }
        if levels.count == 1 && first == "#" {
            return node.hashEntries.removeValue(forKey: key) != nil
        }
        guard let child = node.children[first] else { return false }
        let removed: Bool
        if levels.count == 1 {
            removed = child.entries.removeValue(forKey: key) != nil
        } else {
            removed = remove(key, levels: levels.dropFirst(), from: child)
        }
        if child.isEmpty { node.children[first] = nil }
        return removed
    }

    /// The sessions that receive a message on `topic`. A session subscribed by No Local is left
    /// out when it is the publisher. One member of each matching shared group is chosen, in turn.
    func match(topic: String, publisherId: String?) -> [MatchedSubscriber] {
        // Only reads `self`; see the type's comment.
        var result: [MatchedSubscriber] = []
        var positions: [ObjectIdentifier: Int]? = nil
        var sources = 0

        func add(_ entries: [ObjectIdentifier: Entry]) {
            guard !entries.isEmpty else { return }
            sources += 1
            if sources == 2 {
                // A session may now match twice: index what we have so far to merge.
                var index: [ObjectIdentifier: Int] = [:]
                for (position, subscriber) in result.enumerated() { index[ObjectIdentifier(subscriber.session)] = position }
                positions = index
            }
            for (key, entry) in entries {
                if entry.options.noLocal, let publisherId, entry.session.clientId == publisherId { continue }
                if positions != nil, let position = positions![key] {
                    result[position].qos = max(result[position].qos, entry.options.qos)
                    if let id = entry.identifier { result[position].identifiers.append(id) }
                    result[position].retainAsPublished = result[position].retainAsPublished || entry.options.retainAsPublished
                } else {
                    if positions != nil { positions![key] = result.count }
                    result.append(MatchedSubscriber(
                        session: entry.session, qos: entry.options.qos, identifiers: entry.identifier.map { [$0] } ?? [],
                        retainAsPublished: entry.options.retainAsPublished))
                }
            }
        }

        if let entries = exact[topic] { add(entries) }
        if root.children.isEmpty {
            // Only `#` at the top: no need to split the topic.
            if topic.utf8.first != UInt8(ascii: "$") { add(root.hashEntries) }
        } else {
            let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
            let dollar = topic.utf8.first == UInt8(ascii: "$")
            Self.walk(root, levels: levels[...], isRoot: true, dollar: dollar, add: add)
        }
        if !shared.isEmpty {
            for (key, group) in shared where TopicFilter.matches(filter: key.filter, topic: topic) {
                guard !group.order.isEmpty else { continue }
                // Round robin over the members, skipping the publisher when it asked for No Local.
                let count = group.order.count
                let start = group.next.withLockedValue { next in
                    defer { next = (next + 1) % count }
                    return next % count
                }
                for offset in 0..<count {
                    let member = group.order[(start + offset) % count]
                    let entry = group.members[member]!
                    if entry.options.noLocal, let publisherId, entry.session.clientId == publisherId { continue }
                    add([member: entry])
                    break
                }
            }
        }
        return result
    }

    private static func walk(
        _ node: Node, levels: ArraySlice<Substring>, isRoot: Bool, dollar: Bool,
        add: ([ObjectIdentifier: Entry]) -> Void
    ) {
        // [MQTT-4.7.2-1] Wildcards at the first level do not match `$` topics.
        let wildcardsAllowed = !(isRoot && dollar)
        if wildcardsAllowed { add(node.hashEntries) }
        guard let level = levels.first else { return }
        let rest = levels.dropFirst()
        if let child = node.children[String(level)] {
            if rest.isEmpty {
                add(child.entries)
                // "a/#" also matches "a".
                add(child.hashEntries)
            } else {
                walk(child, levels: rest, isRoot: false, dollar: dollar, add: add)
            }
        }
        if wildcardsAllowed, let plus = node.children["+"] {
            if rest.isEmpty {
                add(plus.entries)
                add(plus.hashEntries)
            } else {
                walk(plus, levels: rest, isRoot: false, dollar: dollar, add: add)
            }
        }
    }
}

extension SubscriptionIndex.Node {
    fileprivate func child(_ level: String) -> SubscriptionIndex.Node {
        if let existing = children[level] { return existing }
        let node = SubscriptionIndex.Node()
        children[level] = node
        return node
    }
}
