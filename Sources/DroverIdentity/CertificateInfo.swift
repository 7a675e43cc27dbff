import Crypto
import Foundation
import SwiftASN1
import X509

/// The facts about a certificate that the registry stores and the API shows.
///
/// `certificateId` is the lowercase hex SHA-256 of the certificate's DER, the identifier AWS IoT uses (and the
/// SHA-256 fingerprint `openssl x509 -fingerprint -sha256` prints, without the colons). It is computed over the exact
/// bytes that were given, so the same certificate always gets the same id, whoever encoded the PEM.
public struct CertificateInfo: Hashable, Sendable {
    public let certificate: Certificate
    /// The certificate's DER encoding.
    public let der: [UInt8]
    /// 64 lowercase hex digits: SHA-256 of ``der``.
    public let certificateId: String

    /// Reads the one certificate in PEM text.
    /// - Throws: ``IdentityError`` `.notAPEMCertificate` when there is no certificate, more than one, or it does not
    ///   parse.
    public init(pem: String) throws {
        try self.init(der: PEMBlocks.singleCertificateDER(in: pem))
    }

    /// Reads a DER-encoded certificate.
    public init(der: [UInt8]) throws {
        do {
            self.certificate = try Certificate(derEncoded: der)
        } catch {
            throw IdentityError.notAPEMCertificate("the bytes are not a valid X.509 certificate (\(error))")
        }
        self.der = der
        self.certificateId = Self.hexadecimal(SHA256.hash(data: der))
    }

    /// The facts about a certificate already in hand, such as one just issued.
    public init(certificate: Certificate) {
        self.certificate = certificate
        self.der = derBytes(of: certificate)
        self.certificateId = Self.hexadecimal(SHA256.hash(data: self.der))
    }

    /// The certificate as PEM.
    public var pem: String {
        pemText(type: Certificate.defaultPEMDiscriminator, der: self.der)
    }

    /// The subject in RFC 4514 form, most specific first: `CN=my-device,O=Acme`.
    public var subject: String { self.certificate.subject.description }

    /// The issuer in RFC 4514 form.
    public var issuer: String { self.certificate.issuer.description }

    /// The subject's common name, if it has one.
    public var commonName: String? { self.certificate.subject.firstCommonName }

    /// The serial number as lowercase hex without separators or leading zero bytes, as `openssl x509 -serial` prints
    /// it (apart from case).
    public var serialNumber: String { Self.hexadecimal(self.certificate.serialNumber.bytes) }

    public var notBefore: Date { self.certificate.notValidBefore }
    public var notAfter: Date { self.certificate.notValidAfter }

    /// Whether the certificate may issue certificates: BasicConstraints CA:TRUE. A certificate whose extension does
    /// not parse is reported as not a CA.
    public var isCA: Bool {
        guard case .isCertificateAuthority = try? self.certificate.extensions.basicConstraints else {
            return false
        }
        return true
    }

    /// Whether the certificate was signed by its own key (a root, or a self-signed device certificate).
    public var isSelfSigned: Bool {
        isSigned(self.certificate, by: self.certificate)
    }

    public var publicKey: Certificate.PublicKey { self.certificate.publicKey }

    /// The DNS names in the subjectAltName extension.
    public var dnsNames: [String] {
        self.subjectAlternativeNames.compactMap {
            guard case .dnsName(let name) = $0 else { return nil }
            return name
        }
    }

    /// The IP addresses in the subjectAltName extension, in text form (`127.0.0.1`, `::1`).
    public var ipAddresses: [String] {
        self.subjectAlternativeNames.compactMap {
            guard case .ipAddress(let octets) = $0 else { return nil }
            return IPAddress.text(of: octets.bytes)
        }
    }

    private var subjectAlternativeNames: [GeneralName] {
        guard let names = try? self.certificate.extensions.subjectAlternativeNames else { return [] }
        return Array(names)
    }

    static func hexadecimal(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
