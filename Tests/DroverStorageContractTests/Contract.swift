import DroverFleetConfig
@testable import DroverPostgres
import DroverRegistry
import DroverShadowService
@testable import DroverSQLite
import Foundation
import GRDB
import Logging
import NIOPosix
import Testing

/// The control-plane backends. PostgreSQL runs when `DROVER_TEST_POSTGRES_URL` names a server
/// (`scripts/test.sh` starts a private one); each test gets a database of its own.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres

    var testDescription: String { rawValue }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["DROVER_TEST_POSTGRES_URL"] }
    static var available: [Backend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
}

/// One backend's stores, as one process opens them.
struct Opened: Sendable {
    let registry: any RegistryStore
    let fleetConfig: any FleetConfigStore
    let shadows: any ShadowStore
    let brokerStoreCreated: @Sendable (String) -> Bool
    let markBrokerStoreCreated: @Sendable (String) throws -> Void
    let close: @Sendable () -> Void
}

/// One database that several processes may open.
final class SharedDatabase: @unchecked Sendable {
    let backend: Backend
    private let directory: String
    private var url: String?
    let logger = Logger(label: "contract")

    init(_ backend: Backend) throws {
        self.backend = backend
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("drover-contract-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if backend == .postgres {
            guard let base = Backend.postgresURL else { throw PostgresStoreError("DROVER_TEST_POSTGRES_URL is not set") }
            let name = "drover_contract_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
            try Self.admin(base) { session in try session.execute("CREATE DATABASE \(name)") }
            var components = try #require(URLComponents(string: base))
            components.path = "/" + name
            url = components.string
        }
    }

    /// Runs `body` on a connection to the server's maintenance database.
    static func admin(_ base: String, _ body: (PostgresSession) throws -> Void) throws {
        let (configuration, _) = try PostgresControlPlane.configuration(url: base)
        let pool = PostgresPool(configuration: configuration, size: 1, group: MultiThreadedEventLoopGroup.singleton,
                                logger: Logger(label: "contract"))
        defer { pool.close() }
        try pool.withConnection(body)
    }

    /// `node`: a data directory of its own, as each process has.
    func open(node: String = "a") throws -> Opened {
        switch backend {
        case .sqlite:
            let dataDir = directory + "/" + node
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
            let database = try SQLiteControlPlane(dataDir: dataDir, path: directory + "/drover.sqlite", durability: .normal,
                                                  logger: logger)
            return Opened(registry: database.registry, fleetConfig: database.fleetConfig, shadows: database.shadows,
                          brokerStoreCreated: { database.brokerStoreCreated(dataDir: $0) },
                          markBrokerStoreCreated: { try database.markBrokerStoreCreated(dataDir: $0) }, close: { database.close() })
        case .postgres:
            let url = try #require(url)
            let database = try PostgresControlPlane(url: url, poolSize: 4,
                                                    eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
            return Opened(registry: database.registry, fleetConfig: database.fleetConfig, shadows: database.shadows,
                          brokerStoreCreated: { database.brokerStoreCreated(dataDir: $0) },
                          markBrokerStoreCreated: { try database.markBrokerStoreCreated(dataDir: $0) }, close: { database.close() })
        }
    }

    /// Makes the database refuse to store a registry record whose key is `key`, as a broken
    /// constraint would, so that a write fails half-way through.
    func refuseRecords(withKey key: String) throws {
        switch backend {
        case .sqlite:
            let queue = try DatabaseQueue(path: directory + "/drover.sqlite")
            try queue.write { db in
                try db.execute(sql: "CREATE TRIGGER refuse BEFORE INSERT ON record WHEN NEW.key = '\(key)' BEGIN SELECT RAISE(ABORT, 'refused'); END")
            }
            try queue.close()
        case .postgres:
            let url = try #require(url)
            var components = try #require(URLComponents(string: url))
            components.queryItems = nil
            try Self.admin(try #require(components.string)) { session in
                try session.execute("""
                    CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                      IF NEW.key = '\(key)' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql
                    """)
                try session.execute("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON drover_record FOR EACH ROW EXECUTE FUNCTION refuse()")
            }
        }
    }
}

func record(_ key: String, _ value: String = "{}", kind: String = "thing") -> RegistryRecordChange {
    RegistryRecordChange(kind: kind, key: key, value: Array(value.utf8))
}

func audit(_ operation: String, principal: String = "k") -> AuditEntry {
    AuditEntry(time: Date().timeIntervalSince1970, principal: principal, operation: operation, resource: "r", outcome: "success")
}

@Suite("storage contract", .serialized)
struct StorageContractTests {
    @Test("PostgreSQL is part of the run when scripts/test.sh asks for it")
    func postgresConfigured() {
        if ProcessInfo.processInfo.environment["DROVER_TEST_REQUIRE_POSTGRES"] == "1" {
            #expect(Backend.postgresURL != nil, "DROVER_TEST_POSTGRES_URL is not set: the contract ran on SQLite only")
        }
    }

