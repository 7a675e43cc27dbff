import Foundation
import Testing
import X509

@testable import DroverIdentity

@Suite("Issuing certificates")
struct IssuingTests {
    static let algorithms: [DeviceKeyPair.Algorithm] = [.ecdsaP256, .rsa2048]

    @Test(
        "A device certificate chains to the CA, is for clientAuth and has the subject asked for",
        arguments: algorithms
    )
    func deviceCertificate(algorithm: DeviceKeyPair.Algorithm) async throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let device = try DeviceKeyPair.generate(algorithm)
        let certificate = try ca.issueDeviceCertificate(
            publicKey: device.publicKey,
            subject: CertificateSubject(commonName: "thermostat-42", organization: "Acme"),
            validityDays: 365,
            now: now
        )

        let chain = try await verifyClientCertificate(certificate, roots: [ca.certificate], now: now).get()
        #expect(chain == [certificate, ca.certificate])
        #expect(certificate.subject.description == "CN=thermostat-42,O=Acme")
        #expect(CertificateInfo(certificate: certificate).commonName == "thermostat-42")
        #expect(certificate.issuer == ca.certificate.subject)
        #expect(certificate.publicKey == device.publicKey)
        #expect(certificate.notValidBefore == now - CertificateAuthority.clockSkewAllowance)
        #expect(certificate.notValidAfter == now + 365 * 86_400)

