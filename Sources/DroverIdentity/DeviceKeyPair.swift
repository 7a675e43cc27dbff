import Crypto
import SwiftASN1
import X509
import _CryptoExtras

/// A key pair made by the server for a device, as AWS IoT's `CreateKeysAndCertificate` returns it.
///
/// The private key leaves the server once, in the API response, and is not stored; the registry keeps only the
/// certificate. The PEM formats are the ones AWS returns, so device provisioning scripts written for AWS work:
/// - `publicKeyPEM` is an X.509 SubjectPublicKeyInfo, `-----BEGIN PUBLIC KEY-----`;
/// - `privateKeyPEM` is PKCS#1 `-----BEGIN RSA PRIVATE KEY-----` for RSA keys (what AWS returns), and PKCS#8
///   `-----BEGIN PRIVATE KEY-----` for EC keys. Both are read by OpenSSL, mbedTLS and the AWS IoT Device SDKs.
public struct DeviceKeyPair: Sendable {
    /// The kind of key. A public struct over an internal enum, so key types can be added later.
    public struct Algorithm: Hashable, Sendable, CustomStringConvertible {
        enum Backing: Hashable, Sendable {
            case ecdsaP256
            case rsa2048
        }

        let backing: Backing

        init(backing: Backing) { self.backing = backing }

        /// ECDSA on NIST P-256: small, fast, and supported by every current device TLS stack.
        public static let ecdsaP256 = Algorithm(backing: .ecdsaP256)
        /// RSA with a 2048-bit modulus: what AWS IoT's `CreateKeysAndCertificate` makes, for older devices.
        public static let rsa2048 = Algorithm(backing: .rsa2048)

        public var description: String {
            switch self.backing {
            case .ecdsaP256: "ECDSA P-256"
            case .rsa2048: "RSA 2048"
            }
        }

        /// The names AWS gives the key types (`RSA_2048`, `EC_prime256v1`), which Drover's
        /// configuration and API take.
        public var awsName: String {
            switch self.backing {
            case .ecdsaP256: "EC_prime256v1"
            case .rsa2048: "RSA_2048"
            }
        }

        public static let all: [Algorithm] = [.rsa2048, .ecdsaP256]

        /// The algorithm of an AWS name; nil for any other text.
        public init?(awsName: String) {
            guard let known = Self.all.first(where: { $0.awsName == awsName }) else { return nil }
            self = known
        }
    }

    public let algorithm: Algorithm
    /// The public key, to pass to `CertificateAuthority.issueDeviceCertificate(publicKey:...)`.
    public let publicKey: Certificate.PublicKey
    /// The private key, for a caller that signs with it directly (a CSR, a test client).
    public let privateKey: Certificate.PrivateKey
    public let publicKeyPEM: String
    public let privateKeyPEM: String

    /// Generates a new key pair from the system's secure random source.
    public static func generate(_ algorithm: Algorithm) throws -> DeviceKeyPair {
        switch algorithm.backing {
        case .ecdsaP256:
            let key = try Self.randomP256Key()
            return DeviceKeyPair(
                algorithm: algorithm,
                privateKey: Certificate.PrivateKey(key),
                privateKeyPEM: pemText(type: "PRIVATE KEY", der: Array(key.derRepresentation))
            )
        case .rsa2048:
            let key: _RSA.Signing.PrivateKey
            do {
                key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            } catch {
                throw IdentityError(.cannotIssue, "the RSA key could not be generated: \(error)")
            }
            return DeviceKeyPair(
                algorithm: algorithm,
                privateKey: Certificate.PrivateKey(key),
                privateKeyPEM: key.pemRepresentation + "\n"
            )
        }
    }

    /// A P-256 private key: a scalar of 32 bytes from the system's secure random source, taken if it is in
    /// [1, n-1] (all but a 2^-32 share of draws are). `P256.Signing.PrivateKey()` draws the same way but then also
    /// retries for a "compact representable" key and runs FIPS's pairwise sign-and-verify test on each try, which
    /// together cost more than the rest of CreateKeysAndCertificate.
    static func randomP256Key() throws -> P256.Signing.PrivateKey {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<16 {
            var scalar = [UInt8](repeating: 0, count: 32)
            for index in stride(from: 0, to: 32, by: 8) {
                withUnsafeBytes(of: generator.next().littleEndian) { scalar.replaceSubrange(index..<index + 8, with: $0) }
            }
            if let key = try? P256.Signing.PrivateKey(rawRepresentation: scalar) { return key }
        }
        throw IdentityError(.cannotIssue, "no valid P-256 key came from the random source in 16 draws")
    }

    private init(algorithm: Algorithm, privateKey: Certificate.PrivateKey, privateKeyPEM: String) {
        self.algorithm = algorithm
        self.privateKey = privateKey
        self.publicKey = privateKey.publicKey
        self.privateKeyPEM = privateKeyPEM
        self.publicKeyPEM = Self.pem(of: privateKey.publicKey)
    }

    private static func pem(of publicKey: Certificate.PublicKey) -> String {
        var serializer = DER.Serializer()
        // A SubjectPublicKeyInfo is built from the key's own bytes and an algorithm identifier; writing it cannot fail.
        try! serializer.serialize(publicKey)
        return pemText(type: Certificate.PublicKey.defaultPEMDiscriminator, der: serializer.serializedBytes)
    }
}