    @Test("every command's changes are numbered in commit order, across features, and read back with current values",
          arguments: Backend.available)
    func ordering(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open()
        var positions = [try one.registry.feedPosition()]
        try one.registry.apply([record("a"), record("b")], audit: audit("CreateThing"))
        positions.append(try one.registry.feedPosition())
        try one.fleetConfig.apply([ConfigRecordChange(kind: "template", key: "t", value: Array("{}".utf8))], audit: audit("CreateConfigTemplate"))
        positions.append(try one.registry.feedPosition())
        try one.shadows.apply([.save(thing: "a", name: "", document: [1, 2], version: 1)])
        positions.append(try one.shadows.feedPosition())
        try one.registry.apply([record("a", "{\"v\":2}"), RegistryRecordChange(kind: "thing", key: "b", value: nil)], audit: audit("UpdateThing"))
        positions.append(try one.registry.feedPosition())
        #expect(positions == positions.sorted() && Set(positions).count == positions.count, "\(positions)")
        one.close()

        let two = try shared.open(node: "b")
        let all = try #require(try two.registry.changes(after: 0, limit: 100))
        // Each row carries the record's value now, not then: "a" is at version 2, "b" is gone.
        #expect(all.changes.map(\.key) == ["a", "b", "a", "b"])
        #expect(all.changes.map(\.value) == [Array("{\"v\":2}".utf8), nil, Array("{\"v\":2}".utf8), nil])
        #expect(all.position == positions.last)
        let later = try #require(try two.registry.changes(after: positions[3], limit: 100))
        #expect(later.changes.map(\.key) == ["a", "b"] && later.position == positions.last)
        // A page of one: the position stops at the row returned.
        let page = try #require(try two.registry.changes(after: 0, limit: 1))
        #expect(page.changes.map(\.key) == ["a"] && page.position < positions[1])
        #expect(try two.registry.loadAll() == ["thing": ["a": Array("{\"v\":2}".utf8)]])
        #expect(try two.fleetConfig.loadAll()["template"]?["t"] == Array("{}".utf8))
        #expect(try two.shadows.load(thing: "a", name: "").document == [1, 2])
        // The configuration's audit entry is in the registry's audit log, newest first.
        #expect(try two.registry.queryAudit(AuditQuery()).map(\.operation) == ["UpdateThing", "CreateConfigTemplate", "CreateThing"])
        two.close()
    }

