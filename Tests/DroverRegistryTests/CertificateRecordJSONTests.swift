import Foundation
import Testing

@testable import DroverRegistry

@Suite("A certificate's record, written by hand")
struct CertificateRecordJSONTests {
    /// A certificate record with random members, its strings from `string`.
    static func randomCertificate(string: () -> String) -> CertificateRecord {
        let times: [Double] = [0, 1, 1_764_777_600, 1_764_777_600.123456, Double.random(in: 0...2e9), 1e300, 5e-324]
        var record = CertificateRecord(
            id: String((0..<64).map { _ in "0123456789abcdef".randomElement()! }),
            pem: "-----BEGIN CERTIFICATE-----\n" + string() + "\n-----END CERTIFICATE-----\n",
            status: ["ACTIVE", "INACTIVE", "REVOKED", "PENDING_ACTIVATION"].randomElement()!,
            caCertificateId: Bool.random() ? string() : nil, subject: string(),
            commonName: Bool.random() ? string() : nil, notBefore: times.randomElement()!,
            notAfter: times.randomElement()!, createdAt: times.randomElement()!,
            mode: Bool.random() ? "DEFAULT" : "SNI_ONLY")
        record.modifiedAt = times.randomElement()!
        return record
    }

    @Test("JSONDecoder reads back the same certificate, for 5 000 certificates with hostile strings")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let record = Self.randomCertificate { ThingRecordJSONTests.randomString(&generator, maxLength: 40) }
            let bytes = record.recordJSON
            let decoded = try JSONDecoder().decode(CertificateRecord.self, from: Data(bytes))
            var withoutPEM = record
            withoutPEM.pem = ""
            #expect(decoded == withoutPEM, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test("byte for byte what JSONEncoder with sorted keys wrote, for strings without a slash (the PEM's newlines included)")
    func sameBytesAsTheEncoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let plain: [Character] = ["a", "b", "Z", "0", "9", "+", "=", "-", ":", ",", "\"", "\\", "é", " "]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let record = Self.randomCertificate {
                String((0..<Int.random(in: 1...30, using: &generator)).map { _ in plain.randomElement(using: &generator)! })
            }
            // The encoder's bytes without the PEM's member, which the record leaves to its own.
            let encoded = String(decoding: try encoder.encode(record), as: UTF8.self)
            let expected = encoded.replacingOccurrences(of: #","pem":"(?:[^"\\]|\\.)*""#, with: "", options: .regularExpression)
            #expect(expected.count < encoded.count)
            #expect(record.recordJSON == Array(expected.utf8), "\(expected)")
        }
    }

    @Test("the registry stores certificates in that form, the PEM in a record of its own; memory holds no PEM; a reload agrees")
    func registryUsesIt() async throws {
        let store = InMemoryRegistryStore()
        let registry = try Registry(store: store)
        let caller = Caller(principal: "test", region: "us-east-1")
        let id = String(repeating: "ab", count: 32)
        let facts = CertificateFacts(id: id, pem: "-----BEGIN CERTIFICATE-----\nMIIB/+x=\n-----END CERTIFICATE-----\n",
                                     subject: "CN=device/1,O=Example \"Inc\"", commonName: "device/1",
                                     notBefore: 1_764_777_600, notAfter: 1_796_313_600.5, isCA: false)
        _ = try await registry.registerCertificate(caller, "RegisterCertificateWithoutCA", facts: facts, status: .active,
                                                   caCertificateId: nil)
        let record = try #require(try store.loadAll()[Registry.Kind.certificate]?[id])
        #expect(record == (try #require(registry.snapshot.certificates[id])).recordJSON)
        #expect(!String(decoding: record, as: UTF8.self).contains("BEGIN CERTIFICATE"))
        #expect(registry.snapshot.certificates[id]?.pem == "")
        #expect(try registry.describeCertificate(id).pem == facts.pem)
        let reloaded = try Registry(store: store)
        #expect(reloaded.snapshot.certificates[id] == registry.snapshot.certificates[id])
        #expect(reloaded.snapshot.certificates[id]?.subject == "CN=device/1,O=Example \"Inc\"")
        #expect(try reloaded.describeCertificate(id).pem == facts.pem)

        try await registry.updateCertificate(caller, id: id, status: .inactive)
        #expect(try registry.describeCertificate(id).pem == facts.pem)
        #expect(try registry.describeCertificate(id).status == "INACTIVE")
        try await registry.deleteCertificate(caller, id: id, force: false)
        #expect(try store.record(kind: Registry.Kind.certificate, key: id) == nil)
        #expect(try store.record(kind: Registry.Kind.certificatePEM, key: id) == nil)
        #expect(throws: RegistryError.self) { try registry.describeCertificate(id) }
    }

    @Test("a certificate record of the earlier layout, its PEM inside, is rewritten at start-up, once")
    func upgradesTheEarlierLayout() async throws {
        let store = InMemoryRegistryStore()
        let id = String(repeating: "cd", count: 32)
        var old = CertificateRecord(
            id: id, pem: "-----BEGIN CERTIFICATE-----\nMIIB/old=\n-----END CERTIFICATE-----\n", status: "ACTIVE",
            caCertificateId: nil, subject: "CN=old", commonName: "old", notBefore: 1, notAfter: 2, createdAt: 1, mode: "SNI_ONLY")
        old.modifiedAt = 1.5
        // As the registry wrote it before: JSONEncoder, sorted keys, the PEM a member.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try store.apply([RegistryRecordChange(kind: Registry.Kind.certificate, key: id, value: Array(try encoder.encode(old)))], audit: nil)

        let registry = try Registry(store: store)
        #expect(registry.snapshot.certificates[id]?.pem == "")
        #expect(try registry.describeCertificate(id) == old)
        let record = try #require(try store.record(kind: Registry.Kind.certificate, key: id))
        #expect(!String(decoding: record, as: UTF8.self).contains("pem"))
        #expect(try store.record(kind: Registry.Kind.certificatePEM, key: id) != nil)
        let upgrades = try store.queryAudit(AuditQuery()).filter { $0.operation == "UpgradeRecords" }
        #expect(upgrades.count == 1)

        let again = try Registry(store: store)
        #expect(try again.describeCertificate(id) == old)
        #expect(try store.queryAudit(AuditQuery()).filter { $0.operation == "UpgradeRecords" }.count == 1)
    }
}
