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
            let (key, scalar) = try Self.randomP256Key()
            // The public point's bytes are read from BoringSSL once, for both PEMs and the certificate.
            let point = Array(key.publicKey.x963Representation)
            return DeviceKeyPair(
                algorithm: algorithm,
                privateKey: Certificate.PrivateKey(key),
                publicKey: Certificate.PublicKey(key.publicKey),
                privateKeyPEM: pemText(type: "PRIVATE KEY", der: Self.p256PKCS8(scalar: scalar, point: point)),
                publicKeyPEM: pemText(type: Certificate.PublicKey.defaultPEMDiscriminator, der: Self.p256SPKI(point: point))
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
    static func randomP256Key() throws -> (P256.Signing.PrivateKey, [UInt8]) {
        for _ in 0..<16 {
            let scalar = secureRandomBytes(32)
            if let key = try? P256.Signing.PrivateKey(rawRepresentation: scalar) { return (key, scalar) }
        }
        throw IdentityError(.cannotIssue, "no valid P-256 key came from the random source in 16 draws")
    }

    /// The DER of the AlgorithmIdentifier id-ecPublicKey with the named curve prime256v1 (RFC 5480).
    static let p256AlgorithmIdentifier: [UInt8] = [
        0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
    ]

    /// A P-256 key's SubjectPublicKeyInfo (RFC 5480): the algorithm and the uncompressed point (65 bytes) as a BIT
    /// STRING. Every length is fixed, so the DER is written directly (the tests compare it with swift-certificates').
    static func p256SPKI(point: [UInt8]) -> [UInt8] {
        precondition(point.count == 65, "an uncompressed P-256 point is 65 bytes")
        return [0x30, 0x59] + p256AlgorithmIdentifier + [0x03, 0x42, 0x00] + point
    }

    /// A P-256 private key as PKCS#8 (RFC 5208) around an ECPrivateKey (RFC 5915) that carries its public point, the
    /// bytes CryptoKit's `derRepresentation` writes (the tests compare them).
    static func p256PKCS8(scalar: [UInt8], point: [UInt8]) -> [UInt8] {
        precondition(scalar.count == 32 && point.count == 65, "a P-256 scalar is 32 bytes, its point 65")
        return [0x30, 0x81, 0x87, 0x02, 0x01, 0x00] + p256AlgorithmIdentifier
            + [0x04, 0x6D, 0x30, 0x6B, 0x02, 0x01, 0x01, 0x04, 0x20] + scalar + [0xA1, 0x44, 0x03, 0x42, 0x00] + point
    }

    private init(algorithm: Algorithm, privateKey: Certificate.PrivateKey, privateKeyPEM: String) {
        self.algorithm = algorithm
        self.privateKey = privateKey
        self.publicKey = privateKey.publicKey
        self.privateKeyPEM = privateKeyPEM
        self.publicKeyPEM = Self.pem(of: privateKey.publicKey)
    }

    private init(algorithm: Algorithm, privateKey: Certificate.PrivateKey, publicKey: Certificate.PublicKey,
                 privateKeyPEM: String, publicKeyPEM: String) {
        self.algorithm = algorithm
        self.privateKey = privateKey
        self.publicKey = publicKey
        self.privateKeyPEM = privateKeyPEM
        self.publicKeyPEM = publicKeyPEM
    }

    static func pem(of publicKey: Certificate.PublicKey) -> String {
        var serializer = DER.Serializer()
        // A SubjectPublicKeyInfo is built from the key's own bytes and an algorithm identifier; writing it cannot fail.
        try! serializer.serialize(publicKey)
        return pemText(type: Certificate.PublicKey.defaultPEMDiscriminator, der: serializer.serializedBytes)
    }
}
