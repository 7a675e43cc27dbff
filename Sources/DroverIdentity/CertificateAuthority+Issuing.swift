import Foundation
import SwiftASN1
import X509
import _CryptoExtras

extension CertificateAuthority {
    /// Issues a device (MQTT client) certificate for a public key the device holds the private half of.
    ///
    /// The certificate has BasicConstraints CA:FALSE and KeyUsage digitalSignature, both critical, with
    /// keyEncipherment added for RSA keys because TLS 1.2 RSA key exchange needs it; ExtendedKeyUsage clientAuth;
    /// and Subject and Authority key identifiers, the latter copied from the CA's SubjectKeyIdentifier so chain
    /// builders find the issuer however the CA computed it. It is valid from `now` less ``clockSkewAllowance`` until `validityDays` later,
    /// but never past the CA's own expiry, since a verifier would refuse it from then on anyway.
    /// - Parameter serialNumber: Leave `nil` for 159 random bits; pass one only to reproduce a certificate.
    /// - Throws: ``IdentityError`` when the CA has expired, the validity is not positive, or signing fails.
    public func issueDeviceCertificate(
        publicKey: Certificate.PublicKey,
        subject: DistinguishedName,
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber? = nil
    ) throws -> Certificate {
        try self.issueLeaf(
            publicKey: publicKey,
            subject: subject,
            usage: .clientAuth,
            subjectAlternativeNames: nil,
            validityDays: validityDays,
            now: now,
            serialNumber: serialNumber
        )
    }

    /// Issues a device certificate with a subject given as plain fields, as the one taking a `DistinguishedName`.
    public func issueDeviceCertificate(
        publicKey: Certificate.PublicKey,
        subject: CertificateSubject,
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber? = nil
    ) throws -> Certificate {
        try self.issueDeviceCertificate(
            publicKey: publicKey,
            subject: subject.distinguishedName(),
            validityDays: validityDays,
            now: now,
            serialNumber: serialNumber
        )
    }

    /// Issues a TLS server certificate for Drover's own listeners.
    ///
    /// Clients match the host they dialled against the subjectAltName entries only (RFC 6125; the common name is
    /// ignored by modern stacks), so every name and address the broker is reached by must be listed. The common name
    /// is the first host name, or the first IP address when there are no host names, for humans reading the
    /// certificate. ExtendedKeyUsage is serverAuth; the other extensions are as for device certificates.
    /// - Parameters:
    ///   - hostNames: DNS names, ASCII (IDNs in their `xn--` form); `*.example.com` wildcards are allowed.
    ///   - ipAddresses: IPv4 or IPv6 addresses in text form, such as `127.0.0.1` or `::1`.
    /// - Throws: ``IdentityError`` when there is no name at all, a name is not ASCII, or an address does not parse.
    public func issueServerCertificate(
        publicKey: Certificate.PublicKey,
        hostNames: [String],
        ipAddresses: [String] = [],
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber? = nil
    ) throws -> Certificate {
        guard let commonName = hostNames.first ?? ipAddresses.first else {
            throw IdentityError(
                .noServerNames,
                "a server certificate needs at least one host name or IP address that clients connect to"
            )
        }
        var names: [GeneralName] = []
        for hostName in hostNames {
            guard !hostName.isEmpty, hostName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw IdentityError(
                    .invalidSubject,
                    "'\(hostName)' is not a usable host name: write it in ASCII, with international names in"
                        + " their xn-- (punycode) form"
                )
            }
            names.append(.dnsName(hostName))
        }
        for address in ipAddresses {
            guard let bytes = IPAddress.bytes(of: address) else {
                throw IdentityError(.invalidIPAddress, "'\(address)' is not an IPv4 or IPv6 address")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
        }
        return try self.issueLeaf(
            publicKey: publicKey,
            subject: CertificateSubject(commonName: commonName).distinguishedName(),
            usage: .serverAuth,
            subjectAlternativeNames: SubjectAlternativeNames(names),
            validityDays: validityDays,
            now: now,
            serialNumber: serialNumber
        )
    }

