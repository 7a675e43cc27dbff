import DroverPolicy
@testable import DroverRegistry
import Testing

@Suite("Registry")
struct RegistryTests {
    let caller = Caller(principal: "TESTKEY", region: "us-east-1")

    func facts(_ n: Int) -> CertificateFacts {
        CertificateFacts(id: String(repeating: String(n % 10), count: 64), pem: "pem\(n)", subject: "CN=d\(n)", commonName: "d\(n)",
                         notBefore: 0, notAfter: 4_000_000_000, isCA: false)
    }

    @Test("a change and its audit entry are stored together; a refusal is audited and changes nothing")
    func auditWithChanges() async throws {
        let store = InMemoryRegistryStore()
        let registry = try Registry(store: store)
        _ = try await registry.createThing(caller, name: "t1", typeName: nil, attributes: ["a": "1"])
        await #expect(throws: RegistryError.self) {
            try await registry.updateThing(caller, name: "t1", typeName: nil, removeThingType: false, attributes: ["a": "2"],
                                           merge: true, expectedVersion: 7)
        }
        #expect(try registry.describeThing("t1").attributes == ["a": "1"])
        let log = try store.queryAudit(AuditQuery(resource: "t1"))
        #expect(log.map(\.outcome) == ["VersionConflictException", "success"])
        #expect(log.allSatisfy { $0.principal == "TESTKEY" })
        // A registry rebuilt on the same store has the thing.
        #expect(try Registry(store: store).describeThing("t1").version == 1)
    }

    @Test("listing pages are stable and the token is opaque")
    func paging() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        for i in 0..<5 { _ = try await registry.createThing(caller, name: "t\(i)", typeName: nil, attributes: [:]) }
        let first = try registry.listThings(.init(), maxResults: 2, nextToken: nil)
        let second = try registry.listThings(.init(), maxResults: 2, nextToken: first.nextToken)
        let third = try registry.listThings(.init(), maxResults: 2, nextToken: second.nextToken)
        #expect((first.items + second.items + third.items).map(\.name) == ["t0", "t1", "t2", "t3", "t4"])
        #expect(third.nextToken == nil)
        #expect(throws: RegistryError.self) { try registry.listThings(.init(), maxResults: 0, nextToken: nil) }
    }

    @Test("policies: a malformed document is refused with its position; at most 5 versions")
    func policyVersions() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        let document = #"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#
        do {
            _ = try await registry.createPolicy(caller, name: "bad", document: #"{"Version": "2012-10-17",}"#)
            Issue.record("a malformed policy was accepted")
        } catch let error as RegistryError {
            #expect(error.kind == .malformedPolicy && error.message.contains("line 1, column"))
        }
        _ = try await registry.createPolicy(caller, name: "p", document: document)
        for _ in 0..<4 { _ = try await registry.createPolicyVersion(caller, name: "p", document: document, setAsDefault: false) }
        do {
            _ = try await registry.createPolicyVersion(caller, name: "p", document: document, setAsDefault: false)
            Issue.record("a sixth version was accepted")
        } catch let error as RegistryError {
            #expect(error.kind == .versionsLimitExceeded)
        }
    }

    @Test("the thing of a connection: the attached thing named like the client id, else the only one")
    func connectionThing() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        let certificate = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: facts(1),
                                                                 status: .active, caCertificateId: nil)
        for name in ["a", "b"] {
            _ = try await registry.createThing(caller, name: name, typeName: nil, attributes: ["n": name])
        }
        try await registry.attachThingPrincipal(caller, thing: "a", principal: certificate.id)
        #expect(registry.snapshot.connectionThing(certificateId: certificate.id, clientId: "whatever")?.name == "a")
        try await registry.attachThingPrincipal(caller, thing: "b", principal: "arn:aws:iot:us-east-1:123456789012:cert/\(certificate.id)")
        #expect(registry.snapshot.connectionThing(certificateId: certificate.id, clientId: "b")?.name == "b")
        #expect(registry.snapshot.connectionThing(certificateId: certificate.id, clientId: "c") == nil)
        let (context, _) = registry.snapshot.policyContext(certificateId: certificate.id, clientId: "b", region: "eu-west-1", account: "1")
        #expect(context.thingName == "b" && context.thingAttributes == ["n": "b"] && context.isAttached)
    }

    @Test("certificates: delete refused while ACTIVE or attached; REVOKED is final")
    func certificateRules() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        let certificate = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: facts(2),
                                                                 status: .active, caCertificateId: nil)
        do {
            try await registry.deleteCertificate(caller, id: certificate.id, force: false)
            Issue.record("an ACTIVE certificate was deleted")
        } catch let error as RegistryError {
            #expect(error.kind == .certificateState)
        }
        try await registry.updateCertificate(caller, id: certificate.id, status: .revoked)
        await #expect(throws: RegistryError.self) { try await registry.updateCertificate(caller, id: certificate.id, status: .active) }
        try await registry.deleteCertificate(caller, id: certificate.id, force: false)
        #expect(registry.snapshot.certificates.isEmpty)
    }

    @Test("thing groups: inherited attributes, 7 levels at most, policies of ancestor groups apply")
    func groups() async throws {
        let registry = try Registry(store: InMemoryRegistryStore())
        var parent: String?
        for level in 1...7 {
            _ = try await registry.createThingGroup(caller, name: "g\(level)", parent: parent, description: nil,
                                                    attributes: ["level": "\(level)", "root\(level == 1 ? "" : "x")": "y"])
            parent = "g\(level)"
        }
        await #expect(throws: RegistryError.self) {
            try await registry.createThingGroup(self.caller, name: "g8", parent: "g7", description: nil, attributes: [:])
        }
        #expect(registry.snapshot.effectiveAttributes(ofGroup: "g3") == ["level": "3", "root": "y", "rootx": "y"])
        let certificate = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: facts(3),
                                                                 status: .active, caCertificateId: nil)
        _ = try await registry.createThing(caller, name: "t", typeName: nil, attributes: [:])
        try await registry.attachThingPrincipal(caller, thing: "t", principal: certificate.id)
        try await registry.updateThingGroupsForThing(caller, "AddThingToThingGroup", thing: "t", add: ["g5"], remove: [])
        _ = try await registry.createPolicy(caller, name: "fleet", document: #"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#)
        try await registry.attachPolicy(caller, name: "fleet", target: "arn:aws:iot:us-east-1:123456789012:thinggroup/g2")
        let (_, policies) = registry.snapshot.policyContext(certificateId: certificate.id, clientId: "t", region: "us-east-1", account: "1")
        #expect(policies.map(\.name) == ["fleet"])
    }
}

