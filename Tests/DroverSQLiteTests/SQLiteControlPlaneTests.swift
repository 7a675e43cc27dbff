import DroverFleetConfig
import DroverRegistry
import DroverShadowService
@testable import DroverSQLite
import Foundation
import GRDB
import Logging
import Testing

/// `drover.sqlite`: the registry, fleet configuration and shadows in one file, a change row
/// for every record a command writes, in its transaction; the import of the older layout; and
/// a missing database noticed.
@Suite("SQLite control plane")
struct SQLiteControlPlaneTests {
    let logger = Logger(label: "test")

    func temporaryDirectory() -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("drover-cp-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.path
    }

    func audit(_ operation: String) -> AuditEntry {
        AuditEntry(time: Date().timeIntervalSince1970, principal: "k", operation: operation, resource: "r", outcome: "success")
    }

    func changeRows(_ database: SQLiteControlPlane) throws -> [(Int64, String, String, String)] {
        try database.database.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, feature, kind, key FROM change ORDER BY seq").map { ($0["seq"], $0["feature"], $0["kind"], $0["key"]) }
        }
    }

    @Test("durability fsync makes the writer fsync every commit (synchronous FULL), normal leaves it to the OS")
    func durabilityReachesTheWriter() throws {
        // GRDB's pool sets NORMAL on its writer while it turns WAL on; the configured level must win.
        for (durability, level) in [(SQLiteBrokerStore.Durability.fsync, 2), (.normal, 1)] {
            let directory = temporaryDirectory()
            let database = try SQLiteControlPlane(dataDir: directory, durability: durability, logger: logger)
            #expect(try SQLiteDatabase.synchronousLevel(of: database.database) == level)
            database.close()
            let reopened = try SQLiteControlPlane(dataDir: directory, durability: durability, logger: logger)
            #expect(try SQLiteDatabase.synchronousLevel(of: reopened.database) == level)
            reopened.close()
            let queue = try SQLiteDatabase.open(path: directory + "/queue.sqlite", label: "t", what: "test database",
                                                synchronous: level == 2 ? "FULL" : "NORMAL", migrator: DatabaseMigrator())
            #expect(try SQLiteDatabase.synchronousLevel(of: queue) == level)
        }
    }

    @Test("records, audit entries and change rows of every feature go in one file, numbered in commit order")
    func oneFile() throws {
        let directory = temporaryDirectory()
        let database = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        try database.registry.apply([RegistryRecordChange(kind: "thing", key: "a", value: Array("{}".utf8)),
                                     RegistryRecordChange(kind: "thing", key: "b", value: Array("{}".utf8))], audit: audit("CreateThing"))
        try database.fleetConfig.apply([ConfigRecordChange(kind: "template", key: "t", value: Array("{}".utf8))], audit: audit("CreateConfigTemplate"))
        try database.shadows.apply([.save(thing: "a", name: "", document: [1, 2], version: 1)])
        try database.registry.apply([RegistryRecordChange(kind: "thing", key: "a", value: nil)], audit: audit("DeleteThing"))
        database.close()

        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm") }
        #expect(files == ["drover.sqlite"])
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/drover.sqlite")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        let reopened = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        let rows = try changeRows(reopened)
        #expect(rows.map(\.1) == ["registry", "registry", "config", "shadow", "registry"])
        #expect(rows.map(\.3) == ["a", "b", "t", "a/", "a"])
        #expect(rows.map(\.0) == rows.map(\.0).sorted() && Set(rows.map(\.0)).count == rows.count)
        let after = try #require(try reopened.registry.changes(after: rows[1].0, limit: 10))
        #expect(after.changes.map(\.key) == ["a"] && after.changes[0].value == nil)
        #expect(after.position == rows.last?.0)
        #expect(try reopened.registry.feedPosition() == rows.last?.0)
        // The configuration's audit entry is in the registry's audit log.
        #expect(try reopened.registry.queryAudit(AuditQuery()).map(\.operation) == ["DeleteThing", "CreateConfigTemplate", "CreateThing"])
        #expect(try reopened.registry.loadAll()["thing"].map { Array($0.keys) } == ["b"])
        #expect(try reopened.shadows.load(thing: "a", name: "").document == [1, 2])
        reopened.close()
    }

    @Test("a write that fails leaves no record, no audit entry and no change row")
    func atomic() throws {
        let database = try SQLiteControlPlane()
        // The second record breaks the NOT NULL constraint of the kind: the whole write goes.
        try database.database.write { db in try db.execute(sql: "CREATE TRIGGER refuse BEFORE INSERT ON record WHEN NEW.key = 'bad' BEGIN SELECT RAISE(ABORT, 'refused'); END") }
        #expect(throws: (any Error).self) {
            try database.registry.apply([RegistryRecordChange(kind: "thing", key: "good", value: Array("{}".utf8)),
                                         RegistryRecordChange(kind: "thing", key: "bad", value: Array("{}".utf8))], audit: audit("CreateThing"))
        }
        #expect(try database.registry.loadAll().isEmpty)
        #expect(try database.registry.queryAudit(AuditQuery()).isEmpty)
        #expect(try changeRows(database).isEmpty)
    }

    @Test("keys come from the index in byte order, after a cursor, within a prefix")
    func keys() throws {
        let database = try SQLiteControlPlane()
        let names = ["g/b", "g/a", "h/a", "g0", "f/z", "g/c"]
        try database.registry.apply(names.map { RegistryRecordChange(kind: "group-member", key: $0, value: Array("{}".utf8)) }, audit: nil)
        #expect(try database.registry.keys(kind: "group-member", prefix: "g/", after: nil, limit: 10) == ["g/a", "g/b", "g/c"])
        #expect(try database.registry.keys(kind: "group-member", prefix: "g/", after: "g/a", limit: 1) == ["g/b"])
        #expect(try database.registry.keys(kind: "group-member", prefix: "", after: "g/c", limit: 10) == ["g0", "h/a"])
        #expect(try database.registry.keys(kind: "thing", prefix: "", after: nil, limit: 10) == [])
    }

    @Test("a missing drover.sqlite in a data directory that has the broker's file or the CA key is an error")
    func missing() throws {
        let directory = temporaryDirectory()
        let database = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        try database.markBrokerStoreCreated(dataDir: directory)
        #expect(database.brokerStoreCreated(dataDir: directory))
        #expect(!database.brokerStoreCreated(dataDir: directory + "/other"))
        database.close()
        FileManager.default.createFile(atPath: directory + "/broker.sqlite", contents: Data())
        try FileManager.default.removeItem(atPath: directory + "/drover.sqlite")
        #expect {
            _ = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        } throws: { error in
            "\(error)".contains("missing") && "\(error)".contains("broker.sqlite")
        }
    }

    @Test("the older layout is imported once, the old files kept aside and the markers removed")
    func importsLegacy() throws {
        let directory = temporaryDirectory()
        // The three files as the older code made them (its migrations, its rows).
        let registry = try DatabaseQueue(path: directory + "/registry.sqlite")
        try registry.write { db in
            try db.execute(sql: "CREATE TABLE record (kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, key))")
            try db.execute(sql: "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time DOUBLE NOT NULL, principal TEXT NOT NULL, operation TEXT NOT NULL, resource TEXT NOT NULL, outcome TEXT NOT NULL, message TEXT)")
            try db.execute(sql: "INSERT INTO record VALUES ('thing', 'old', x'7b7d')")
            try db.execute(sql: "INSERT INTO audit (time, principal, operation, resource, outcome) VALUES (1, 'k', 'CreateThing', 'old', 'success')")
        }
        try registry.close()
        let config = try DatabaseQueue(path: directory + "/config.sqlite")
        try config.write { db in
            try db.execute(sql: "CREATE TABLE record (kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (kind, key))")
            try db.execute(sql: "INSERT INTO record VALUES ('template', 'tpl', x'7b7d')")
        }
        try config.close()
        for name in ["registry", "config", "broker"] {
            FileManager.default.createFile(atPath: directory + "/\(name).sqlite.created", contents: Data())
        }
        FileManager.default.createFile(atPath: directory + "/broker.sqlite", contents: Data())

        let database = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        #expect(try database.registry.loadAll()["thing"]?["old"] == Array("{}".utf8))
        #expect(try database.registry.queryAudit(AuditQuery()).map(\.operation) == ["CreateThing"])
        #expect(try database.fleetConfig.loadAll()["template"]?["tpl"] != nil)
        #expect(database.brokerStoreCreated(dataDir: directory))
        database.close()
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: directory))
        #expect(files.isSuperset(of: ["drover.sqlite", "registry.sqlite.migrated", "config.sqlite.migrated", "broker.sqlite"]))
        #expect(files.filter { $0.hasSuffix(".created") }.isEmpty)
        #expect(!files.contains("registry.sqlite") && !files.contains("config.sqlite"))
        // Opened again: nothing is imported twice.
        let again = try SQLiteControlPlane(dataDir: directory, durability: .fsync, logger: logger)
        #expect(try again.registry.queryAudit(AuditQuery()).count == 1)
        again.close()
    }

    /// Waits for the work queued on the registry's writer queue (a catch-up) to finish.
    func settle(_ registry: Registry) async throws { _ = try await registry.auditLog(AuditQuery(limit: 1)) }

    @Test("two registries on one file: each takes in the other's changes, and a write decides on the current truth")
    func twoWriters() async throws {
        let directory = temporaryDirectory()
        let one = try SQLiteControlPlane(dataDir: directory, durability: .normal, logger: logger)
        let two = try SQLiteControlPlane(dataDir: directory + "/b", path: directory + "/drover.sqlite", durability: .normal, logger: logger)
        let a = try Registry(store: one.registry)
        let b = try Registry(store: two.registry)
        let heard = LockedList()
        b.onChange { update in heard.append(update.changes.map { "\($0.kind) \($0.key)" }) }
        let caller = Caller(principal: "k", region: "us-east-1")

        _ = try await a.createThing(caller, name: "made-on-a", typeName: nil, attributes: ["n": "1"])
        b.catchUp()
        try await settle(b)
        #expect(try b.describeThing("made-on-a").attributes == ["n": "1"])
        #expect(heard.items.contains("thing made-on-a"))

        // b has not caught up with this update, but its write sees it: the version check holds.
        try await a.updateThing(caller, name: "made-on-a", typeName: nil, removeThingType: false, attributes: ["n": "2"],
                                merge: true, expectedVersion: 1)
        await #expect(throws: RegistryError.self) {
            try await b.updateThing(caller, name: "made-on-a", typeName: nil, removeThingType: false, attributes: ["n": "3"],
                                    merge: true, expectedVersion: 1)
        }
        // The refused write still took in a's change.
        #expect(try b.describeThing("made-on-a").attributes == ["n": "2"])

        // The same name made on both at once: one is made, the other answers as AWS does.
        async let first: Bool = (try? await a.createThing(caller, name: "race", typeName: nil, attributes: ["from": "a"])) != nil
        async let second: Bool = (try? await b.createThing(caller, name: "race", typeName: nil, attributes: ["from": "b"])) != nil
        let made = await [first, second]
        #expect(made.filter { $0 }.count == 1)
        b.catchUp()
        a.catchUp()
        try await settle(a)
        try await settle(b)
        #expect(try a.describeThing("race") == b.describeThing("race"))
        #expect(a.snapshot.checkIndexes() == nil && b.snapshot.checkIndexes() == nil)
        one.close()
        two.close()
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ items: [String]) { lock.lock(); list += items; lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
