import Foundation
import Testing
import X509

@testable import DroverIdentity

@Suite("Certificate authority")
struct CertificateAuthorityTests {
    @Test("A generated CA is a self-signed P-256 root with CA:TRUE, keyCertSign and cRLSign, valid ten years")
    func generatedRoot() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let certificate = ca.certificate

        #expect(isSigned(certificate, by: certificate))
        #expect(certificate.subject == certificate.issuer)
        #expect(certificate.subject.description == "CN=Drover Root CA,O=Drover")
        #expect(certificate.publicKey.description == "P256.PublicKey")
        #expect(certificate.signatureAlgorithm == .ecdsaWithSHA256)

        let basicConstraints = try #require(certificate.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(basicConstraints.critical)
        #expect(try certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
        let keyUsageExtension = try #require(certificate.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(keyUsageExtension.critical)
        let keyUsage = try #require(try certificate.extensions.keyUsage)
        #expect(keyUsage.keyCertSign && keyUsage.cRLSign && !keyUsage.digitalSignature)
        #expect(try certificate.extensions.subjectKeyIdentifier != nil)

        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        #expect(certificate.notValidAfter == calendar.date(byAdding: .year, value: 10, to: now))
        #expect(certificate.notValidBefore == now - CertificateAuthority.clockSkewAllowance)
        #expect(CertificateInfo(certificate: certificate).isCA)
    }

    @Test("A CA's name and lifetime can be chosen")
    func chosenNameAndLifetime() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(
            commonName: "Acme Fleet CA",
            organization: "Acme",
            validityYears: 2,
            now: now
        )
        #expect(ca.certificate.subject.description == "CN=Acme Fleet CA,O=Acme")
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        #expect(ca.certificate.notValidAfter == calendar.date(byAdding: .year, value: 2, to: now))
    }

    @Test("A generated CA writes its certificate as PEM and its key as PKCS#8 PEM")
    func pemOutputs() throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        #expect(ca.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(ca.certificatePEM.hasSuffix("-----END CERTIFICATE-----\n"))
        #expect(ca.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(ca.privateKeyPEM.hasSuffix("-----END PRIVATE KEY-----\n"))
    }

    @Test("A CA read back from its PEM issues certificates that verify against the original")
    func roundTripThroughPEM() async throws {
        let now = wholeSecondsNow()
        let original = try CertificateAuthority.generate(now: now)
        let reloaded = try CertificateAuthority(
            certificatePEM: original.certificatePEM,
            privateKeyPEM: original.privateKeyPEM
        )
        #expect(reloaded.certificate == original.certificate)
        #expect(reloaded.privateKeyPEM == original.privateKeyPEM)

        let device = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try reloaded.issueDeviceCertificate(
            publicKey: device.publicKey,
            subject: CertificateSubject(commonName: "device-1"),
            validityDays: 365,
            now: now
        )
        let chain = try await verifyClientCertificate(certificate, roots: [original.certificate], now: now).get()
        #expect(chain == [certificate, original.certificate])
    }

    @Test("A private key that is not the CA certificate's is refused")
    func mismatchedKey() throws {
        let now = wholeSecondsNow()
        let first = try CertificateAuthority.generate(now: now)
        let second = try CertificateAuthority.generate(now: now)
        let error = #expect(throws: IdentityError.self) {
            try CertificateAuthority(certificatePEM: first.certificatePEM, privateKeyPEM: second.privateKeyPEM)
        }
        #expect(error?.code == .keyDoesNotMatchCertificate)
        #expect(error?.description.contains("the private key does not match the CA certificate") == true)
    }

    @Test("A device certificate cannot be used as a CA")
    func leafIsNotACA() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let device = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueDeviceCertificate(
            publicKey: device.publicKey,
            subject: CertificateSubject(commonName: "device-1"),
            validityDays: 1,
            now: now
        )
        let error = #expect(throws: IdentityError.self) {
            try CertificateAuthority(certificatePEM: pem(of: certificate), privateKeyPEM: device.privateKeyPEM)
        }
        #expect(error?.code == .notACertificateAuthority)
        #expect(error?.description.contains("not a CA certificate (BasicConstraints CA:false)") == true)
    }

    @Test(
        "Text that is not a PEM certificate or key is refused",
        arguments: ["", "hello", "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"]
    )
    func notPEM(text: String) throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        let certificateError = #expect(throws: IdentityError.self) {
            try CertificateAuthority(certificatePEM: text, privateKeyPEM: ca.privateKeyPEM)
        }
        #expect(certificateError?.code == .notAPEMCertificate)
        #expect(certificateError?.description.hasPrefix("not a PEM certificate") == true)

        let keyError = #expect(throws: IdentityError.self) {
            try CertificateAuthority(certificatePEM: ca.certificatePEM, privateKeyPEM: text)
        }
        #expect(keyError?.code == .notAPEMPrivateKey)
    }

    @Test("A certificate file holding two certificates is refused rather than guessed at")
    func twoCertificates() throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        let error = #expect(throws: IdentityError.self) {
            try CertificateAuthority(
                certificatePEM: ca.certificatePEM + ca.certificatePEM,
                privateKeyPEM: ca.privateKeyPEM
            )
        }
        #expect(error?.code == .notAPEMCertificate)
        #expect(error?.description.contains("found 2 certificates") == true)
    }
}

