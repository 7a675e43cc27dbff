import Crypto
import SwiftASN1
import Testing
import X509

@testable import DroverIdentity

@Suite("PEM text")
struct PEMTextTests {
    @Test("pemText writes what PEMDocument writes, for every length across three lines")
    func matchesPEMDocument() {
        var generator = SystemRandomNumberGenerator()
        for length in 0...200 {
            let der = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(pemText(type: "CERTIFICATE", der: der) == PEMDocument(type: "CERTIFICATE", derBytes: der).pemString + "\n",
                    "length \(length)")
        }
    }

    @Test("a device's P-256 key pair: the PEMs are swift-crypto's own, they parse back to the same key, and no two keys are alike")
    func deviceKeys() throws {
        var seen: Set<[UInt8]> = []
        for _ in 0..<20 {
            let keys = try DeviceKeyPair.generate(.ecdsaP256)
            let parsed = try P256.Signing.PrivateKey(pemRepresentation: keys.privateKeyPEM)
            seen.insert(Array(parsed.rawRepresentation))
            #expect(keys.privateKeyPEM == parsed.pemRepresentation + "\n")
            #expect(keys.publicKeyPEM == parsed.publicKey.pemRepresentation + "\n")
            #expect(keys.publicKeyPEM == DeviceKeyPair.pem(of: keys.privateKey.publicKey))
            #expect(keys.publicKey == Certificate.PublicKey(parsed.publicKey))
            let signature = try parsed.signature(for: [1, 2, 3])
            #expect(parsed.publicKey.isValidSignature(signature, for: [1, 2, 3]))
        }
        #expect(seen.count == 20)
    }

    @Test("secure random bytes: the length asked for, and no two draws alike; serial numbers stay within 20 octets")
    func randomBytes() {
        var seen: Set<[UInt8]> = []
        for count in [1, 20, 32, 64] {
            for _ in 0..<50 {
                let bytes = secureRandomBytes(count)
                #expect(bytes.count == count)
                seen.insert(bytes)
            }
        }
        // 1-byte draws may repeat among 50; the 150 longer ones may not.
        #expect(seen.count >= 150 + 1)
        for _ in 0..<200 {
            let serial = Certificate.SerialNumber.randomForIssuance()
            #expect(serial.bytes.count == 20)
            #expect((serial.bytes.first ?? 0) & 0xC0 == 0x40)
        }
    }
}