        let extensions = certificate.extensions
        #expect(try extensions.basicConstraints == .notCertificateAuthority)
        #expect(extensions[oid: .X509ExtensionID.basicConstraints]?.critical == true)
        let keyUsage = try #require(try extensions.keyUsage)
        #expect(keyUsage.digitalSignature)
        #expect(keyUsage.keyEncipherment == (algorithm == .rsa2048))
        #expect(!keyUsage.keyCertSign)
        #expect(extensions[oid: .X509ExtensionID.keyUsage]?.critical == true)
        let extendedKeyUsage = try #require(try extensions.extendedKeyUsage)
        #expect(Array(extendedKeyUsage) == [.clientAuth])
        #expect(
            try extensions.authorityKeyIdentifier?.keyIdentifier
                == ca.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        )
        #expect(try extensions.subjectKeyIdentifier != nil)
    }

    @Test("Device key pairs come in the PEM formats AWS IoT returns", arguments: algorithms)
    func deviceKeyPairFormats(algorithm: DeviceKeyPair.Algorithm) throws {
        let keys = try DeviceKeyPair.generate(algorithm)
        #expect(keys.algorithm == algorithm)
        #expect(keys.publicKeyPEM.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        #expect(keys.publicKey == keys.privateKey.publicKey)
        switch algorithm {
        case .ecdsaP256:
            #expect(keys.publicKey.description == "P256.PublicKey")
            #expect(keys.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        default:
            #expect(keys.publicKey.description == "RSA2048.PublicKey")
            #expect(keys.privateKeyPEM.hasPrefix("-----BEGIN RSA PRIVATE KEY-----\n"))
        }
        #expect(keys.publicKey == (try Certificate.PrivateKey(pemEncoded: keys.privateKeyPEM)).publicKey)
        #expect(try DeviceKeyPair.generate(algorithm).publicKey != keys.publicKey)
    }

    @Test("A server certificate names its host names and IPv4 and IPv6 addresses for serverAuth")
    func serverCertificate() async throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueServerCertificate(
            publicKey: keys.publicKey,
            hostNames: ["drover.local", "localhost"],
            ipAddresses: ["127.0.0.1", "::1", "2001:db8::5"],
            validityDays: 90,
            now: now
        )
        let info = CertificateInfo(certificate: certificate)
        #expect(info.commonName == "drover.local")
        #expect(info.dnsNames == ["drover.local", "localhost"])
        #expect(info.ipAddresses == ["127.0.0.1", "::1", "2001:db8::5"])
        let addresses = try #require(try certificate.extensions.subjectAlternativeNames).compactMap { name in
            if case .ipAddress(let octets) = name { return octets.bytes.count } else { return nil }
        }
        #expect(addresses == [4, 16, 16])
        #expect(try Array(#require(try certificate.extensions.extendedKeyUsage)) == [.serverAuth])
        #expect(try certificate.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try await verifyClientCertificate(certificate, roots: [ca.certificate], now: now).get().count == 2)
    }

    @Test("A server certificate for addresses only is named after the first address")
    func serverCertificateForAddressesOnly() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueServerCertificate(
            publicKey: keys.publicKey,
            hostNames: [],
            ipAddresses: ["10.0.0.7"],
            validityDays: 1,
            now: now
        )
        #expect(CertificateInfo(certificate: certificate).commonName == "10.0.0.7")
    }

    @Test("A server certificate without names, or with an address that is not one, is refused")
    func serverCertificateRefusals() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let noNames = #expect(throws: IdentityError.self) {
            try ca.issueServerCertificate(publicKey: keys.publicKey, hostNames: [], validityDays: 1, now: now)
        }
        #expect(noNames?.code == .noServerNames)
        let badAddress = #expect(throws: IdentityError.self) {
            try ca.issueServerCertificate(
                publicKey: keys.publicKey,
                hostNames: ["drover.local"],
                ipAddresses: ["300.1.2.3"],
                validityDays: 1,
                now: now
            )
        }
        #expect(badAddress?.code == .invalidIPAddress)
        let badHost = #expect(throws: IdentityError.self) {
            try ca.issueServerCertificate(
                publicKey: keys.publicKey,
                hostNames: ["bücher.example"],
                validityDays: 1,
                now: now
            )
        }
        #expect(badHost?.code == .invalidSubject)
    }

    @Test("A CSR is issued with its own subject and key")
    func certificateFromCSR() async throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let subject = try CertificateSubject(commonName: "sensor-7", organization: "Acme", country: "NL")
            .distinguishedName()
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: subject,
            privateKey: keys.privateKey,
            attributes: .init()
        )
        let certificate = try ca.issueFromCSR(pem: request.serializeAsPEM().pemString, validityDays: 30, now: now)
        #expect(certificate.subject == subject)
        #expect(certificate.subject.description == "CN=sensor-7,O=Acme,C=NL")
        #expect(certificate.publicKey == keys.publicKey)
        #expect(try Array(#require(try certificate.extensions.extendedKeyUsage)) == [.clientAuth])
        #expect(try await verifyClientCertificate(certificate, roots: [ca.certificate], now: now).get().count == 2)
    }

    @Test("A CSR changed after it was signed is refused")
    func tamperedCSR() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let request = try CertificateSigningRequest(
            version: .v1,
            subject: CertificateSubject(commonName: "device-1").distinguishedName(),
            privateKey: keys.privateKey,
            attributes: .init()
        )
        var der = try #require(PEMText.der(of: request.serializeAsPEM().pemString))
        let name = try #require(der.firstRange(of: Array("device-1".utf8)))
        der[name.upperBound - 1] = UInt8(ascii: "2")
        let tampered = PEMText.pem(label: "CERTIFICATE REQUEST", der: der)

        let error = #expect(throws: IdentityError.self) {
            try ca.issueFromCSR(pem: tampered, validityDays: 30, now: now)
        }
        #expect(error?.code == .signatureDoesNotVerify)
        #expect(error?.description.hasPrefix("the CSR's signature does not verify") == true)
    }

    @Test(
        "Text that is not a CSR is refused",
        arguments: ["", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"]
    )
    func notACSR(text: String) throws {
        let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
        let error = #expect(throws: IdentityError.self) {
            try ca.issueFromCSR(pem: text, validityDays: 30, now: wholeSecondsNow())
        }
        #expect(error?.code == .notAPEMCertificateSigningRequest)
    }

    @Test("A certificate never outlives the CA that issued it")
    func validityClampedToCA() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(validityYears: 1, now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueDeviceCertificate(
            publicKey: keys.publicKey,
            subject: CertificateSubject(commonName: "long-lived"),
            validityDays: 3650,
            now: now
        )
        #expect(certificate.notValidAfter == ca.certificate.notValidAfter)
    }

    @Test("An expired CA, or an empty validity, issues nothing")
    func issuanceRefusals() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(validityYears: 1, now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let subject = CertificateSubject(commonName: "device-1")
        let expired = #expect(throws: IdentityError.self) {
            try ca.issueDeviceCertificate(
                publicKey: keys.publicKey,
                subject: subject,
                validityDays: 1,
                now: now + 400 * 86_400
            )
        }
        #expect(expired?.code == .caExpired)
        let empty = #expect(throws: IdentityError.self) {
            try ca.issueDeviceCertificate(publicKey: keys.publicKey, subject: subject, validityDays: 0, now: now)
        }
        #expect(empty?.code == .invalidValidity)
        let badCountry = #expect(throws: IdentityError.self) {
            try ca.issueDeviceCertificate(
                publicKey: keys.publicKey,
                subject: CertificateSubject(commonName: "device-1", country: "Germany"),
                validityDays: 1,
                now: now
            )
        }
        #expect(badCountry?.code == .invalidSubject)
    }

    @Test("Serial numbers are random and fit RFC 5280's 20 octets")
    func serialNumbers() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        var serials: Set<Certificate.SerialNumber> = []
        for index in 0..<64 {
            let certificate = try ca.issueDeviceCertificate(
                publicKey: keys.publicKey,
                subject: CertificateSubject(commonName: "device-\(index)"),
                validityDays: 1,
                now: now
            )
            // The bytes are the magnitude without leading zeros; DER adds a zero octet when the top bit is set.
            let bytes = certificate.serialNumber.bytes
            let first = try #require(bytes.first)
            #expect(bytes.count + (first >= 0x80 ? 1 : 0) <= 20)
            serials.insert(certificate.serialNumber)
        }
        #expect(serials.count == 64)
    }

    @Test("A serial number passed in is used as is")
    func givenSerialNumber() throws {
        let now = wholeSecondsNow()
        let ca = try CertificateAuthority.generate(now: now)
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try ca.issueDeviceCertificate(
            publicKey: keys.publicKey,
            subject: CertificateSubject(commonName: "device-1"),
            validityDays: 1,
            now: now,
            serialNumber: Certificate.SerialNumber(bytes: [0x01, 0x02, 0x03])
        )
        #expect(CertificateInfo(certificate: certificate).serialNumber == "010203")
    }
}