/// Bring-your-own CAs made with openssl, in the key formats operators have on disk.
@Suite("Certificate authority from openssl", .enabled(if: OpenSSL.isAvailable, "needs /usr/bin/openssl"))
struct OpenSSLCertificateAuthorityTests {
    /// openssl commands that write `ca-key.pem` in one format each.
    static let keyCommands: [String: [[String]]] = [
        "P-256 SEC 1 with EC PARAMETERS": [["ecparam", "-name", "prime256v1", "-genkey", "-out", "ca-key.pem"]],
        "P-384 PKCS#8": [
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", "ca-key.pem"]
        ],
        "RSA 3072 PKCS#1": [["genrsa", "-traditional", "-out", "ca-key.pem", "3072"]],
        "RSA 2048 PKCS#8": [["genrsa", "-out", "ca-key.pem", "2048"]],
    ]

    @Test(
        "An operator's CA is accepted in each key format and issues certificates openssl verifies",
        arguments: keyCommands.keys.sorted()
    )
    func operatorCA(format: String) async throws {
        try await withTemporaryDirectory { directory in
            for command in Self.keyCommands[format]! {
                try OpenSSL.run(command, in: directory)
            }
            try OpenSSL.run(
                [
                    "req", "-new", "-x509", "-key", "ca-key.pem", "-subj", "/C=DE/O=Acme/CN=Acme Root", "-days", "30",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-out", "ca.pem",
                ],
                in: directory
            )
            let ca = try CertificateAuthority(
                certificatePEM: directory.read("ca.pem"),
                privateKeyPEM: directory.read("ca-key.pem")
            )
            #expect(ca.certificate.subject.description == "CN=Acme Root,O=Acme,C=DE")
            #expect(ca.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))

            let now = wholeSecondsNow()
            let device = try DeviceKeyPair.generate(.ecdsaP256)
            let certificate = try ca.issueDeviceCertificate(
                publicKey: device.publicKey,
                subject: CertificateSubject(commonName: "device-1"),
                validityDays: 10,
                now: now
            )
            try directory.write(pem(of: certificate), to: "device.pem")
            let output = try OpenSSL.run(["verify", "-CAfile", "ca.pem", "device.pem"], in: directory)
            #expect(output.contains("device.pem: OK"))
            #expect(try await verifyClientCertificate(certificate, roots: [ca.certificate], now: now).get().count == 2)

            // The key written back out is the same key, as openssl sees it.
            try directory.write(ca.privateKeyPEM, to: "written-key.pem")
            let original = try OpenSSL.run(["pkey", "-in", "ca-key.pem", "-pubout"], in: directory)
            let written = try OpenSSL.run(["pkey", "-in", "written-key.pem", "-pubout"], in: directory)
            #expect(original == written)
        }
    }

    @Test("A CA certificate without BasicConstraints is refused")
    func noBasicConstraints() async throws {
        try await withTemporaryDirectory { directory in
            try OpenSSL.run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"], in: directory)
            try OpenSSL.run(
                [
                    "req", "-new", "-x509", "-key", "key.pem", "-subj", "/CN=Not A CA", "-days", "1",
                    "-config", "/dev/null", "-out", "cert.pem",
                ],
                in: directory
            )
            let error = #expect(throws: IdentityError.self) {
                try CertificateAuthority(
                    certificatePEM: directory.read("cert.pem"),
                    privateKeyPEM: directory.read("key.pem")
                )
            }
            #expect(error?.code == .notACertificateAuthority)
        }
    }

    @Test("An encrypted CA key is refused with the command that decrypts it")
    func encryptedKey() async throws {
        try await withTemporaryDirectory { directory in
            let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
            try directory.write(ca.privateKeyPEM, to: "key.pem")
            try OpenSSL.run(
                ["pkey", "-in", "key.pem", "-aes256", "-passout", "pass:secret", "-out", "encrypted.pem"],
                in: directory
            )
            let error = #expect(throws: IdentityError.self) {
                try CertificateAuthority(
                    certificatePEM: ca.certificatePEM,
                    privateKeyPEM: directory.read("encrypted.pem")
                )
            }
            #expect(error?.code == .encryptedPrivateKey)
            #expect(error?.description.contains("openssl pkey") == true)
        }
    }

    @Test("An Ed25519 CA key is refused: device TLS stacks do not verify it")
    func ed25519Key() async throws {
        try await withTemporaryDirectory { directory in
            try OpenSSL.run(["genpkey", "-algorithm", "ED25519", "-out", "key.pem"], in: directory)
            try OpenSSL.run(
                [
                    "req", "-new", "-x509", "-key", "key.pem", "-subj", "/CN=Edwards", "-days", "1",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-out", "ca.pem",
                ],
                in: directory
            )
            let error = #expect(throws: IdentityError.self) {
                try CertificateAuthority(
                    certificatePEM: directory.read("ca.pem"),
                    privateKeyPEM: directory.read("key.pem")
                )
            }
            #expect(error?.code == .unsupportedKey)
        }
    }
}