    @Test("a command that fails half-way leaves no record, no audit entry and no change row", arguments: Backend.available)
    func atomicity(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let store = try shared.open()
        defer { store.close() }
        try store.registry.apply([record("before")], audit: audit("CreateThing"))
        let position = try store.registry.feedPosition()
        try shared.refuseRecords(withKey: "bad")
        #expect(throws: (any Error).self) {
            try store.registry.apply([record("good"), record("bad")], audit: audit("CreateThing"))
        }
        #expect(throws: (any Error).self) {
            _ = try store.registry.write(after: position) { _ in ([record("good2"), record("bad")], [audit("CreateThing")]) }
        }
        // A body that throws writes nothing either.
        struct Refused: Error {}
        #expect(throws: Refused.self) {
            _ = try store.registry.write(after: position) { _ in throw Refused() }
        }
        #expect(try store.registry.loadAll() == ["thing": ["before": Array("{}".utf8)]])
        #expect(try store.registry.queryAudit(AuditQuery()).count == 1)
        #expect(try store.registry.feedPosition() == position)
        #expect(try store.registry.changes(after: position, limit: 10)?.changes.isEmpty == true)
        // The store still works after the failures.
        _ = try store.registry.write(after: position) { _ in ([record("after")], [audit("CreateThing")]) }
        #expect(try store.registry.loadAll()["thing"].map { Set($0.keys) } == ["before", "after"])
    }

    @Test("one write holds several commands: their audit entries in order (a refusal with its message), the last write of a key wins",
          arguments: Backend.available)
    func groupedWrite(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let store = try shared.open()
        defer { store.close() }
        var refused = audit("CreateThing", principal: "two")
        refused.outcome = "ResourceAlreadyExistsException"
        refused.message = "thing a exists"
        let position = try store.registry.write(after: 0) { _ in
            ([record("a", "{\"v\":1}"), record("b"), record("a", "{\"v\":2}")],
             [audit("CreateThing", principal: "one"), refused, audit("DeleteThing", principal: "three")])
        }
        #expect(try store.registry.loadAll()["thing"] == ["a": Array("{\"v\":2}".utf8), "b": Array("{}".utf8)])
        let entries = try store.registry.queryAudit(AuditQuery())
        #expect(entries.map(\.principal) == ["three", "two", "one"])
        #expect(entries.map(\.message) == [nil, "thing a exists", nil])
        #expect(entries.map(\.outcome) == ["success", "ResourceAlreadyExistsException", "success"])
        #expect(try store.registry.changes(after: 0, limit: 10)?.changes.map(\.key) == ["a", "b", "a"])
        #expect(try store.registry.feedPosition() == position)
        // Nothing to write but the refusals' entries: still one transaction, no change rows.
        _ = try store.registry.write(after: position) { _ in ([], [refused, refused]) }
        #expect(try store.registry.queryAudit(AuditQuery()).count == 5)
        #expect(try store.registry.feedPosition() == position)
    }

    @Test("a reader resumes after a crash from the last number it applied: nothing missed, nothing twice; a reader the feed no longer reaches reloads",
          arguments: Backend.available)
    func resume(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let writer = try shared.open()
        defer { writer.close() }
        for name in ["t1", "t2", "t3", "t4", "t5"] { try writer.registry.apply([record(name)], audit: nil) }

        var reader = try shared.open(node: "b")
        let first = try #require(try reader.registry.changes(after: 0, limit: 2))
        #expect(first.changes.map(\.key) == ["t1", "t2"])
        // The reader stops without closing anything, as after kill -9, and starts again.
        reader = try shared.open(node: "c")
        let rest = try #require(try reader.registry.changes(after: first.position, limit: 100))
        #expect(rest.changes.map(\.key) == ["t3", "t4", "t5"])
        #expect(rest.position == (try writer.registry.feedPosition()))
        reader.close()

        // A bulk write pushes the feed past its retained window: a reader left at the start
        // learns that it must reload (nil), and the newest rows are still there.
        let bulk = (0..<Int(ChangeFeed.retained) + 5_000).map { record(String(format: "bulk-%06d", $0)) }
        try writer.registry.apply(bulk, audit: nil)
        #expect(try writer.registry.changes(after: first.position, limit: 10) == nil)
        let position = try writer.registry.feedPosition()
        let tail = try #require(try writer.registry.changes(after: position - 3, limit: 10))
        #expect(tail.changes.map(\.key) == bulk.suffix(3).map(\.key))
        #expect(try writer.registry.loadAll()["thing"]?.count == bulk.count + 5)
    }

    @Test("two processes write at once: every write decides on the current truth, and the numbers are unique and ordered",
          arguments: Backend.available)
    func concurrentWriters(_ backend: Backend) async throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        // A counter that each process increments from what its write sees: lost updates show.
        let rounds = 40
        @Sendable func increment(_ store: any RegistryStore) throws -> [Int64] {
            var position: Int64 = 0
            var value = 0
            var positions: [Int64] = []
            for _ in 0..<rounds {
                position = try store.write(after: position) { external in
                    for change in external where change.key == "counter" {
                        value = change.value.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
                    }
                    return ([record("counter", String(value + 1), kind: "counter")], [])
                }
                value += 1
                positions.append(position)
            }
            return positions
        }
        async let a = Task.detached { try increment(one.registry) }.value
        async let b = Task.detached { try increment(two.registry) }.value
        let (fromA, fromB) = try await (a, b)
        #expect(fromA == fromA.sorted() && fromB == fromB.sorted())
        #expect(Set(fromA + fromB).count == 2 * rounds)
        let stored = try one.registry.loadAll()["counter"]?["counter"].map { String(decoding: $0, as: UTF8.self) }
        #expect(stored == String(2 * rounds))

        // Writers that do not read (apply) from many threads: every record and every row lands.
        let writers = 8, each = 25
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                let store = writer.isMultiple(of: 2) ? one.registry : two.registry
                group.addTask {
                    for index in 0..<each { try store.apply([record("w\(writer)-\(index)", kind: "parallel")], audit: audit("Parallel")) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try one.registry.loadAll()["parallel"]?.count == writers * each)
        let before = max(fromA.max() ?? 0, fromB.max() ?? 0)
        let feed = try #require(try two.registry.changes(after: before, limit: 10_000))
        #expect(feed.changes.count == writers * each && Set(feed.changes.map(\.key)).count == writers * each)
        #expect(try one.registry.queryAudit(AuditQuery(operation: "Parallel", limit: 1000)).count == writers * each)
    }

    @Test("the same name created by two processes at once: one registry makes it, the other answers as AWS does",
          arguments: Backend.available)
    func conflictingCreates(_ backend: Backend) async throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        let a = try Registry(store: one.registry)
        let b = try Registry(store: two.registry)
        let caller = Caller(principal: "k", region: "us-east-1")
        for round in 0..<5 {
            @Sendable func create(_ registry: Registry, _ from: String) async -> Result<Void, any Error> {
                do {
                    _ = try await registry.createThing(caller, name: "race-\(round)", typeName: nil, attributes: ["from": from])
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            async let first = create(a, "a")
            async let second = create(b, "b")
            let results = await [first, second]
            let made = results.filter { if case .success = $0 { true } else { false } }
            // Both may succeed only with the same thing (the second create is idempotent when
            // the attributes match); they do not match here, so one is refused.
            #expect(made.count == 1, "round \(round): \(results)")
            for case .failure(let error) in results {
                #expect((error as? RegistryError)?.kind == .alreadyExists, "\(error)")
            }
        }
        a.catchUp()
        b.catchUp()
        _ = try await a.auditLog(AuditQuery(limit: 1))
        _ = try await b.auditLog(AuditQuery(limit: 1))
        for round in 0..<5 { #expect(try a.describeThing("race-\(round)") == b.describeThing("race-\(round)")) }
        #expect(a.snapshot.checkIndexes() == nil && b.snapshot.checkIndexes() == nil)
    }

    @Test("keys come from the index in byte order, after a cursor, within a prefix", arguments: Backend.available)
    func keys(_ backend: Backend) throws {
        let store = try SharedDatabase(backend).open()
        defer { store.close() }
        let names = ["g/b", "g/a", "h/a", "g0", "f/z", "g/c", "G/a"]
        try store.registry.apply(names.map { record($0, kind: "group-member") }, audit: nil)
        #expect(try store.registry.keys(kind: "group-member", prefix: "g/", after: nil, limit: 10) == ["g/a", "g/b", "g/c"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "g/", after: "g/a", limit: 1) == ["g/b"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "", after: "g/c", limit: 10) == ["g0", "h/a"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "", after: nil, limit: 2) == ["G/a", "f/z"])
        #expect(try store.registry.keys(kind: "thing", prefix: "", after: nil, limit: 10) == [])
        // Backwards: before a cursor, within a prefix, in descending byte order.
        #expect(try store.registry.keys(kind: "group-member", prefix: "g/", before: nil, limit: 10) == ["g/c", "g/b", "g/a"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "g/", before: "g/c", limit: 1) == ["g/b"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "", before: "g/a", limit: 10) == ["f/z", "G/a"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "", before: nil, limit: 2) == ["h/a", "g0"])
        #expect(try store.registry.keys(kind: "group-member", prefix: "g/", before: "g/a", limit: 10) == [])
        #expect(try store.registry.keys(kind: "thing", prefix: "", before: nil, limit: 10) == [])
    }

    @Test("one record is read by its kind and key; a missing or removed one reads as nil", arguments: Backend.available)
    func pointRead(_ backend: Backend) throws {
        let store = try SharedDatabase(backend).open()
        defer { store.close() }
        let value = Array(#"{"pem":"-----BEGIN CERTIFICATE-----\nMIIB\u0000/x=\n"}"#.utf8)
        try store.registry.apply([RegistryRecordChange(kind: "certificate-pem", key: "ab", value: value),
                                  RegistryRecordChange(kind: "certificate", key: "ab", value: Array("{}".utf8))], audit: nil)
        #expect(try store.registry.record(kind: "certificate-pem", key: "ab") == value)
        #expect(try store.registry.record(kind: "certificate", key: "ab") == Array("{}".utf8))
        #expect(try store.registry.record(kind: "certificate-pem", key: "AB") == nil)
        #expect(try store.registry.record(kind: "thing", key: "ab") == nil)
        try store.registry.apply([RegistryRecordChange(kind: "certificate-pem", key: "ab", value: nil)], audit: nil)
        #expect(try store.registry.record(kind: "certificate-pem", key: "ab") == nil)
    }

    @Test("the audit log filters by principal, operation, resource and cursor, newest first", arguments: Backend.available)
    func auditQueries(_ backend: Backend) throws {
        let store = try SharedDatabase(backend).open()
        defer { store.close() }
        for index in 0..<6 {
            try store.registry.appendAudit(audit(index.isMultiple(of: 2) ? "CreateThing" : "DeleteThing", principal: "p\(index % 3)"))
        }
        let all = try store.registry.queryAudit(AuditQuery())
        #expect(all.count == 6 && all.compactMap(\.id) == all.compactMap(\.id).sorted(by: >))
        #expect(try store.registry.queryAudit(AuditQuery(operation: "CreateThing")).count == 3)
        #expect(try store.registry.queryAudit(AuditQuery(principal: "p1")).map(\.operation) == ["CreateThing", "DeleteThing"])
        let page = try store.registry.queryAudit(AuditQuery(limit: 2))
        #expect(page.count == 2)
        let next = try store.registry.queryAudit(AuditQuery(limit: 10, before: page.last?.id))
        #expect(next.count == 4 && Set(next.compactMap(\.id)).isDisjoint(with: page.compactMap(\.id)))
        // Text PostgreSQL cannot hold (NUL) is stored, not refused.
        try store.registry.appendAudit(audit("Odd", principal: "nul\u{0}here"))
        #expect(try store.registry.queryAudit(AuditQuery(operation: "Odd")).count == 1)
    }

    @Test("one process holds a lease at a time; another takes it when it runs out", arguments: Backend.available)
    func lease(_ backend: Backend) async throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        #expect(try one.fleetConfig.holdLease("rollout", seconds: 0.6))
        #expect(try !two.fleetConfig.holdLease("rollout", seconds: 0.6))
        #expect(try one.fleetConfig.holdLease("rollout", seconds: 0.6))
        #expect(try two.fleetConfig.holdLease("other", seconds: 0.6))
        try await Task.sleep(for: .milliseconds(900))
        #expect(try two.fleetConfig.holdLease("rollout", seconds: 30))
        #expect(try !one.fleetConfig.holdLease("rollout", seconds: 30))
    }

    @Test("a process hears of other processes' configuration changes, not of its own", arguments: Backend.available)
    func othersChanged(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        let start = try one.fleetConfig.othersChanged(after: .max).position
        try one.fleetConfig.apply([ConfigRecordChange(kind: "deployment", key: "d", value: Array("{}".utf8))], audit: nil)
        let mine = try one.fleetConfig.othersChanged(after: start)
        let theirs = try two.fleetConfig.othersChanged(after: start)
        #expect(!mine.changed && theirs.changed && mine.position == theirs.position && mine.position > start)
        #expect(try !two.fleetConfig.othersChanged(after: theirs.position).changed)
        try one.fleetConfig.apply([ConfigRecordChange(kind: "deployment", key: "d", value: nil)], audit: audit("DeleteDeployment"))
        #expect(try two.fleetConfig.loadAll()["deployment"] == nil)
    }

    @Test("shadows: documents, deletions that keep their version, names, removal, and messages for the other processes",
          arguments: Backend.available)
    func shadows(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        let start = try two.shadows.feedPosition()
        try one.shadows.apply([.save(thing: "t", name: "", document: [1], version: 1),
                               .save(thing: "t", name: "", document: [2], version: 2),
                               .save(thing: "t", name: "beta", document: [3], version: 1),
                               .save(thing: "t", name: "alpha", document: [4], version: 1)],
                              announcing: [ShadowMessage(topic: "$aws/things/t/shadow/update/delta", payload: Array("{}".utf8))])
        #expect(try two.shadows.load(thing: "t", name: "").document == [2])
        #expect(try two.shadows.names(thing: "t") == ["", "alpha", "beta"])
        try one.shadows.apply([.delete(thing: "t", name: "beta", version: 7)], announcing: [])
        let deleted = try two.shadows.load(thing: "t", name: "beta")
        #expect(deleted.document == nil && deleted.deletedVersion == 7)
        #expect(try two.shadows.names(thing: "t") == ["", "alpha"])

        let heard = try two.shadows.messages(after: start, limit: 100)
        #expect(heard.messages == [ShadowMessage(topic: "$aws/things/t/shadow/update/delta", payload: Array("{}".utf8))])
        #expect(heard.position == (try one.shadows.feedPosition()))
        // Its own messages are not announced to the process that published them.
        #expect(try one.shadows.messages(after: start, limit: 100).messages.isEmpty)

        try two.shadows.deleteAll(thing: "t")
        #expect(try one.shadows.names(thing: "t").isEmpty)
        #expect(try one.shadows.load(thing: "t", name: "beta").deletedVersion == 0)
    }

    @Test("a shadow written by another process since the writer read it refuses the whole batch", arguments: Backend.available)
    func shadowConflicts(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open(node: "a")
        let two = try shared.open(node: "b")
        defer { one.close(); two.close() }
        // Both read "t" at version 0 (none); two writes first.
        try two.shadows.apply([.save(thing: "t", name: "", document: [2], version: 1)], announcing: [],
                              expecting: [ShadowBase(thing: "t", name: "", version: 0)])
        let before = try one.shadows.feedPosition()
        #expect(throws: ShadowStoreConflict.self) {
            try one.shadows.apply([.save(thing: "u", name: "", document: [9], version: 1),
                                   .save(thing: "t", name: "", document: [1], version: 1)],
                                  announcing: [ShadowMessage(topic: "x", payload: [1])],
                                  expecting: [ShadowBase(thing: "u", name: "", version: 0), ShadowBase(thing: "t", name: "", version: 0)])
        }
        // Nothing of the refused batch was written, announced or numbered.
        #expect(try one.shadows.load(thing: "t", name: "").document == [2])
        #expect(try one.shadows.load(thing: "u", name: "").document == nil)
        #expect(try one.shadows.feedPosition() == before)
        // Read again, it goes in; a deleted shadow's version is its base.
        try one.shadows.apply([.save(thing: "t", name: "", document: [3], version: 2)], announcing: [],
                              expecting: [ShadowBase(thing: "t", name: "", version: 1)])
        try two.shadows.apply([.delete(thing: "t", name: "", version: 2)], announcing: [],
                              expecting: [ShadowBase(thing: "t", name: "", version: 2)])
        try one.shadows.apply([.save(thing: "t", name: "", document: [4], version: 3)], announcing: [],
                              expecting: [ShadowBase(thing: "t", name: "", version: 2)])
        #expect(try two.shadows.load(thing: "t", name: "").document == [4])
    }

    @Test("the broker's store is remembered per data directory", arguments: Backend.available)
    func brokerMarker(_ backend: Backend) throws {
        let shared = try SharedDatabase(backend)
        let one = try shared.open()
        #expect(!one.brokerStoreCreated("/var/lib/drover-a"))
        try one.markBrokerStoreCreated("/var/lib/drover-a")
        try one.markBrokerStoreCreated("/var/lib/drover-a")
        one.close()
        let two = try shared.open(node: "b")
        defer { two.close() }
        #expect(two.brokerStoreCreated("/var/lib/drover-a"))
        #expect(!two.brokerStoreCreated("/var/lib/drover-b"))
    }
}
