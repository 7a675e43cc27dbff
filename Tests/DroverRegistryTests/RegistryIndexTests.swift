import DroverPolicy
@testable import DroverRegistry
import Foundation
import Testing

/// The reverse indexes (certificate → things, thing → groups, target → policies, type →
/// things, group → children) against a rebuild from the records, after random work; the
/// upgrade of the older set-per-record layout; and listings read from the store's index.
@Suite("Registry indexes")
struct RegistryIndexTests {
    let caller = Caller(principal: "TESTKEY", region: "us-east-1")
    let allow = #"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#

    func certificateId(_ n: Int) -> String {
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 64 - hex.count) + hex
    }

    func facts(_ n: Int) -> CertificateFacts {
        CertificateFacts(id: certificateId(n), pem: "pem", subject: "CN=d\(n)", commonName: "d\(n)",
                         notBefore: 0, notAfter: 4_000_000_000, isCA: false)
    }

    @Test("a link set holds one name inline and several in a set, and behaves as a set through every change")
    func linkSetAgainstSet() throws {
        var generator = Generator(state: 7)
        var links = LinkSet(), model = Set<String>()
        for _ in 0..<5_000 {
            let name = "n\(Int.random(in: 0..<4, using: &generator))"
            if Bool.random(using: &generator) {
                #expect(links.insert(name).inserted == model.insert(name).inserted)
            } else {
                #expect(links.remove(name) == model.remove(name))
            }
            #expect(links.count == model.count && links.isEmpty == model.isEmpty)
            #expect(Set(links) == model && links.asSet == model)
            #expect(links == LinkSet(model) && links.hashValue == LinkSet(model).hashValue)
            #expect(links.isSubset(of: LinkSet(model.union(["x"]))) && (model.isEmpty || !links.isSubset(of: [])))
            #expect(model.allSatisfy(links.contains) && !links.contains("x"))
        }
        let encoder = JSONEncoder()
        #expect(String(decoding: try encoder.encode(LinkSet(["b", "c", "a"])), as: UTF8.self) == #"["a","b","c"]"#)
        #expect(String(decoding: try encoder.encode(LinkSet()), as: UTF8.self) == "[]")
    }

    /// A deterministic generator, so that a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("after 1500 random changes every index equals a rebuild, and a reload answers the same", arguments: [1, 2, 3])
    func randomWork(seed: UInt64) async throws {
        var random = Generator(state: seed)
        let store = InMemoryRegistryStore()
        let registry = try Registry(store: store)
        for type in ["t0", "t1"] { _ = try await registry.createThingType(caller, name: type, description: nil, searchableAttributes: []) }
        _ = try await registry.createThingGroup(caller, name: "g0", parent: nil, description: nil, attributes: [:])
        for g in 1..<6 {
            _ = try await registry.createThingGroup(caller, name: "g\(g)", parent: "g\(Int.random(in: 0..<g, using: &random))",
                                                    description: nil, attributes: [:])
        }
        for p in 0..<4 { _ = try await registry.createPolicy(caller, name: "p\(p)", document: allow) }
        for c in 0..<12 { _ = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: facts(c), status: .active, caCertificateId: nil) }
        for _ in 0..<1500 {
            let thing = "thing\(Int.random(in: 0..<20, using: &random))"
            let group = "g\(Int.random(in: 0..<6, using: &random))"
            let cert = certificateId(Int.random(in: 0..<12, using: &random))
            let policy = "p\(Int.random(in: 0..<4, using: &random))"
            let target = Bool.random(using: &random) ? "arn:aws:iot:us-east-1:123456789012:cert/\(cert)"
                : "arn:aws:iot:us-east-1:123456789012:thinggroup/\(group)"
            // Refusals (a missing thing, a thing with certificates, a full group) are part of the work.
            switch Int.random(in: 0..<9, using: &random) {
            case 0: _ = try? await registry.createThing(caller, name: thing, typeName: Bool.random(using: &random) ? "t0" : nil, attributes: [:])
            case 1: try? await registry.updateThing(caller, name: thing, typeName: "t1", removeThingType: false, attributes: nil, merge: true, expectedVersion: nil)
            case 2: try? await registry.updateThing(caller, name: thing, typeName: nil, removeThingType: true, attributes: ["a": "1"], merge: true, expectedVersion: nil)
            case 3: try? await registry.deleteThing(caller, name: thing, expectedVersion: nil)
            case 4: try? await registry.updateThingGroupsForThing(caller, "AddThingToThingGroup", thing: thing, add: [group], remove: [])
            case 5: try? await registry.updateThingGroupsForThing(caller, "RemoveThingFromThingGroup", thing: thing, add: [], remove: [group])
            case 6: try? await registry.attachThingPrincipal(caller, thing: thing, principal: cert)
            case 7: try? await registry.detachThingPrincipal(caller, thing: thing, principal: cert)
            default:
                if Bool.random(using: &random) { try? await registry.attachPolicy(caller, name: policy, target: target) }
                else { try? await registry.detachPolicy(caller, name: policy, target: target) }
            }
        }
        // A leaf group goes, with its members and its policies.
        let leaf = registry.snapshot.thingGroups.keys.first { registry.snapshot.childGroups[$0] == nil }
        if let leaf { try await registry.deleteThingGroup(caller, name: leaf, expectedVersion: nil) }
        let state = registry.snapshot
        #expect(state.checkIndexes() == nil)
        #expect(state.things.count > 0 && state.groupMembers.count > 0 && state.policyTargets.count > 0)
        let reloaded = try Registry(store: store).snapshot
        #expect(reloaded.checkIndexes() == nil)
        #expect(reloaded.certificateThings == state.certificateThings)
        #expect(reloaded.directGroups == state.directGroups)
        #expect(reloaded.targetPolicies == state.targetPolicies)
        #expect(reloaded.typeMembers == state.typeMembers)
        for c in 0..<12 {
            let id = certificateId(c)
            let (context, policies) = state.policyContext(certificateId: id, clientId: nil, region: "us-east-1", account: "1")
            let (reloadedContext, reloadedPolicies) = reloaded.policyContext(certificateId: id, clientId: nil, region: "us-east-1", account: "1")
            #expect(context.thingName == reloadedContext.thingName)
            #expect(policies.map(\.name) == reloadedPolicies.map(\.name))
            // The scan the index replaced gives the same policies.
            var targets: Set<String> = ["cert/\(id)"]
            if let thing = context.thingName { for group in state.groups(ofThing: thing) { targets.insert("thinggroup/\(group)") } }
            let scanned = state.policyTargets.filter { !$0.value.isDisjoint(with: targets) }.map(\.key).sorted()
            #expect(policies.map(\.name) == scanned)
        }
    }

    @Test("records of the older layout (all members or targets in one record) are rewritten one link per record")
    func upgradesLegacyLinks() async throws {
        let store = InMemoryRegistryStore()
        func json(_ value: some Encodable) -> [UInt8] { Array(try! JSONEncoder().encode(value)) }
        let group = ThingGroup(name: "g", id: "1", description: nil, attributes: [:], parent: nil, version: 1, createdAt: 0)
        try store.apply([
            RegistryRecordChange(kind: Registry.Kind.thing, key: "a", value: json(Thing(name: "a", id: "1", typeName: nil, attributes: [:], version: 1, createdAt: 0))),
            RegistryRecordChange(kind: Registry.Kind.thing, key: "b", value: json(Thing(name: "b", id: "2", typeName: nil, attributes: [:], version: 1, createdAt: 0))),
            RegistryRecordChange(kind: Registry.Kind.thingGroup, key: "g", value: json(group)),
            RegistryRecordChange(kind: "group-members", key: "g", value: json(Set(["a", "b"]))),
            RegistryRecordChange(kind: "policy-targets", key: "p", value: json(Set(["thinggroup/g", "cert/\(certificateId(1))"]))),
        ], audit: nil)
        let registry = try Registry(store: store)
        #expect(try registry.thingsInGroup("g", recursive: false) == ["a", "b"])
        #expect(registry.snapshot.targetPolicies["thinggroup/g"] == ["p"])
        let records = try store.loadAll()
        #expect(records["group-members"]?.isEmpty != false && records["policy-targets"]?.isEmpty != false)
        #expect(Set(records[Registry.Kind.groupMember]?.keys.map { $0 } ?? []) == ["g/a", "g/b"])
        #expect(Set(records[Registry.Kind.policyTarget]?.keys.map { $0 } ?? []) == ["p/thinggroup/g", "p/cert/\(certificateId(1))"])
        #expect(try store.queryAudit(AuditQuery(operation: "UpgradeRecords")).count == 1)
        // Loaded again: nothing more to upgrade.
        _ = try Registry(store: store)
        #expect(try store.queryAudit(AuditQuery(operation: "UpgradeRecords")).count == 1)
    }

    @Test("ListThings pages come from the store's key index, with filters, across batches")
    func storedKeyPages() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        _ = try await registry.createThingType(caller, name: "rare", description: nil, searchableAttributes: [])
        for i in 0..<700 {
            _ = try await registry.createThing(caller, name: String(format: "d%04d", i), typeName: i % 300 == 7 ? "rare" : nil,
                                               attributes: ["n": "\(i % 2)"])
        }
        var names: [String] = []
        var token: String?
        repeat {
            let page = try registry.listThings(.init(attributeName: "n", attributeValue: "1"), maxResults: 250, nextToken: token)
            names += page.items.map(\.name)
            token = page.nextToken
        } while token != nil
        #expect(names == (0..<700).filter { $0 % 2 == 1 }.map { String(format: "d%04d", $0) })
        // Matches far apart: the scan goes on past batches of keys that hold none.
        let rare = try registry.listThings(.init(typeName: "rare"), maxResults: 2, nextToken: nil)
        #expect(rare.items.map(\.name) == ["d0007", "d0307"] && rare.nextToken != nil)
        let rest = try registry.listThings(.init(typeName: "rare"), maxResults: 2, nextToken: rare.nextToken)
        #expect(rest.items.map(\.name) == ["d0607"] && rest.nextToken == nil)
        #expect(throws: RegistryError.self) { try registry.listThings(.init(), maxResults: 10, nextToken: "not base64!") }
    }

    /// Every certificate, in the order ListCertificates gives, read a page of `size` at a time.
    func listAll(_ registry: Registry, ca: String? = nil, ascending: Bool, size: Int) throws -> [String] {
        var ids: [String] = []
        var token: String?
        repeat {
            let page = try registry.listCertificates(caCertificateId: ca, pageSize: size, marker: token, ascending: ascending)
            #expect(page.items.count <= size)
            ids += page.items.map(\.id)
            token = page.nextToken
        } while token != nil
        return ids
    }

    @Test("ListCertificates pages by creation date (id on ties) from the store's index, both ways, by CA; deletes leave it; an older directory gets the index at its first start")
    func certificatesInCreationOrder() async throws {
        let store = InMemoryRegistryStore()
        let registry = try Registry(store: store)
        let caFacts = CertificateFacts(id: String(repeating: "c", count: 64), pem: "pem", subject: "CN=ca", commonName: "ca",
                                       notBefore: 0, notAfter: 4_000_000_000, isCA: true)
        let ca = try await registry.registerCACertificate(caller, facts: caFacts, active: true, autoRegistration: false)
        // Ids in an order unlike their creation's, some under the CA.
        for n in [7, 3, 11, 1, 9, 5, 0, 2, 8, 4, 10, 6] {
            _ = try await registry.registerCertificate(caller, n % 3 == 0 ? "RegisterCertificate" : "RegisterCertificateWithoutCA",
                                                       facts: facts(n), status: .inactive, caCertificateId: n % 3 == 0 ? ca.id : nil)
        }
        for n in [11, 0] { try await registry.deleteCertificate(caller, id: certificateId(n), force: false) }
        func expected(_ state: RegistryState, ca: String? = nil) -> [String] {
            state.certificates.values.filter { ca == nil || $0.caCertificateId == ca }
                .sorted { Registry.orderKey($0) < Registry.orderKey($1) }.map(\.id)
        }
        let all = expected(registry.snapshot)
        #expect(all.count == 10 && Set(all) == Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(certificateId)))
        #expect(all.first == certificateId(7) && all.last == certificateId(6))
        let byCA = expected(registry.snapshot, ca: ca.id)
        #expect(byCA == [3, 9, 6].map(certificateId))
        for size in [1, 3, 10, 250] {
            #expect(try listAll(registry, ascending: true, size: size) == all)
            #expect(try listAll(registry, ascending: false, size: size) == all.reversed())
            #expect(try listAll(registry, ca: ca.id, ascending: true, size: size) == byCA)
            #expect(try listAll(registry, ca: ca.id, ascending: false, size: size) == byCA.reversed())
        }
        // The index holds what the certificates are, no more: the deleted ones left it.
        let records = try store.loadAll()
        #expect(records[Registry.Kind.certificateByDate]?.count == 10)
        #expect(records[Registry.Kind.certificateByCA]?.count == 3)
        #expect(try listAll(registry, ca: String(repeating: "d", count: 64), ascending: true, size: 5) == [])
        #expect(throws: RegistryError.self) { try registry.listCertificates(caCertificateId: "c/", pageSize: 5, marker: nil, ascending: true) }
        #expect(throws: RegistryError.self) { try registry.listCertificates(caCertificateId: nil, pageSize: 0, marker: nil, ascending: true) }

        // A data directory from before the index: its first start writes it.
        let older = InMemoryRegistryStore()
        var changes: [RegistryRecordChange] = []
        for (kind, byKey) in records where kind != Registry.Kind.certificateByDate && kind != Registry.Kind.certificateByCA {
            for (key, value) in byKey { changes.append(.init(kind: kind, key: key, value: value)) }
        }
        try older.apply(changes, audit: nil)
        let upgraded = try Registry(store: older)
        #expect(try listAll(upgraded, ascending: false, size: 4) == all.reversed())
        #expect(try listAll(upgraded, ca: ca.id, ascending: true, size: 2) == byCA)
        #expect(try older.loadAll()[Registry.Kind.certificateByDate] == records[Registry.Kind.certificateByDate])
        #expect(try older.loadAll()[Registry.Kind.certificateByCA] == records[Registry.Kind.certificateByCA])
    }
}
