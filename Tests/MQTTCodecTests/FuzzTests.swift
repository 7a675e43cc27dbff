import MQTTCodec
import NIOCore
import Testing

/// Random and mutated input never crashes the decoder: it yields packets, asks for more bytes,
/// or throws ``MQTTCodecError``.
@Suite("Fuzzing the decoder")
struct FuzzTests {
    /// A small deterministic generator, so a failure can be replayed.
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func decodeAll(_ bytes: [UInt8], version: MQTTProtocolVersion?) {
        var decoder = MQTTPacketDecoder(protocolVersion: version, maximumPacketSize: 4096)
        var buffer = ByteBuffer(bytes: bytes)
        do {
            while let packet = try decoder.decode(buffer: &buffer) {
                // Whatever decodes must encode again.
                var out = ByteBuffer()
                packet.encode(version: decoder.protocolVersion ?? .v5, into: &out)
            }
        } catch is MQTTCodecError {
        } catch {
            Issue.record("unexpected error \(error) for \(bytes)")
        }
    }

    @Test("random bytes", arguments: [MQTTProtocolVersion.v311, .v5, nil] as [MQTTProtocolVersion?])
    func random(version: MQTTProtocolVersion?) {
        var rng = SplitMix64(state: 42)
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...64, using: &rng)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Make plausible fixed headers common: a known type and a short remaining length.
            if count > 2 {
                bytes[0] = UInt8.random(in: 1...15, using: &rng) << 4 | (bytes[0] & 0x0F)
                bytes[1] = UInt8(count - 2)
            }
            Self.decodeAll(bytes, version: version)
        }
    }

    @Test("mutations of valid packets")
    func mutations() {
        var rng = SplitMix64(state: 7)
        var seeds: [(ByteBuffer, MQTTProtocolVersion?)] = []
        for vector in PacketVectorTests.vectors { seeds.append((ByteBuffer(hex: vector.hex), vector.version)) }
        for _ in 0..<20_000 {
            let (seed, version) = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            var bytes = Array(seed.readableBytesView)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let position = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[position] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: position)
                default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: position)
                }
                if bytes.isEmpty { break }
            }
            Self.decodeAll(bytes, version: version)
        }
    }
}
