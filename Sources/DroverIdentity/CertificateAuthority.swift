import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// A certificate authority: a CA certificate and the private key that matches it.
///
/// Invariants, checked when the value is made, so that every certificate it issues chains back to `certificate`:
/// - the private key is the one `certificate` was issued for;
/// - `certificate` may sign certificates: BasicConstraints says CA:TRUE, and KeyUsage, when present, allows
///   keyCertSign;
/// - the key is ECDSA P-256, ECDSA P-384 or RSA of at least 2048 bits.
///
/// The value is immutable and `Sendable`; issuing a certificate does not change it. Keeping track of issued serial
/// numbers and revocations is the registry's job.
public struct CertificateAuthority: Sendable {
    /// The CA certificate: the trust anchor that devices and the TLS listener are given.
    public let certificate: Certificate
    let signingKey: CASigningKey

    /// How far before `now` issued certificates start to be valid.
    ///
    /// A device whose clock runs a little behind would otherwise refuse a server certificate, or a CA, issued
    /// moments ago. Five minutes covers ordinary NTP drift without noticeably extending a certificate's life.
    public static let clockSkewAllowance: TimeInterval = 5 * 60

    init(certificate: Certificate, signingKey: CASigningKey) throws {
        let keyFilePublicKey = signingKey.certificateKey.publicKey
        guard keyFilePublicKey == certificate.publicKey else {
            // Descriptions such as "P256.PublicKey" tell the operator whether they picked up a key of another type
            // or another key of the same type (usually the key of a previous CA).
            let detail =
                String(describing: keyFilePublicKey) == String(describing: certificate.publicKey)
                ? "it is a different \(keyFilePublicKey)"
                : "the certificate holds a \(certificate.publicKey), the key file a \(keyFilePublicKey)"
            throw IdentityError(
                .keyDoesNotMatchCertificate,
                "the private key does not match the CA certificate (\(detail)); give the key the CA was made with"
            )
        }
        try Self.checkIsCertificateAuthority(certificate)
        self.certificate = certificate
        self.signingKey = signingKey
    }

    /// Reads a CA that the operator brings: its certificate and its unencrypted private key, both PEM.
    ///
    /// The key may be PKCS#8 (`PRIVATE KEY`), SEC 1 (`EC PRIVATE KEY`, as `openssl ecparam -genkey` writes, with or
    /// without the `EC PARAMETERS` block) or PKCS#1 (`RSA PRIVATE KEY`).
    /// - Throws: ``IdentityError`` saying what to fix: not a PEM certificate or key, an encrypted key, a key that is
    ///   not the certificate's, a certificate that is not a CA, or an unsupported key type.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        let certificate = try CertificateInfo(pem: certificatePEM).certificate
        let signingKey = try CASigningKey(pem: privateKeyPEM)
        try self.init(certificate: certificate, signingKey: signingKey)
    }

    /// The CA certificate as PEM, for `ca.pem` and for devices' trust stores.
    public var certificatePEM: String { pem(of: self.certificate) }

    /// The CA's private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) whatever its type, so the file
    /// format does not depend on where the key came from. Write it with owner-only permissions.
    public var privateKeyPEM: String { self.signingKey.pkcs8PEM }

    /// The key that signs issued certificates.
    public var privateKey: Certificate.PrivateKey { self.signingKey.certificateKey }

    /// Makes a new self-signed root CA with an ECDSA P-256 key.
    ///
    /// The root has BasicConstraints CA:TRUE without a path length limit (so an operator may add intermediates
    /// later) and KeyUsage keyCertSign and cRLSign, both critical, and a SubjectKeyIdentifier that issued
    /// certificates name in their AuthorityKeyIdentifier.
    /// - Parameters:
    ///   - validityYears: Calendar years (UTC) from `now`. Ten by default: devices that cannot update their trust
    ///     store must outlive the CA's rotation period.
    ///   - now: The moment of issue; injected so tests and replays are deterministic.
    public static func generate(
        commonName: String = "Drover Root CA",
        organization: String = "Drover",
        validityYears: Int = 10,
        now: Date
    ) throws -> CertificateAuthority {
        guard validityYears > 0 else {
            throw IdentityError(.invalidValidity, "a CA must be valid for at least one year, not \(validityYears)")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        guard let notAfter = calendar.date(byAdding: .year, value: validityYears, to: now) else {
            throw IdentityError(.invalidValidity, "\(validityYears) years from \(now) is not a representable date")
        }

        let signingKey = CASigningKey.p256(P256.Signing.PrivateKey())
        let privateKey = signingKey.certificateKey
        let subject = try CertificateSubject(commonName: commonName, organization: organization).distinguishedName()
        let certificate: Certificate
        do {
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: privateKey.publicKey)
            }
            certificate = try Certificate(
                version: .v3,
                serialNumber: .randomForIssuance(),
                publicKey: privateKey.publicKey,
                notValidBefore: now - Self.clockSkewAllowance,
                notValidAfter: notAfter,
                issuer: subject,
                subject: subject,
                extensions: extensions,
                issuerPrivateKey: privateKey
            )
        } catch {
            throw IdentityError.cannotIssue(error)
        }
        return try CertificateAuthority(certificate: certificate, signingKey: signingKey)
    }

    private static func checkIsCertificateAuthority(_ certificate: Certificate) throws {
        let subject = certificate.subject.description
        let basicConstraints: BasicConstraints?
        let keyUsage: KeyUsage?
        do {
            basicConstraints = try certificate.extensions.basicConstraints
            keyUsage = try certificate.extensions.keyUsage
        } catch {
            throw IdentityError.notAPEMCertificate("its extensions do not parse (\(error))")
        }
        switch basicConstraints {
        case .isCertificateAuthority:
            break
        case .notCertificateAuthority:
            throw IdentityError(
                .notACertificateAuthority,
                "'\(subject)' is not a CA certificate (BasicConstraints CA:false); give the certificate of the CA"
                    + " that signs device certificates"
            )
        case nil:
            throw IdentityError(
                .notACertificateAuthority,
                "'\(subject)' is not a CA certificate (it has no BasicConstraints extension, and RFC 5280 verifiers"
                    + " refuse such an issuer); make the CA with basicConstraints=critical,CA:TRUE"
            )
        }
        if let keyUsage, !keyUsage.keyCertSign {
            throw IdentityError(
                .notACertificateAuthority,
                "'\(subject)' is not a CA certificate (its KeyUsage lacks keyCertSign, so it may not sign certificates)"
            )
        }
    }
}

extension Certificate.SerialNumber {
    /// A random serial number of 158 bits, always 20 octets in DER.
    ///
    /// `SerialNumber()` draws 20 random bytes; when the first one has its top bit set, DER needs a leading zero
    /// and the encoding grows to 21 octets, past RFC 5280's limit of 20 that some device TLS stacks enforce.
    /// Clearing that bit keeps every serial within 20 octets; setting the next one keeps the first byte from
    /// being zero (which would be dropped, and the next byte's top bit would then need the leading zero).
    /// Still far above the CA/Browser Forum's 64 bits.
    static func randomForIssuance() -> Certificate.SerialNumber {
        var bytes = secureRandomBytes(20)
        bytes[0] = bytes[0] & 0x7F | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }
}
