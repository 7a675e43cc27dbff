import Dispatch
import Foundation
import GRDB
import Logging
import MQTTBroker
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// The broker's durable state in SQLite (WAL mode), behind ``BrokerStore``.
///
/// Group commit: `commit` queues changes; one writer applies everything queued since its last
/// transaction in a single transaction, then calls every completion. Under load, many
/// connections' changes share one fsync; when idle, a change is written at once.
///
/// `@unchecked Sendable`: `pending` and `writing` are guarded by `lock`; the database is used
/// only by the writer queue (and by `recover`, before the broker starts).
public final class SQLiteBrokerStore: BrokerStore, @unchecked Sendable {
    /// How hard each commit is pushed to disk.
    public struct Durability: Sendable, Hashable {
        enum Mode: String { case fsync, normal }
        let mode: Mode
        /// Every group commit is fsynced before acknowledgements go out (`synchronous=FULL`).
        public static let fsync = Durability(mode: .fsync)
        /// The OS decides when to write (`synchronous=NORMAL` in WAL): a power loss can lose the
        /// last commits, a process crash cannot.
        public static let normal = Durability(mode: .normal)

        public init?(_ name: String) {
            guard let mode = Mode(rawValue: name) else { return nil }
            self.mode = mode
        }

        private init(mode: Mode) { self.mode = mode }
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private typealias Completion = @Sendable (Result<Void, any Swift.Error>) -> Void

    private let database: any DatabaseWriter
    private let writer = DispatchQueue(label: "drover.sqlite.writer")
    private let lock = NIOLock()
    private var pending: [([BrokerStoreChange], Completion)] = []
    private var writing = false
    private let logger: Logger

    /// Opens (or creates) the database at `path`. A file that is not a Drover database, or a
    /// missing file where `mustExist` says there was one, is an error: never a silent empty
    /// broker. (The control-plane database remembers that the broker's file was made.)
    public init(path: String, durability: Durability, logger: Logger, mustExist: Bool = false) throws {
        self.logger = logger
        let synchronous = durability.mode == .fsync ? "FULL" : "NORMAL"
        do {
            database = try SQLiteDatabase.open(
                path: path, label: "drover.broker", what: "broker database", synchronous: synchronous, migrator: Self.migrator,
                mustExist: mustExist)
        } catch {
            throw Error(description: "\(error)")
        }
    }

