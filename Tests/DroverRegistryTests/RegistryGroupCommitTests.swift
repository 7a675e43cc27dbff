@testable import DroverRegistry
import Foundation
import NIOConcurrencyHelpers
import Testing

/// Group commit: the commands that wait while a transaction is written go into the next one
/// together, each answered for itself.
@Suite("Registry group commit")
struct RegistryGroupCommitTests {
    let caller = Caller(principal: "TESTKEY", region: "us-east-1")

    /// An in-memory store whose writes take 5 ms (as an fsync does), counting them; it can be
    /// told to fail the next write.
    final class SlowStore: RegistryStore {
        let inner = InMemoryRegistryStore()
        let writes = NIOLockedValueBox(0)
        let failNext = NIOLockedValueBox(false)
        struct Broken: Error {}

        func loadAll() throws -> [String: [String: [UInt8]]] { try inner.loadAll() }
        func apply(_ changes: [RegistryRecordChange], audit: AuditEntry?) throws { try inner.apply(changes, audit: audit) }
        func write(after sequence: Int64,
                   _ body: ([RegistryRecordChange]) throws -> ([RegistryRecordChange], [AuditEntry])) throws -> Int64 {
            writes.withLockedValue { $0 += 1 }
            Thread.sleep(forTimeInterval: 0.005)
            if failNext.withLockedValue({ let fail = $0; $0 = false; return fail }) {
                _ = try body([])
                throw Broken()
            }
            return try inner.write(after: sequence, body)
        }
        func changes(after sequence: Int64, limit: Int) throws -> (changes: [RegistryRecordChange], position: Int64)? {
            try inner.changes(after: sequence, limit: limit)
        }
        func feedPosition() throws -> Int64 { try inner.feedPosition() }
        func keys(kind: String, prefix: String, after: String?, limit: Int) throws -> [String] {
            try inner.keys(kind: kind, prefix: prefix, after: after, limit: limit)
        }
        func keys(kind: String, prefix: String, before: String?, limit: Int) throws -> [String] {
            try inner.keys(kind: kind, prefix: prefix, before: before, limit: limit)
        }
        func record(kind: String, key: String) throws -> [UInt8]? { try inner.record(kind: kind, key: key) }
        func appendAudit(_ entry: AuditEntry) throws { try inner.appendAudit(entry) }
        func queryAudit(_ query: AuditQuery) throws -> [AuditEntry] { try inner.queryAudit(query) }
    }

    @Test("200 calls at once, each name twice: 100 created, 100 refused as existing, in far fewer transactions; each audited; a reload agrees")
    func concurrentCreates() async throws {
        let store = SlowStore()
        let registry = try Registry(store: store)
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for n in 0..<200 {
                group.addTask {
                    do {
                        _ = try await registry.createThing(caller, name: "thing-\(n % 100)", typeName: nil, attributes: ["n": "\(n)"])
                        return "created"
                    } catch let error as RegistryError {
                        return error.kind.awsName
                    }
                }
            }
            var all: [String] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.filter { $0 == "created" }.count == 100)
        #expect(outcomes.filter { $0 == "ResourceAlreadyExistsException" }.count == 100)
        #expect(registry.snapshot.things.count == 100)
        let writes = store.writes.withLockedValue { $0 }
        #expect(writes < 100, "\(writes) transactions for 200 commands")
        let audit = try await registry.auditLog(AuditQuery(limit: 1000))
        #expect(audit.count == 200)
        #expect(audit.filter { $0.outcome == "success" }.count == 100)
        #expect(try Registry(store: store).snapshot.things.count == 100)
    }

    @Test("a failed transaction fails every command in it and changes nothing; the next ones go through")
    func failedTransaction() async throws {
        let store = SlowStore()
        let registry = try Registry(store: store)
        store.failNext.withLockedValue { $0 = true }
        await #expect(throws: RegistryError.self) {
            _ = try await registry.createThing(caller, name: "lost", typeName: nil, attributes: [:])
        }
        #expect(registry.snapshot.things["lost"] == nil)
        #expect(try store.loadAll()["thing"]?["lost"] == nil)
        _ = try await registry.createThing(caller, name: "kept", typeName: nil, attributes: [:])
        #expect(registry.snapshot.things["kept"] != nil)
        #expect(try store.loadAll()["thing"]?["kept"] != nil)
    }
}
