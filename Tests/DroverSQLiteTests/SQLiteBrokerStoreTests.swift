@testable import DroverSQLite
import Foundation
import Logging
import MQTTBroker
import MQTTCodec
import NIOCore
import Testing

@Suite("SQLite broker store")
struct SQLiteBrokerStoreTests {
    private func temporaryPath() -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("drover-sqlite-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("broker.sqlite").path
    }

    private func message(_ topic: String, _ payload: String, qos: MQTTQoS = .atLeastOnce, retain: Bool = false) -> StoredMessage {
        var properties = MQTTProperties()
        properties.contentType = "text/plain"
        properties.userProperties = [.init(name: "k", value: "v")]
        properties.correlationData = ByteBuffer(string: "corr")
        return StoredMessage(topic: topic, payload: ByteBuffer(string: payload), qos: qos, retain: retain,
                             properties: properties, expiresAtEpochSeconds: 1_900_000_000.5, publisherId: "pub")
    }

    private func commit(_ store: SQLiteBrokerStore, _ changes: [BrokerStoreChange]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            store.commit(changes) { continuation.resume(with: $0) }
        }
    }

    @Test("a stored message keeps every field")
    func messageCoding() throws {
        let original = message("a/b", "payload")
        #expect(try StoredMessageCoding.decode(StoredMessageCoding.encode(original)) == original)
        let bare = StoredMessage(topic: "t", payload: ByteBuffer(), qos: .exactlyOnce, retain: true, properties: .init(),
                                 expiresAtEpochSeconds: nil, publisherId: nil)
        #expect(try StoredMessageCoding.decode(StoredMessageCoding.encode(bare)) == bare)
    }

    @Test("sessions, queued messages with their delivery state, and retained messages survive reopening the file")
    func reopen() async throws {
        let path = temporaryPath()
        let subscription = StoredSubscription(filter: "a/#", options: .init(qos: .exactlyOnce, noLocal: true), subscriptionIdentifier: 4)
        do {
            let store = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"))
            try await commit(store, [
                .putSession(StoredSession(clientId: "c1", protocolVersion: .v5, expiryInterval: 3600, subscriptions: [subscription],
                                          inboundQoS2: [7, 9], disconnectedAt: 1_800_000_000, pendingWill: message("w", "bye"),
                                          willDueAt: 1_800_000_005)),
                .enqueue(clientId: "c1", sequence: 1, message: message("a/1", "one"), qos: .atLeastOnce, subscriptionIdentifiers: [4]),
                .enqueue(clientId: "c1", sequence: 2, message: message("a/2", "two"), qos: .exactlyOnce, subscriptionIdentifiers: []),
                .enqueue(clientId: "c1", sequence: 3, message: message("a/3", "three"), qos: .exactlyOnce, subscriptionIdentifiers: []),
                .updateDelivery(clientId: "c1", sequence: 2, state: .released(packetId: 12)),
                .updateDelivery(clientId: "c1", sequence: 3, state: .sent(packetId: 13)),
                .removeMessage(clientId: "c1", sequence: 1),
                .putRetained(message("keep", "r", retain: true)),
                .putRetained(message("gone", "x", retain: true)),
                .deleteRetained(topic: "gone"),
                .putSession(StoredSession(clientId: "c2", protocolVersion: .v311, expiryInterval: 10, subscriptions: [], inboundQoS2: [])),
                .enqueue(clientId: "c2", sequence: 1, message: message("x", "y"), qos: .atLeastOnce, subscriptionIdentifiers: []),
                .deleteSession(clientId: "c2"),
            ])
        }
        let reopened = try SQLiteBrokerStore(path: path, durability: .normal, logger: Logger(label: "test"))
        let state = try reopened.recover()
        #expect(state.sessions.count == 1)
        let session = try #require(state.sessions.first)
        #expect(session.clientId == "c1")
        #expect(session.subscriptions == [subscription])
        #expect(Set(session.inboundQoS2) == [7, 9])
        #expect(session.disconnectedAt == 1_800_000_000)
        #expect(session.pendingWill == message("w", "bye"))
        #expect(session.willDueAt == 1_800_000_005)
        let queue = state.queues["c1"] ?? []
        #expect(queue.map(\.sequence) == [2, 3])
        #expect(queue.map(\.state) == [.released(packetId: 12), .sent(packetId: 13)])
        #expect(queue.first?.message == message("a/2", "two"))
        #expect(state.queues["c2"] == nil)
        #expect(state.retained.map(\.topic) == ["keep"])
    }

    @Test("group commit: concurrent commits all complete, and all are durable")
    func groupCommit() async throws {
        let path = temporaryPath()
        let store = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await commit(store, [.enqueue(
                        clientId: "c", sequence: UInt64(index + 1), message: message("t", "\(index)"), qos: .atLeastOnce,
                        subscriptionIdentifiers: [])])
                }
            }
            try await group.waitForAll()
        }
        #expect(try store.messageCount() == 200)
    }

    @Test("a damaged database file is an error that names the database")
    func corrupt() throws {
        let path = temporaryPath()
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"))
        } throws: { error in
            "\(error)".contains("database")
        }
    }

    @Test("a database that went missing from a data directory that had one is an error")
    func missing() throws {
        let path = temporaryPath()
        _ = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"))
        try FileManager.default.removeItem(atPath: path)
        #expect {
            _ = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"), mustExist: true)
        } throws: { error in
            "\(error)".contains("missing")
        }
    }

    @Test("the database and its WAL files are private to their owner (0600)")
    func permissions() async throws {
        let path = temporaryPath()
        let store = try SQLiteBrokerStore(path: path, durability: .fsync, logger: Logger(label: "test"))
        try await commit(store, [.putRetained(message("t", "x", retain: true))])
        for file in [path, path + "-wal", path + "-shm"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
        }
    }
}