    /// Waits for pending commits, then checkpoints the WAL into the database file and closes it,
    /// so that a stopped broker leaves one self-contained file.
    public func close() {
        writer.sync {
            do {
                try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
                try database.close()
            } catch {
                logger.error("closing the broker database failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// An in-memory database, for tests.
    public init(inMemory: Void = (), logger: Logger = Logger(label: "drover.sqlite")) throws {
        self.logger = logger
        database = try DatabaseQueue()
        try Self.migrator.migrate(database)
    }

    /// Append-only: a shipped migration is never edited.
    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "session") { t in
                t.primaryKey("clientId", .text)
                t.column("protocolVersion", .integer).notNull()
                t.column("expiryInterval", .integer).notNull()
                t.column("subscriptions", .blob).notNull()
                t.column("inboundQoS2", .blob).notNull()
                t.column("disconnectedAt", .double)
                t.column("willDueAt", .double)
                t.column("will", .blob)
            }
            try db.create(table: "message") { t in
                t.column("clientId", .text).notNull()
                t.column("sequence", .integer).notNull()
                t.column("qos", .integer).notNull()
                t.column("subscriptionIdentifiers", .blob).notNull()
                t.column("state", .integer).notNull()
                t.column("packetId", .integer)
                t.column("message", .blob).notNull()
                t.primaryKey(["clientId", "sequence"])
            }
            try db.create(table: "retained") { t in
                t.primaryKey("topic", .text)
                t.column("message", .blob).notNull()
            }
        }
        // The principal a session belongs to (JSON of StoredSessionOwner); NULL in sessions from v1.
        migrator.registerMigration("v2-session-owner") { db in
            try db.alter(table: "session") { t in t.add(column: "owner", .blob) }
        }
        return migrator
    }

    // MARK: BrokerStore

    public func commit(_ changes: [BrokerStoreChange], completion: @escaping @Sendable (Result<Void, any Swift.Error>) -> Void) {
        let start = lock.withLock {
            pending.append((changes, completion))
            if writing { return false }
            writing = true
            return true
        }
        if start { writer.async { self.writeLoop() } }
    }

    private func writeLoop() {
        while true {
            let batch: [([BrokerStoreChange], Completion)] = lock.withLock {
                if pending.isEmpty {
                    writing = false
                    return []
                }
                defer { pending = [] }
                return pending
            }
            if batch.isEmpty { return }
            let result: Result<Void, any Swift.Error> = Result {
                try database.write { db in
                    for (changes, _) in batch {
                        for change in changes { try Self.apply(change, db) }
                    }
                }
            }
            if case .failure(let error) = result {
                logger.error("broker database write failed", metadata: ["error": "\(error)"])
            }
            for (_, completion) in batch { completion(result) }
        }
    }

    private static func apply(_ change: BrokerStoreChange, _ db: Database) throws {
        switch change {
        case .putSession(let session):
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO session
                    (clientId, protocolVersion, expiryInterval, subscriptions, inboundQoS2, disconnectedAt, willDueAt, will,
                     owner)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    session.clientId, Int(session.protocolVersion.rawValue), Int64(session.expiryInterval),
                    try JSONEncoder().encode(session.subscriptions), try JSONEncoder().encode(session.inboundQoS2),
                    session.disconnectedAt, session.willDueAt, session.pendingWill.map(StoredMessageCoding.encode),
                    try session.owner.map { try JSONEncoder().encode($0) },
                ])
        case .deleteSession(let clientId):
            try db.execute(sql: "DELETE FROM session WHERE clientId = ?", arguments: [clientId])
            try db.execute(sql: "DELETE FROM message WHERE clientId = ?", arguments: [clientId])
        case .enqueue(let clientId, let sequence, let message, let qos, let identifiers):
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO message (clientId, sequence, qos, subscriptionIdentifiers, state, packetId, message)
                    VALUES (?, ?, ?, ?, 0, NULL, ?)
                    """,
                arguments: [
                    clientId, Int64(bitPattern: sequence), Int(qos.rawValue), try JSONEncoder().encode(identifiers),
                    StoredMessageCoding.encode(message),
                ])
        case .updateDelivery(let clientId, let sequence, let state):
            let (code, packetId): (Int, Int?) =
                switch state {
                case .queued: (0, nil)
                case .sent(let id): (1, Int(id))
                case .released(let id): (2, Int(id))
                }
            try db.execute(
                sql: "UPDATE message SET state = ?, packetId = ? WHERE clientId = ? AND sequence = ?",
                arguments: [code, packetId, clientId, Int64(bitPattern: sequence)])
        case .removeMessage(let clientId, let sequence):
            try db.execute(
                sql: "DELETE FROM message WHERE clientId = ? AND sequence = ?",
                arguments: [clientId, Int64(bitPattern: sequence)])
        case .putRetained(let message):
            try db.execute(
                sql: "INSERT OR REPLACE INTO retained (topic, message) VALUES (?, ?)",
                arguments: [message.topic, StoredMessageCoding.encode(message)])
        case .deleteRetained(let topic):
            try db.execute(sql: "DELETE FROM retained WHERE topic = ?", arguments: [topic])
        }
    }

    public func recover() throws -> RecoveredBrokerState {
        // Wait for writes in flight, so that what we read is complete.
        writer.sync {}
        do {
            return try database.read { db in
                var state = RecoveredBrokerState()
                let decoder = JSONDecoder()
                for row in try Row.fetchAll(db, sql: "SELECT * FROM session") {
                    guard let version = MQTTProtocolVersion(rawValue: UInt8(row["protocolVersion"] as Int)) else { continue }
                    let expiry: Int64 = row["expiryInterval"]
                    state.sessions.append(StoredSession(
                        clientId: row["clientId"], protocolVersion: version, expiryInterval: UInt32(clamping: expiry),
                        subscriptions: try decoder.decode([StoredSubscription].self, from: row["subscriptions"] as Data),
                        inboundQoS2: try decoder.decode([UInt16].self, from: row["inboundQoS2"] as Data),
                        disconnectedAt: row["disconnectedAt"],
                        pendingWill: try (row["will"] as Data?).map(StoredMessageCoding.decode),
                        willDueAt: row["willDueAt"],
                        owner: try (row["owner"] as Data?).map { try decoder.decode(StoredSessionOwner.self, from: $0) }))
                }
                for row in try Row.fetchAll(db, sql: "SELECT * FROM message ORDER BY clientId, sequence") {
                    let code: Int = row["state"]
                    let packetId = (row["packetId"] as Int?).map { UInt16(clamping: $0) }
                    let delivery: StoredDeliveryState =
                        switch (code, packetId) {
                        case (1, let id?): .sent(packetId: id)
                        case (2, let id?): .released(packetId: id)
                        default: .queued
                        }
                    let clientId: String = row["clientId"]
                    let qos = MQTTQoS(rawValue: UInt8(row["qos"] as Int)) ?? .atLeastOnce
                    state.queues[clientId, default: []].append(.init(
                        sequence: UInt64(bitPattern: row["sequence"] as Int64),
                        message: try StoredMessageCoding.decode(row["message"] as Data),
                        qos: qos,
                        subscriptionIdentifiers: try decoder.decode([Int].self, from: row["subscriptionIdentifiers"] as Data),
                        state: delivery))
                }
                for row in try Row.fetchAll(db, sql: "SELECT message FROM retained") {
                    state.retained.append(try StoredMessageCoding.decode(row["message"] as Data))
                }
                return state
            }
        } catch {
            throw Error(description: "cannot read the broker database: \(error)")
        }
    }

    /// How many queued messages the store holds, for tests and startup logs.
    public func messageCount() throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM message") ?? 0 }
    }
}

/// A stored message as one blob: a version byte, then the fields in MQTT's own encodings
/// (properties in MQTT 5 wire format), so no schema change is needed for new properties.
enum StoredMessageCoding {
    static func encode(_ message: StoredMessage) -> Data {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(UInt32(message.topic.utf8.count))
        buffer.writeString(message.topic)
        buffer.writeInteger(message.qos.rawValue)
        buffer.writeInteger(UInt8(message.retain ? 1 : 0))
        buffer.writeInteger(message.expiresAtEpochSeconds.map { $0.bitPattern } ?? UInt64.max)
        if let publisher = message.publisherId {
            buffer.writeInteger(UInt32(publisher.utf8.count))
            buffer.writeString(publisher)
        } else {
            buffer.writeInteger(UInt32.max)
        }
        var properties = message.properties.serialized()
        buffer.writeInteger(UInt32(properties.readableBytes))
        buffer.writeBuffer(&properties)
        buffer.writeInteger(UInt32(message.payload.readableBytes))
        buffer.writeImmutableBuffer(message.payload)
        return Data(buffer.readableBytesView)
    }

    static func decode(_ data: Data) throws -> StoredMessage {
        var buffer = ByteBuffer(bytes: data)
        func fail() -> SQLiteBrokerStore.Error { .init(description: "a stored message is damaged") }
        guard buffer.readInteger(as: UInt8.self) == 1,
            let topicLength = buffer.readInteger(as: UInt32.self),
            let topic = buffer.readString(length: Int(topicLength)),
            let qosRaw = buffer.readInteger(as: UInt8.self), let qos = MQTTQoS(rawValue: qosRaw),
            let retain = buffer.readInteger(as: UInt8.self),
            let expiryBits = buffer.readInteger(as: UInt64.self),
            let publisherLength = buffer.readInteger(as: UInt32.self)
        else { throw fail() }
        var publisher: String?
        if publisherLength != UInt32.max {
            guard let value = buffer.readString(length: Int(publisherLength)) else { throw fail() }
            publisher = value
        }
        guard let propertiesLength = buffer.readInteger(as: UInt32.self),
            let propertiesBytes = buffer.readSlice(length: Int(propertiesLength)),
            let payloadLength = buffer.readInteger(as: UInt32.self),
            let payload = buffer.readSlice(length: Int(payloadLength))
        else { throw fail() }
        let properties = try MQTTProperties(serialized: propertiesBytes, context: .publish)
        return StoredMessage(
            topic: topic, payload: payload, qos: qos, retain: retain == 1, properties: properties,
            expiresAtEpochSeconds: expiryBits == UInt64.max ? nil : Double(bitPattern: expiryBits),
            publisherId: publisher)
    }
}
