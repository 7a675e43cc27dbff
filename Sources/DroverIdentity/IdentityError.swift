/// A failure of the certificate authority: input that cannot be used, or a certificate that cannot be made.
///
/// The ``reason`` says what to fix, because these messages reach operators through the HTTP API and the CLI
/// (for example "the private key does not match the CA certificate"). Callers that branch on the failure compare
/// ``code`` instead of parsing the text. Like `CertificateError` in swift-certificates, the code is a struct over a
/// private enum, so new codes can be added without breaking anyone's `switch`.
public struct IdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is, for callers that branch on it.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: Hashable, Sendable {
            case notAPEMCertificate
            case notAPEMPrivateKey
            case notAPEMCertificateSigningRequest
            case encryptedPrivateKey
            case unsupportedKey
            case keyDoesNotMatchCertificate
            case notACertificateAuthority
            case signatureDoesNotVerify
            case caExpired
            case invalidValidity
            case invalidSubject
            case invalidIPAddress
            case noServerNames
            case cannotIssue
        }

        let backing: Backing

        /// The text is not PEM, holds no `CERTIFICATE` block, or the block is not a valid X.509 certificate.
        public static let notAPEMCertificate = Code(backing: .notAPEMCertificate)
        /// The text holds no PKCS#8, SEC 1 or PKCS#1 private key.
        public static let notAPEMPrivateKey = Code(backing: .notAPEMPrivateKey)
        /// The text holds no PKCS#10 `CERTIFICATE REQUEST` block, or the block does not parse.
        public static let notAPEMCertificateSigningRequest = Code(backing: .notAPEMCertificateSigningRequest)
        /// The private key is encrypted with a passphrase; Drover needs it in the clear.
        public static let encryptedPrivateKey = Code(backing: .encryptedPrivateKey)
        /// The key is of a type or size that Drover does not sign with.
        public static let unsupportedKey = Code(backing: .unsupportedKey)
        /// The private key is not the one the certificate was issued for.
        public static let keyDoesNotMatchCertificate = Code(backing: .keyDoesNotMatchCertificate)
        /// The certificate may not sign other certificates (BasicConstraints or KeyUsage forbid it).
        public static let notACertificateAuthority = Code(backing: .notACertificateAuthority)
        /// A self-signature (of a CSR) does not verify: the request was altered or signed with another key.
        public static let signatureDoesNotVerify = Code(backing: .signatureDoesNotVerify)
        /// The CA certificate has expired (or is not valid yet), so nothing it signs would verify.
        public static let caExpired = Code(backing: .caExpired)
        /// The requested validity period is empty or negative.
        public static let invalidValidity = Code(backing: .invalidValidity)
        /// A subject name attribute cannot be encoded (for example a country that is not two letters).
        public static let invalidSubject = Code(backing: .invalidSubject)
        /// A string given as an IP address is neither IPv4 nor IPv6.
        public static let invalidIPAddress = Code(backing: .invalidIPAddress)
        /// A server certificate was asked for with neither host names nor IP addresses.
        public static let noServerNames = Code(backing: .noServerNames)
        /// The certificate could not be built or signed.
        public static let cannotIssue = Code(backing: .cannotIssue)

        public var description: String { String(describing: self.backing) }
    }

    /// What went wrong, for branching.
    public var code: Code
    /// What went wrong and what to do about it, in words for an operator.
    public var reason: String

    init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { self.reason }
}

extension IdentityError {
    static func notAPEMCertificate(_ detail: String? = nil) -> IdentityError {
        IdentityError(.notAPEMCertificate, "not a PEM certificate" + Self.suffix(detail))
    }

    static func notAPEMPrivateKey(_ detail: String? = nil) -> IdentityError {
        IdentityError(
            .notAPEMPrivateKey,
            "not a PEM private key (expected PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)" + Self.suffix(detail)
        )
    }

    static func notAPEMCertificateSigningRequest(_ detail: String? = nil) -> IdentityError {
        IdentityError(
            .notAPEMCertificateSigningRequest,
            "not a PEM certificate signing request (expected CERTIFICATE REQUEST)" + Self.suffix(detail)
        )
    }

    static func cannotIssue(_ error: any Error) -> IdentityError {
        IdentityError(.cannotIssue, "the certificate could not be built: \(error)")
    }

    private static func suffix(_ detail: String?) -> String {
        detail.map { ": \($0)" } ?? ""
    }
}
