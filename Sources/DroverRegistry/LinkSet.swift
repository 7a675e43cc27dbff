/// The names at the other end of a link from one record: a thing's certificates, a
/// certificate's things, a thing's groups, a target's policies. Almost every one holds a single
/// name, so that is kept inline: a `Set` of one name is a heap allocation of its own (about
/// 100 bytes), and a registry of a million things holds four such sets per thing.
public struct LinkSet: Sequence, Hashable, Sendable, ExpressibleByArrayLiteral, Encodable {
    private enum Storage: Hashable, Sendable {
        case empty
        case one(String)
        /// Two names or more (kept so: one goes back to `.one`).
        case many(Set<String>)
    }

    private var storage: Storage

    public init() { storage = .empty }

    public init(arrayLiteral names: String...) {
        self.init(names)
    }

    public init(_ names: some Sequence<String>) {
        storage = .empty
        for name in names { insert(name) }
    }

    public var isEmpty: Bool {
        if case .empty = storage { return true }
        return false
    }

    public var count: Int {
        switch storage {
        case .empty: 0
        case .one: 1
        case .many(let names): names.count
        }
    }

    public func contains(_ name: String) -> Bool {
        switch storage {
        case .empty: false
        case .one(let only): only == name
        case .many(let names): names.contains(name)
        }
    }

    @discardableResult
    public mutating func insert(_ name: String) -> (inserted: Bool, memberAfterInsert: String) {
        switch storage {
        case .empty:
            storage = .one(name)
            return (true, name)
        case .one(let only):
            if only == name { return (false, only) }
            storage = .many([only, name])
            return (true, name)
        case .many(var names):
            storage = .empty // so that `names` is the only reference while it changes
            let result = names.insert(name)
            storage = .many(names)
            return result
        }
    }

    @discardableResult
    public mutating func remove(_ name: String) -> String? {
        switch storage {
        case .empty:
            return nil
        case .one(let only):
            guard only == name else { return nil }
            storage = .empty
            return only
        case .many(var names):
            storage = .empty
            let removed = names.remove(name)
            storage = names.count == 1 ? .one(names.first ?? name) : .many(names)
            return removed
        }
    }

    public func isSubset(of other: LinkSet) -> Bool {
        allSatisfy(other.contains)
    }

    public var asSet: Set<String> {
        switch storage {
        case .empty: []
        case .one(let only): [only]
        case .many(let names): names
        }
    }

    public struct Iterator: IteratorProtocol {
        var only: String?
        var many: Set<String>.Iterator?

        public mutating func next() -> String? {
            if let name = only {
                only = nil
                return name
            }
            return many?.next()
        }
    }

    public func makeIterator() -> Iterator {
        switch storage {
        case .empty: Iterator()
        case .one(let name): Iterator(only: name)
        case .many(let names): Iterator(many: names.makeIterator())
        }
    }

    public var underestimatedCount: Int { count }

    /// As a JSON array in name order.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(sorted())
    }
}
