import Foundation
import Testing
import X509

@testable import DroverIdentity

@Suite("Certificate facts")
struct CertificateInfoTests {
    @Test("A certificate's facts are read back from its PEM")
    func facts() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueDeviceCertificate(
            publicKey: keys.publicKey,
            subject: CertificateSubject(commonName: "device-1", organization: "Acme", organizationalUnit: "Sensors"),
            validityDays: 30,
            now: now,
            serialNumber: Certificate.SerialNumber(bytes: [0x0A, 0xBC, 0xDE])
        )
        let info = try CertificateInfo(pem: pem(of: certificate))
        #expect(info.certificate == certificate)
        #expect(info.subject == "CN=device-1,OU=Sensors,O=Acme")
        #expect(info.issuer == "CN=Drover Root CA,O=Drover")
        #expect(info.commonName == "device-1")
        #expect(info.serialNumber == "0abcde")
        #expect(info.notBefore == now - CertificateAuthority.clockSkewAllowance)
        #expect(info.notAfter == now + 30 * 86_400)
        #expect(!info.isCA)
        #expect(info.publicKey == keys.publicKey)
        #expect(info.pem == pem(of: certificate))
        #expect(info == CertificateInfo(certificate: certificate))
        #expect(try CertificateInfo(der: info.der) == info)
    }

    @Test("The certificate id is 64 lowercase hex digits and the same however the certificate is read")
    func certificateIdShape() throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        let info = CertificateInfo(certificate: ca.certificate)
        #expect(info.certificateId.count == 64)
        #expect(info.certificateId.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(try CertificateInfo(pem: ca.certificatePEM).certificateId == info.certificateId)
        // PEM with Windows line endings and text around it is the same certificate.
        let decorated = "Drover Root CA\r\n" + ca.certificatePEM.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try CertificateInfo(pem: decorated).certificateId == info.certificateId)
        let other = try CertificateAuthority.generate(now: wholeSecondsNow())
        #expect(CertificateInfo(certificate: other.certificate).certificateId != info.certificateId)
    }

    @Test("Text without exactly one certificate is refused", arguments: ["", "certificate", "key"])
    func notACertificate(kind: String) throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        let text: String =
            switch kind {
            case "certificate": ca.certificatePEM + ca.certificatePEM
            case "key": ca.privateKeyPEM
            default: "not PEM at all"
            }
        let error = #expect(throws: IdentityError.self) { try CertificateInfo(pem: text) }
        #expect(error?.code == .notAPEMCertificate)
        #expect(error?.description.hasPrefix("not a PEM certificate") == true)
    }
}

@Suite("Certificate facts, checked by openssl", .enabled(if: OpenSSL.isAvailable, "needs /usr/bin/openssl"))
struct OpenSSLCertificateInfoTests {
    @Test("The certificate id equals openssl's SHA-256 fingerprint without colons, in lowercase")
    func certificateIdIsTheFingerprint() async throws {
        try await withTemporaryDirectory { directory in
            let now = wholeSecondsNow()
            let ca = try CertificateAuthority.generate(now: now)
            let device = try ca.issueDeviceCertificate(
                publicKey: DeviceKeyPair.generate(.rsa2048).publicKey,
                subject: CertificateSubject(commonName: "device-1"),
                validityDays: 30,
                now: now
            )
            for (name, certificate) in [("ca.pem", ca.certificate), ("device.pem", device)] {
                try directory.write(pem(of: certificate), to: name)
                let output = try OpenSSL.run(["x509", "-in", name, "-noout", "-fingerprint", "-sha256"], in: directory)
                // "sha256 Fingerprint=AB:CD:..." (the label's case differs between OpenSSL versions)
                let fingerprint = try #require(output.split(separator: "=").last)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                    .replacingOccurrences(of: ":", with: "")
                    .lowercased()
                #expect(CertificateInfo(certificate: certificate).certificateId == fingerprint)
                #expect(try CertificateInfo(pem: directory.read(name)).certificateId == fingerprint)
            }
        }
    }

    @Test("Facts of a certificate made by openssl match what openssl prints")
    func openSSLCertificate() async throws {
        try await withTemporaryDirectory { directory in
            try OpenSSL.run(
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                    "-subj", "/C=US/O=Example Corp/CN=legacy-device", "-days", "7", "-set_serial", "0x1f2e3d",
                ],
                in: directory
            )
            let info = try CertificateInfo(pem: directory.read("cert.pem"))
            #expect(info.subject == "CN=legacy-device,O=Example Corp,C=US")
            #expect(info.issuer == info.subject)
            #expect(info.serialNumber == "1f2e3d")
            #expect(info.isSelfSigned)
            #expect(info.publicKey.description == "RSA2048.PublicKey")
            let serial = try OpenSSL.run(["x509", "-in", "cert.pem", "-noout", "-serial"], in: directory)
            #expect(
                serial.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "serial=\(info.serialNumber)"
            )
        }
    }
}
