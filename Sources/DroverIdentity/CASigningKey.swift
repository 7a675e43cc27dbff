import Crypto
import SwiftASN1
import X509
import _CryptoExtras

/// The CA's private key, kept as its concrete swift-crypto type.
///
/// `Certificate.PrivateKey` signs but cannot be written back out as PKCS#8 for RSA (it writes PKCS#1), and a CA
/// must be able to save its key in one predictable format. So the authority holds the concrete key and derives the
/// `Certificate.PrivateKey` from it. Only key types that device TLS stacks (mbedTLS, OpenSSL, the AWS IoT Device
/// SDKs) verify everywhere are admitted: ECDSA P-256 and P-384, and RSA of 2048 bits or more.
enum CASigningKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)
    case rsa(_RSA.Signing.PrivateKey)

    var certificateKey: Certificate.PrivateKey {
        switch self {
        case .p256(let key): Certificate.PrivateKey(key)
        case .p384(let key): Certificate.PrivateKey(key)
        case .rsa(let key): Certificate.PrivateKey(key)
        }
    }

    /// PKCS#8 (`-----BEGIN PRIVATE KEY-----`) for every key type, which OpenSSL, BoringSSL and Go all read.
    var pkcs8PEM: String {
        switch self {
        case .p256(let key): key.pemRepresentation + "\n"
        case .p384(let key): key.pemRepresentation + "\n"
        case .rsa(let key): key.pkcs8PEMRepresentation + "\n"
        }
    }

    /// Reads a PKCS#8, SEC 1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) key.
    ///
    /// swift-certificates decides the algorithm (it checks the PKCS#8 and SEC 1 curve identifiers); the concrete key is
    /// then read from the same DER, which swift-crypto accepts in each of those encodings.
    init(pem text: String) throws {
        guard let documents = PEMBlocks.documents(in: text) else {
            if text.contains("ENCRYPTED") {
                throw Self.encrypted
            }
            throw IdentityError.notAPEMPrivateKey("no -----BEGIN ... PRIVATE KEY----- block")
        }
        if documents.contains(where: { $0.discriminator == "ENCRYPTED PRIVATE KEY" }) {
            throw Self.encrypted
        }
        let keys = documents.filter { Self.discriminators.contains($0.discriminator) }
        guard keys.count == 1, let document = keys.first else {
            throw IdentityError.notAPEMPrivateKey(
                keys.isEmpty
                    ? "found only \(documents.map(\.discriminator).joined(separator: ", "))"
                    : "found \(keys.count) private keys; give exactly one"
            )
        }

        let generic: Certificate.PrivateKey
        do {
            generic = try Certificate.PrivateKey(pemDocument: document)
        } catch {
            throw IdentityError.notAPEMPrivateKey(
                "the \(document.discriminator) block does not parse (RSA keys must have at least 2048 bits): \(error)"
            )
        }

        do {
            let publicKey = generic.publicKey
            if P256.Signing.PublicKey(publicKey) != nil {
                self = .p256(try P256.Signing.PrivateKey(derRepresentation: document.derBytes))
            } else if P384.Signing.PublicKey(publicKey) != nil {
                self = .p384(try P384.Signing.PrivateKey(derRepresentation: document.derBytes))
            } else if _RSA.Signing.PublicKey(publicKey) != nil {
                self = .rsa(try _RSA.Signing.PrivateKey(derRepresentation: document.derBytes))
            } else {
                throw IdentityError(
                    .unsupportedKey,
                    "a \(publicKey) CA key is not supported: device TLS stacks verify ECDSA P-256/P-384 and RSA"
                        + " signatures, so use one of those"
                )
            }
        } catch let error as IdentityError {
            throw error
        } catch {
            throw IdentityError.notAPEMPrivateKey("the \(document.discriminator) block does not parse: \(error)")
        }
    }

    private static let discriminators: Set<String> = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"]

    private static let encrypted = IdentityError(
        .encryptedPrivateKey,
        "the private key is encrypted; decrypt it first (openssl pkey -in key.pem -out key-plain.pem)"
    )
}
