@testable import DroverApp
import DroverRegistry
import NIOConcurrencyHelpers
import Testing

/// The revocation watcher visits every connection of the node for each update it is given, so
/// it must be given only the updates that take something away.
@Suite("What a registry update revokes")
struct RevocationsTests {
    let store = InMemoryRegistryStore()
    let registry: Registry
    let updates = NIOLockedValueBox<[RegistryUpdate]>([])
    let caller = Caller(principal: "test", region: "us-east-1")
    static let certificate = String(repeating: "ab", count: 32)
    static let ca = String(repeating: "cd", count: 32)

    init() throws {
        registry = try Registry(store: store)
        registry.onChange { [updates] update in updates.withLockedValue { $0.append(update) } }
    }

    /// What the updates made by `body` revoke, together.
    func revoked(_ body: () async throws -> Void) async throws -> RegistryAccessControl.Revocations {
        updates.withLockedValue { $0 = [] }
        try await body()
        var all = RegistryAccessControl.Revocations()
        for update in updates.withLockedValue({ $0 }) {
            let one = RegistryAccessControl.revocations(in: update)
            all.principals.formUnion(one.principals)
            all.cas.formUnion(one.cas)
            all.things.formUnion(one.things)
        }
        return all
    }

    static func facts(_ id: String, isCA: Bool) -> CertificateFacts {
        CertificateFacts(id: id, pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", subject: "CN=\(id.prefix(4))",
                         commonName: String(id.prefix(4)), notBefore: 0, notAfter: 4e9, isCA: isCA)
    }

    @Test("creating, registering, activating and attaching revoke nothing; deactivating, detaching and revoking do")
    func onlyWhatIsTakenAway() async throws {
        let caller = self.caller, registry = self.registry
        let id = Self.certificate, ca = Self.ca
        var revoked = try await revoked {
            _ = try await registry.registerCACertificate(caller, facts: Self.facts(ca, isCA: true), active: true, autoRegistration: false)
            _ = try await registry.registerCertificate(caller, "RegisterCertificate", facts: Self.facts(id, isCA: false),
                                                       status: .inactive, caCertificateId: ca)
            _ = try await registry.createThing(caller, name: "t1", typeName: nil, attributes: [:])
            try await registry.updateCertificate(caller, id: id, status: .active)
            try await registry.attachThingPrincipal(caller, thing: "t1", principal: id)
        }
        #expect(revoked.isEmpty, "\(revoked)")

        revoked = try await self.revoked { try await registry.updateCertificate(caller, id: id, status: .inactive) }
        #expect(revoked == .init(principals: [id]))
        revoked = try await self.revoked { try await registry.updateCertificate(caller, id: id, status: .inactive) }
        #expect(revoked.isEmpty, "an INACTIVE certificate made INACTIVE again takes nothing away")
        try await registry.updateCertificate(caller, id: id, status: .active)

        revoked = try await self.revoked { try await registry.detachThingPrincipal(caller, thing: "t1", principal: id) }
        #expect(revoked == .init(things: ["t1"]))

        revoked = try await self.revoked { try await registry.updateCACertificate(caller, id: ca, status: "INACTIVE", autoRegistration: nil) }
        #expect(revoked == .init(cas: [ca]))

        let key = try await registry.createAccessKey(caller, name: "k")
        revoked = try await self.revoked { try await registry.revokeAccessKey(caller, id: key.id) }
        #expect(revoked == .init(principals: [RegistryAccessControl.accessKeyPrefix + key.id]))
    }

    @Test("a certificate's temporary keys are indexed, and its revocation reaches them (not other certificates' keys)")
    func temporaryKeysOfACertificate() async throws {
        let caller = self.caller, registry = self.registry
        let one = Self.certificate, other = String(repeating: "ef", count: 32)
        for id in [one, other] {
            _ = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: Self.facts(id, isCA: false),
                                                       status: .active, caCertificateId: nil)
        }
        let role = "arn:aws:iam::\(registry.configuration.account):role/read-only"
        for alias in ["a1", "a2"] { _ = try await registry.createRoleAlias(caller, name: alias, roleArn: role, duration: nil, tags: [:]) }
        let first = try await registry.issueCredentials(certificateId: one, alias: "a1", thingName: nil).key.id
        let second = try await registry.issueCredentials(certificateId: one, alias: "a2", thingName: nil).key.id
        let others = try await registry.issueCredentials(certificateId: other, alias: "a1", thingName: nil).key.id
        // A new key for the same pair replaces the old one, in the index too.
        let replaced = try await registry.issueCredentials(certificateId: one, alias: "a2", thingName: nil).key.id
        #expect(registry.snapshot.temporaryKeysOfCertificate[one] == [first, replaced])
        #expect(registry.snapshot.temporaryKeysOfCertificate[other] == [others])
        #expect(!registry.snapshot.accessKeys.keys.contains(second))
        #expect(registry.snapshot.checkIndexes() == nil)

        updates.withLockedValue { $0 = [] }
        try await registry.updateCertificate(caller, id: one, status: .revoked)
        let touched = updates.withLockedValue { $0 }.compactMap(RegistryAccessControl.principals(touchedBy:)).reduce(into: Set()) { $0.formUnion($1) }
        let prefix = RegistryAccessControl.accessKeyPrefix
        #expect(touched == [one, prefix + first, prefix + replaced])

        // Reloaded from the records, the index is the same.
        let reloaded = try Registry(store: store)
        #expect(reloaded.snapshot.temporaryKeysOfCertificate == registry.snapshot.temporaryKeysOfCertificate)
    }
}
