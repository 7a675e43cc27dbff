import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SwiftASN1
import X509

/// The PEM text of a certificate, ending in a newline as `openssl` writes it and as AWS IoT returns `certificatePem`.
public func pem(of certificate: Certificate) -> String {
    pemText(type: Certificate.defaultPEMDiscriminator, der: derBytes(of: certificate))
}

/// `-----BEGIN TYPE-----`, the DER in base64 in lines of 64 characters, `-----END TYPE-----`, each line ending in a
/// newline: what `PEMDocument.pemString` writes (plus its last newline), with the lines cut on bytes. (That one
/// measures its lines in characters of a String, which cost more than the signature of the certificate.)
func pemText(type: String, der: [UInt8]) -> String {
    let base64 = Array(Data(der).base64EncodedString().utf8)
    var out: [UInt8] = []
    out.reserveCapacity(base64.count + base64.count / 64 + 2 * type.utf8.count + 40)
    out.append(contentsOf: "-----BEGIN \(type)-----\n".utf8)
    for start in stride(from: 0, to: base64.count, by: 64) {
        out.append(contentsOf: base64[start..<min(start + 64, base64.count)])
        out.append(UInt8(ascii: "\n"))
    }
    out.append(contentsOf: "-----END \(type)-----\n".utf8)
    return String(decoding: out, as: UTF8.self)
}

/// The DER encoding of a certificate: the bytes its certificate id is the hash of.
func derBytes(of certificate: Certificate) -> [UInt8] {
    var serializer = DER.Serializer()
    // `Certificate` keeps the DER of its three parts (the bytes it was parsed from or signed over) and its
    // serialisation only writes them back inside a SEQUENCE, which cannot fail.
    try! serializer.serialize(certificate)
    return serializer.serializedBytes
}

/// Picks documents out of PEM text that may hold several (a key file from `openssl ecparam -genkey` starts with
/// an `EC PARAMETERS` block; a CA file may carry comments or a bundle).
enum PEMBlocks {
    static func documents(in text: String) -> [PEMDocument]? {
        guard let documents = try? PEMDocument.parseMultiple(pemString: text), !documents.isEmpty else {
            return nil
        }
        return documents
    }

    /// The DER of the one certificate in `text`. More than one is refused: which of them is meant is for the caller
    /// to say.
    static func singleCertificateDER(in text: String) throws -> [UInt8] {
        guard let documents = Self.documents(in: text) else {
            throw IdentityError.notAPEMCertificate("no -----BEGIN CERTIFICATE----- block")
        }
        let certificates = documents.filter { $0.discriminator == Certificate.defaultPEMDiscriminator }
        guard certificates.count == 1 else {
            throw IdentityError.notAPEMCertificate(
                certificates.isEmpty
                    ? "no -----BEGIN CERTIFICATE----- block"
                    : "found \(certificates.count) certificates; give one at a time"
            )
        }
        return certificates[0].derBytes
    }
}

/// `count` bytes from the kernel's secure random source in one `read` of `/dev/urandom`, where
/// `SystemRandomNumberGenerator` makes a system call for every eight bytes (and `UInt8.random` for every byte).
func secureRandomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    #if canImport(Glibc)
    if urandom >= 0, bytes.withUnsafeMutableBytes({ read(urandom, $0.baseAddress, $0.count) }) == count { return bytes }
    #endif
    var generator = SystemRandomNumberGenerator()
    for index in bytes.indices { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
    return bytes
}

#if canImport(Glibc)
/// Opened once, for the life of the process.
private let urandom: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
#endif
