import Foundation
@_spi(FixedExpiryValidationTime) import X509

/// Why a client certificate was not accepted. A value, not a thrown error: refusing a device is an ordinary outcome
/// of a TLS handshake, and the listener decides how it goes on the wire.
public struct CertificateVerificationFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of refusal, for logs and metrics (a bounded set, unlike ``reason``).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Backing: Hashable, Sendable {
            case untrustedIssuer
            case noValidChain
            case policyViolation
        }

        let backing: Backing

        /// No trusted CA (or intermediate offered with the leaf) has the leaf's issuer name.
        public static let untrustedIssuer = Code(backing: .untrustedIssuer)
        /// A CA with the right name exists, but no chain through it verifies: a signature is wrong, or a certificate
        /// carries a critical extension that the verifier does not understand.
        public static let noValidChain = Code(backing: .noValidChain)
        /// A chain was built, but breaks RFC 5280 rules: expired or not yet valid, an issuer that is not a CA,
        /// a path length or name constraint exceeded.
        public static let policyViolation = Code(backing: .policyViolation)

        public var description: String {
            switch self.backing {
            case .untrustedIssuer: "untrusted issuer"
            case .noValidChain: "no valid chain"
            case .policyViolation: "policy violation"
            }
        }
    }

    public var code: Code
    /// Says which certificate was refused and why, for the log line of the refused connection.
    public var reason: String

    public var description: String { self.reason }
}

/// Verifies a client certificate presented in a mutual-TLS handshake against the registered CA certificates.
///
/// The chain is built by swift-certificates' `Verifier` under `RFC5280Policy`: signatures, validity periods checked
/// at `now` (not at the wall clock, so tests and replays are deterministic), BasicConstraints, name constraints, and
/// critical extensions. The leaf's ExtendedKeyUsage is not checked: `RFC5280Policy` leaves that to the
/// application, and certificates from operators' own CAs do not always carry clientAuth.
///
/// Whether the certificate is registered, active or revoked is the registry's question, asked after this one.
/// - Parameters:
///   - leaf: The certificate the client presented.
///   - intermediates: Further certificates the client sent with it, which are not trusted by themselves.
///   - roots: The trusted CA certificates.
/// - Returns: The validated chain, leaf first and root last, or why there is none.
public func verifyClientCertificate(
    _ leaf: Certificate,
    intermediates: [Certificate] = [],
    roots: [Certificate],
    now: Date
) async -> Result<[Certificate], CertificateVerificationFailure> {
    var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
        RFC5280Policy(fixedExpiryValidationTime: now)
    }
    let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(intermediates))
    switch result {
    case .validCertificate(let chain):
        return .success(Array(chain))
    case .couldNotValidate(let failures) where !failures.isEmpty:
        let reasons = Set(failures.map { String(describing: $0.policyFailureReason) }).sorted()
        return .failure(
            CertificateVerificationFailure(
                code: .policyViolation,
                reason: "the certificate '\(leaf.subject)' chains to a trusted CA but is not valid: "
                    + reasons.joined(separator: "; ")
            )
        )
    case .couldNotValidate:
        guard (roots + intermediates).contains(where: { $0.subject == leaf.issuer }) else {
            return .failure(
                CertificateVerificationFailure(
                    code: .untrustedIssuer,
                    reason: "the certificate '\(leaf.subject)' was issued by '\(leaf.issuer)', which is not a"
                        + " registered CA"
                )
            )
        }
        return .failure(
            CertificateVerificationFailure(
                code: .noValidChain,
                reason: "the certificate '\(leaf.subject)' names '\(leaf.issuer)' as its issuer, but no chain to a"
                    + " registered CA verifies: the signature does not match the CA's key, or a certificate has a"
                    + " critical extension that cannot be checked"
            )
        )
    }
}

/// Whether `certificate` was issued by `issuer`: the issuer name matches and `issuer`'s key verifies the signature.
///
/// This is the check `RegisterCertificate` makes against a registered CA. It says nothing about validity dates,
/// or about whether `issuer` is allowed to be a CA; `verifyClientCertificate` checks those.
public func isSigned(_ certificate: Certificate, by issuer: Certificate) -> Bool {
    certificate.issuer == issuer.subject
        && issuer.publicKey.isValidSignature(certificate.signature, for: certificate)
}