/// The CA's output checked by an independent implementation: CSRs made by openssl, certificates verified by it.
@Suite("Issuing certificates, checked by openssl", .enabled(if: OpenSSL.isAvailable, "needs /usr/bin/openssl"))
struct OpenSSLIssuingTests {
    static let keyCommands: [String: [String]] = [
        "EC P-256": ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.pem"],
        "RSA 2048": ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "k.pem"],
    ]

    @Test(
        "A CSR made by openssl req is issued, chains to the CA and passes openssl verify",
        arguments: keyCommands.keys.sorted()
    )
    func openSSLRequest(keyType: String) async throws {
        try await withTemporaryDirectory { directory in
            try OpenSSL.run(Self.keyCommands[keyType]!, in: directory)
            try OpenSSL.run(["req", "-new", "-key", "k.pem", "-subj", "/CN=x", "-out", "req.pem"], in: directory)

            let now = wholeSecondsNow()
            let ca = try CertificateAuthority.generate(now: now)
            let certificate = try ca.issueFromCSR(pem: directory.read("req.pem"), validityDays: 30, now: now)
            #expect(certificate.subject.description == "CN=x")
            #expect(try await verifyClientCertificate(certificate, roots: [ca.certificate], now: now).get().count == 2)

            try directory.write(ca.certificatePEM, to: "ca.pem")
            try directory.write(pem(of: certificate), to: "device.pem")
            let verified = try OpenSSL.run(
                ["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "device.pem"],
                in: directory
            )
            #expect(verified.contains("device.pem: OK"))
            // The certificate holds the key that signed the request.
            let requestKey = try OpenSSL.run(["req", "-in", "req.pem", "-noout", "-pubkey"], in: directory)
            let certificateKey = try OpenSSL.run(["x509", "-in", "device.pem", "-noout", "-pubkey"], in: directory)
            #expect(requestKey == certificateKey)
        }
    }

    @Test("A CSR made by openssl and then altered is refused")
    func alteredOpenSSLRequest() async throws {
        try await withTemporaryDirectory { directory in
            try OpenSSL.run(Self.keyCommands["EC P-256"]!, in: directory)
            try OpenSSL.run(
                ["req", "-new", "-key", "k.pem", "-subj", "/CN=device-1", "-out", "req.pem"],
                in: directory
            )
            var der = try #require(PEMText.der(of: directory.read("req.pem")))
            let name = try #require(der.firstRange(of: Array("device-1".utf8)))
            der[name.upperBound - 1] = UInt8(ascii: "9")

            let ca = try CertificateAuthority.generate(now: wholeSecondsNow())
            let error = #expect(throws: IdentityError.self) {
                try ca.issueFromCSR(
                    pem: PEMText.pem(label: "CERTIFICATE REQUEST", der: der),
                    validityDays: 30,
                    now: wholeSecondsNow()
                )
            }
            #expect(error?.code == .signatureDoesNotVerify)
        }
    }

    @Test("openssl verify accepts device certificates for both key types", arguments: IssuingTests.algorithms)
    func openSSLVerifiesDeviceCertificate(algorithm: DeviceKeyPair.Algorithm) async throws {
        try await withTemporaryDirectory { directory in
            let now = wholeSecondsNow()
            let ca = try CertificateAuthority.generate(now: now)
            let keys = try DeviceKeyPair.generate(algorithm)
            let certificate = try ca.issueDeviceCertificate(
                publicKey: keys.publicKey,
                subject: CertificateSubject(commonName: "device-1"),
                validityDays: 30,
                now: now
            )
            try directory.write(ca.certificatePEM, to: "ca.pem")
            try directory.write(pem(of: certificate), to: "device.pem")
            try directory.write(keys.privateKeyPEM, to: "device-key.pem")
            let output = try OpenSSL.run(
                ["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "device.pem"],
                in: directory
            )
            #expect(output.contains("device.pem: OK"))
            // The private key openssl reads from our PEM is the certificate's.
            let fromKey = try OpenSSL.run(["pkey", "-in", "device-key.pem", "-pubout"], in: directory)
            let fromCertificate = try OpenSSL.run(["x509", "-in", "device.pem", "-noout", "-pubkey"], in: directory)
            #expect(fromKey == fromCertificate)
            #expect(fromKey == keys.publicKeyPEM)
        }
    }

    @Test("openssl sees the server certificate's names and accepts it for sslserver")
    func openSSLReadsServerNames() async throws {
        try await withTemporaryDirectory { directory in
            let now = wholeSecondsNow()
            let ca = try CertificateAuthority.generate(now: now)
            let keys = try DeviceKeyPair.generate(.ecdsaP256)
            let certificate = try ca.issueServerCertificate(
                publicKey: keys.publicKey,
                hostNames: ["drover.local"],
                ipAddresses: ["127.0.0.1", "::1"],
                validityDays: 30,
                now: now
            )
            try directory.write(ca.certificatePEM, to: "ca.pem")
            try directory.write(pem(of: certificate), to: "server.pem")
            let names = try OpenSSL.run(
                ["x509", "-in", "server.pem", "-noout", "-ext", "subjectAltName"],
                in: directory
            )
            #expect(names.contains("DNS:drover.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"))
            let verified = try OpenSSL.run(
                [
                    "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "-verify_hostname", "drover.local",
                    "-verify_ip", "::1", "server.pem",
                ],
                in: directory
            )
            #expect(verified.contains("server.pem: OK"))
        }
    }
}
