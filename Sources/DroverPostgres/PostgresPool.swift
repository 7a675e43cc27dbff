import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PostgresNIO

/// A failure of the PostgreSQL backend, with PostgreSQL's own message and SQLSTATE when the
/// server sent one (PSQLError's description hides them).
public struct PostgresStoreError: Error, CustomStringConvertible {
    public var description: String
    /// The SQLSTATE ("23505" is a unique violation), when the server answered with an error.
    public var sqlState: String?

    init(_ description: String, sqlState: String? = nil) {
        self.description = description
        self.sqlState = sqlState
    }

    /// What a PostgresNIO error says, without the query's bound values.
    static func from(_ error: any Error, doing what: String) -> PostgresStoreError {
        if let error = error as? PostgresStoreError { return error }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let state = error.serverInfo?[.sqlState]
                return PostgresStoreError("PostgreSQL refused \(what): \(message)\(state.map { " (SQLSTATE \($0))" } ?? "")",
                                          sqlState: state)
            }
            return PostgresStoreError("PostgreSQL failed \(what): \(error.code)")
        }
        return PostgresStoreError("PostgreSQL failed \(what): \(error)")
    }
}

/// A fixed-size pool of connections, for the stores' synchronous ports. The stores are called
/// on their features' writer queues and on the cooperative pool, never on an event loop: a
/// caller waits for its connection and its queries (the connections run on their own event
/// loops), as it waits for SQLite's lock. A connection that breaks is dropped and replaced on
/// the next checkout.
final class PostgresPool: @unchecked Sendable {
    // `@unchecked Sendable`: `idle`, `open`, `nextID` and `closed` are guarded by `condition`.
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var nextID = 0
    private var closed = false

    let configuration: PostgresConnection.Configuration
    let size: Int
    let group: any EventLoopGroup
    let logger: Logger
    /// How long a caller waits for a free connection before it fails.
    let checkoutTimeout: TimeInterval = 30

    init(configuration: PostgresConnection.Configuration, size: Int, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.size = max(1, size)
        self.group = group
        self.logger = logger
    }

    /// A connection of its own, outside the pool (the LISTEN connection).
    func connect() -> EventLoopFuture<PostgresConnection> {
        let id = condition.withLock { nextID += 1; return nextID }
        return PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger)
    }

    func withConnection<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        // Waiting on an event loop would stall every connection of that loop.
        guard MultiThreadedEventLoopGroup.currentEventLoop == nil else {
            throw PostgresStoreError("a PostgreSQL store was called on an event loop")
        }
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(PostgresSession(connection: connection, logger: logger))
    }

    /// One transaction: committed when `body` returns, rolled back when it throws. A commit
    /// whose answer is lost (the connection broke) is reported as a failure; the change feed
    /// then tells the truth to whoever reads it next.
    func transaction<T>(_ isolation: String = "READ COMMITTED", _ body: (PostgresSession) throws -> T) throws -> T {
        try withConnection { session in
            try session.execute("BEGIN ISOLATION LEVEL \(isolation)")
            let result: T
            do {
                result = try body(session)
            } catch {
                if (try? session.execute("ROLLBACK")) == nil { session.connection.closeSoon() }
                throw error
            }
            try session.execute("COMMIT")
            return result
        }
    }

    private func checkOut() throws -> PostgresConnection {
        let deadline = Date().addingTimeInterval(checkoutTimeout)
        condition.lock()
        while true {
            if closed {
                condition.unlock()
                throw PostgresStoreError("the PostgreSQL store is closed")
            }
            if let connection = idle.popLast() {
                if connection.isClosed { open -= 1; continue }
                condition.unlock()
                return connection
            }
            if open < size {
                open += 1
                nextID += 1
                let id = nextID
                condition.unlock()
                do {
                    return try PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger).wait()
                } catch {
                    condition.withLock { open -= 1; condition.signal() }
                    throw PostgresStoreError.from(error, doing: "the connection")
                }
            }
            if !condition.wait(until: deadline) {
                condition.unlock()
                throw PostgresStoreError("no PostgreSQL connection came free within \(Int(checkoutTimeout)) s (storage.pool_size is \(size))")
            }
        }
    }

    private func checkIn(_ connection: PostgresConnection) {
        let keep = condition.withLock {
            defer { condition.signal() }
            if closed || connection.isClosed {
                open -= 1
                return false
            }
            idle.append(connection)
            return true
        }
        if !keep { connection.closeSoon() }
    }

    /// A pool dropped without ``close()`` (a test's simulated crash) still closes its connections.
    deinit {
        for connection in idle { connection.closeSoon() }
    }

    /// Closes the idle connections, and each busy one as it comes back.
    func close() {
        let connections = condition.withLock {
            closed = true
            defer { idle = []; condition.broadcast() }
            return idle
        }
        for connection in connections { try? connection.closeFuture().wait() }
    }
}

/// One connection, checked out: synchronous queries.
struct PostgresSession {
    let connection: PostgresConnection
    let logger: Logger

    @discardableResult
    func query(_ query: PostgresQuery, doing what: String = "a query") throws -> [PostgresRow] {
        do {
            return try connection.query(query, logger: logger).wait().rows
        } catch {
            throw PostgresStoreError.from(error, doing: what)
        }
    }

    func execute(_ sql: String) throws {
        try query(PostgresQuery(unsafeSQL: sql), doing: sql)
    }

    /// Serializes the writers that append to the change feed, across every process on the
    /// database, until the transaction ends: change numbers then commit in order, so a reader
    /// that has seen number N has seen every change before it.
    func lockFeed() throws {
        try query("SELECT pg_advisory_xact_lock(\(PostgresControlPlane.feedLock))", doing: "the change feed's lock")
    }
}

extension PostgresRow {
    func column<T: PostgresDecodable>(_ index: Int, _ type: T.Type = T.self) throws -> T {
        do {
            return try makeRandomAccess()[index].decode(T.self)
        } catch {
            throw PostgresStoreError("PostgreSQL answered with a column of an unexpected type: \(error)")
        }
    }
}

extension PostgresConnection {
    /// Closes without waiting; the connection lives until it is closed.
    func closeSoon() {
        let closing: EventLoopFuture<Void> = close()
        closing.whenComplete { _ in withExtendedLifetime(self) {} }
    }

    func closeFuture() -> EventLoopFuture<Void> { close() }
}

extension ByteBuffer {
    var bytes: [UInt8] { Array(readableBytesView) }
}

/// The last of the items that share a key, in their order: what row-by-row writes would leave.
/// (One INSERT ... ON CONFLICT cannot touch a row twice.)
func lastOfEachKey<T>(_ items: [T], key: (T) -> String) -> [T] {
    var last: [String: Int] = [:]
    for (index, item) in items.enumerated() { last[key(item)] = index }
    return items.enumerated().filter { last[key($0.element)] == $0.offset }.map(\.element)
}

extension String {
    /// PostgreSQL's text cannot hold NUL: a name a client sent with one is stored with U+FFFD.
    var storable: String { contains("\0") ? replacingOccurrences(of: "\0", with: "\u{FFFD}") : self }
}