    /// Issues a device certificate for a PKCS#10 certificate signing request, as AWS IoT's
    /// `CreateCertificateFromCsr` does.
    ///
    /// The request's self-signature is verified first: it proves that whoever sent it holds the private key, and
    /// that nobody changed the subject or the key on the way. The certificate keeps the request's subject and public
    /// key. Extensions the request asks for (an extensionRequest attribute) are not copied: the CA decides what a
    /// device certificate may do.
    /// - Parameter pem: One `-----BEGIN CERTIFICATE REQUEST-----` block, as `openssl req -new` writes.
    /// - Throws: ``IdentityError`` with code `.signatureDoesNotVerify` when the request's signature does not verify,
    ///   `.notAPEMCertificateSigningRequest` when it does not parse, `.invalidSubject` when its subject is empty,
    ///   and otherwise as `issueDeviceCertificate`.
    public func issueFromCSR(
        pem: String,
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber? = nil
    ) throws -> Certificate {
        try self.issueFromCSR(
            Self.parseCSR(pem: pem),
            validityDays: validityDays,
            now: now,
            serialNumber: serialNumber
        )
    }

    /// Issues a device certificate for a parsed certificate signing request; see
    /// ``issueFromCSR(pem:validityDays:now:serialNumber:)``.
    public func issueFromCSR(
        _ request: CertificateSigningRequest,
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber? = nil
    ) throws -> Certificate {
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw IdentityError(
                .signatureDoesNotVerify,
                "the CSR's signature does not verify: it was changed after it was signed, or signed with a key"
                    + " other than the one it carries; make a new CSR with the device's key"
            )
        }
        guard !request.subject.isEmpty else {
            throw IdentityError(
                .invalidSubject,
                "the CSR has an empty subject; give it at least a common name (openssl req -subj /CN=my-device)"
            )
        }
        return try self.issueDeviceCertificate(
            publicKey: request.publicKey,
            subject: request.subject,
            validityDays: validityDays,
            now: now,
            serialNumber: serialNumber
        )
    }

    static func parseCSR(pem text: String) throws -> CertificateSigningRequest {
        guard let documents = PEMBlocks.documents(in: text) else {
            throw IdentityError.notAPEMCertificateSigningRequest("no -----BEGIN CERTIFICATE REQUEST----- block")
        }
        // "NEW CERTIFICATE REQUEST" is what older Netscape-era tools and some Java keytools still write.
        let requests = documents.filter {
            $0.discriminator == CertificateSigningRequest.defaultPEMDiscriminator
                || $0.discriminator == "NEW CERTIFICATE REQUEST"
        }
        guard requests.count == 1 else {
            throw IdentityError.notAPEMCertificateSigningRequest(
                requests.isEmpty
                    ? "no -----BEGIN CERTIFICATE REQUEST----- block"
                    : "found \(requests.count) requests; give one at a time"
            )
        }
        do {
            return try CertificateSigningRequest(derEncoded: requests[0].derBytes)
        } catch {
            throw IdentityError.notAPEMCertificateSigningRequest("the request does not parse (\(error))")
        }
    }

    private func issueLeaf(
        publicKey: Certificate.PublicKey,
        subject: DistinguishedName,
        usage: ExtendedKeyUsage.Usage,
        subjectAlternativeNames: SubjectAlternativeNames?,
        validityDays: Int,
        now: Date,
        serialNumber: Certificate.SerialNumber?
    ) throws -> Certificate {
        guard validityDays > 0 else {
            throw IdentityError(.invalidValidity, "validityDays must be at least 1, not \(validityDays)")
        }
        let ca = self.certificate
        guard now >= ca.notValidBefore - Self.clockSkewAllowance, now < ca.notValidAfter else {
            throw IdentityError(
                .caExpired,
                "the CA certificate '\(ca.subject)' is valid from \(ca.notValidBefore) to \(ca.notValidAfter),"
                    + " not at \(now); renew or replace the CA"
            )
        }
        let notBefore = max(now - Self.clockSkewAllowance, ca.notValidBefore)
        let notAfter = min(now + TimeInterval(validityDays) * 86_400, ca.notValidAfter)
        let isRSA = _RSA.Signing.PublicKey(publicKey) != nil

        do {
            let authorityKeyIdentifier =
                try ca.extensions.subjectKeyIdentifier?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: ca.publicKey).keyIdentifier
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: isRSA))
                try ExtendedKeyUsage([usage])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier)
                if let subjectAlternativeNames {
                    subjectAlternativeNames
                }
            }
            return try Certificate(
                version: .v3,
                serialNumber: serialNumber ?? .randomForIssuance(),
                publicKey: publicKey,
                notValidBefore: notBefore,
                notValidAfter: notAfter,
                issuer: ca.subject,
                subject: subject,
                extensions: extensions,
                issuerPrivateKey: self.privateKey
            )
        } catch {
            throw IdentityError.cannotIssue(error)
        }
    }
}
