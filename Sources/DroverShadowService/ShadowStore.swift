import NIOConcurrencyHelpers

/// One change to a stored shadow.
public enum ShadowWrite: Sendable, Hashable {
    case save(thing: String, name: String, document: [UInt8], version: Int)
    /// Removes the document and remembers its version.
    case delete(thing: String, name: String, version: Int)
}

/// Where shadows are kept. `apply` is one transaction, durable when it returns: an accepted
/// update is never lost to a crash.
public protocol ShadowStore: Sendable {
    /// The stored document (nil if none), and the version of the last deleted one (0 if none),
    /// so that a re-created shadow continues its numbering as AWS does.
    func load(thing: String, name: String) throws -> (document: [UInt8]?, deletedVersion: Int)
    /// Writes all of `writes`, in order, in one transaction (group commit), with the messages
    /// that the writes published here (`/update/accepted`, `/delta`, `/documents`,
    /// `/delete/accepted`), so that other processes on the same database publish them to their
    /// own subscribers.
    ///
    /// `bases`: the version each written shadow had when the writer read it (0: none). If the
    /// store holds another version of any of them (another process wrote it meanwhile),
    /// nothing is written and ``ShadowStoreConflict`` is thrown, so that the writer reads again.
    func apply(_ writes: [ShadowWrite], announcing messages: [ShadowMessage], expecting bases: [ShadowBase]) throws
    /// The messages other processes stored after `sequence`, oldest first, and the feed's
    /// number after them.
    func messages(after sequence: Int64, limit: Int) throws -> (messages: [ShadowMessage], position: Int64)
    /// The feed's last number.
    func feedPosition() throws -> Int64
    /// The names of a thing's shadows that exist ("" is the classic shadow).
    func names(thing: String) throws -> [String]
    /// Everything of a thing, tombstones included (the thing was deleted).
    func deleteAll(thing: String) throws
    func close()
}

/// A shadow's version as a writer read it: the document's, a deleted one's, or 0 for none.
public struct ShadowBase: Sendable, Hashable {
    public var thing: String
    public var name: String
    public var version: Int

    public init(thing: String, name: String, version: Int) {
        self.thing = thing
        self.name = name
        self.version = version
    }
}

/// A shadow changed after the writer read it: nothing was written.
public struct ShadowStoreConflict: Error, CustomStringConvertible {
    public var thing: String
    public var name: String

    public init(thing: String, name: String) {
        self.thing = thing
        self.name = name
    }

    public var description: String { "shadow '\(name)' of \(thing) changed in another process" }
}

/// A message published with a shadow write.
public struct ShadowMessage: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]

    public init(topic: String, payload: [UInt8]) {
        self.topic = topic
        self.payload = payload
    }
}

extension ShadowStore {
    public func close() {}
    public func apply(_ writes: [ShadowWrite]) throws { try apply(writes, announcing: [], expecting: []) }
    public func apply(_ writes: [ShadowWrite], announcing messages: [ShadowMessage]) throws {
        try apply(writes, announcing: messages, expecting: [])
    }
}

public final class InMemoryShadowStore: ShadowStore {
    private let state = NIOLockedValueBox<[String: [String: (document: [UInt8]?, version: Int)]]>([:])

    public init() {}

    public func load(thing: String, name: String) throws -> (document: [UInt8]?, deletedVersion: Int) {
        state.withLockedValue { state in
            guard let entry = state[thing]?[name] else { return (nil, 0) }
            return entry.document == nil ? (nil, entry.version) : (entry.document, 0)
        }
    }

    /// One process: no one else to tell.
    public func messages(after sequence: Int64, limit: Int) throws -> (messages: [ShadowMessage], position: Int64) { ([], 0) }
    public func feedPosition() throws -> Int64 { 0 }

    public func apply(_ writes: [ShadowWrite], announcing messages: [ShadowMessage], expecting bases: [ShadowBase]) throws {
        try state.withLockedValue { state in
            for base in bases where (state[base.thing]?[base.name]?.version ?? 0) != base.version {
                throw ShadowStoreConflict(thing: base.thing, name: base.name)
            }
            for write in writes {
                switch write {
                case .save(let thing, let name, let document, let version): state[thing, default: [:]][name] = (document, version)
                case .delete(let thing, let name, let version): state[thing, default: [:]][name] = (nil, version)
                }
            }
        }
    }

    public func names(thing: String) throws -> [String] {
        state.withLockedValue { state in (state[thing] ?? [:]).filter { $0.value.document != nil }.keys.sorted() }
    }

    public func deleteAll(thing: String) throws {
        state.withLockedValue { $0[thing] = nil }
    }
}
