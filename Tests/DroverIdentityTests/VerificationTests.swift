import Foundation
import Testing
import X509

@testable import DroverIdentity

@Suite("Client certificate verification")
struct VerificationTests {
    let now = wholeSecondsNow()

    func issue(by ca: CertificateAuthority, validityDays: Int = 365) throws -> Certificate {
        try ca.issueDeviceCertificate(
            publicKey: DeviceKeyPair.generate(.ecdsaP256).publicKey,
            subject: CertificateSubject(commonName: "device-1"),
            validityDays: validityDays,
            now: self.now
        )
    }

    @Test("A device certificate verifies against its CA, leaf first and root last")
    func validChain() async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let other = try CertificateAuthority.generate(commonName: "Other CA", now: now)
        let certificate = try issue(by: ca)
        let chain = try await verifyClientCertificate(
            certificate,
            roots: [other.certificate, ca.certificate],
            now: now
        ).get()
        #expect(chain == [certificate, ca.certificate])
    }

    @Test("A certificate from a CA that is not registered is refused as an untrusted issuer")
    func untrustedIssuer() async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let other = try CertificateAuthority.generate(commonName: "Other CA", now: now)
        let result = await verifyClientCertificate(try issue(by: other), roots: [ca.certificate], now: now)
        guard case .failure(let failure) = result else {
            Issue.record("expected a refusal, got \(result)")
            return
        }
        #expect(failure.code == .untrustedIssuer)
        #expect(failure.reason.contains("CN=Other CA,O=Drover"))
    }

    @Test("A certificate from an impostor CA with the registered CA's name is refused")
    func impostorIssuer() async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let impostor = try CertificateAuthority.generate(now: now)
        #expect(impostor.certificate.subject == ca.certificate.subject)
        let result = await verifyClientCertificate(try issue(by: impostor), roots: [ca.certificate], now: now)
        guard case .failure(let failure) = result else {
            Issue.record("expected a refusal, got \(result)")
            return
        }
        #expect(failure.code == .noValidChain)
    }

    @Test("A certificate is refused after it expires and before it starts", arguments: [31.0, -1.0])
    func outsideValidity(daysFromIssue: Double) async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let certificate = try issue(by: ca, validityDays: 30)
        let result = await verifyClientCertificate(
            certificate,
            roots: [ca.certificate],
            now: now + daysFromIssue * 86_400
        )
        guard case .failure(let failure) = result else {
            Issue.record("expected a refusal, got \(result)")
            return
        }
        #expect(failure.code == .policyViolation)
    }

    @Test("A certificate is accepted on its last day")
    func lastDay() async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let certificate = try issue(by: ca, validityDays: 30)
        let result = await verifyClientCertificate(certificate, roots: [ca.certificate], now: now + 29.9 * 86_400)
        #expect(try result.get().count == 2)
    }

    @Test("A CA certificate presented by itself verifies only when it is a registered root")
    func rootAsLeaf() async throws {
        let ca = try CertificateAuthority.generate(now: now)
        let other = try CertificateAuthority.generate(commonName: "Other CA", now: now)
        #expect(try await verifyClientCertificate(ca.certificate, roots: [ca.certificate], now: now).get().count == 1)
        let result = await verifyClientCertificate(other.certificate, roots: [ca.certificate], now: now)
        #expect(throws: CertificateVerificationFailure.self) { try result.get() }
    }

    @Test("isSigned tells the certificates a CA signed from those it did not")
    func signedBy() throws {
        let ca = try CertificateAuthority.generate(now: now)
        let impostor = try CertificateAuthority.generate(now: now)
        let certificate = try issue(by: ca)
        #expect(isSigned(certificate, by: ca.certificate))
        #expect(!isSigned(certificate, by: impostor.certificate))
        #expect(!isSigned(ca.certificate, by: certificate))
        #expect(CertificateInfo(certificate: ca.certificate).isSelfSigned)
        #expect(!CertificateInfo(certificate: certificate).isSelfSigned)
    }
}
