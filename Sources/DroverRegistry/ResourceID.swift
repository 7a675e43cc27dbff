/// A new resource id (a thing's, a group's, a thing type's): a random (version 4) UUID in lower case,
/// as AWS writes `thingId`.
///
/// Foundation's `UUID()` opens and reads `/dev/urandom` on every call on Linux (an `openat`, a `read`
/// and a `close` per thing, 1.5 % of the server's CPU under CreateThing). `SystemRandomNumberGenerator`
/// takes the same kernel randomness with one `getrandom` call and no file descriptor.
func newResourceID() -> String {
    var generator = SystemRandomNumberGenerator()
    let high = generator.next() as UInt64
    let low = generator.next() as UInt64
    var bytes = [UInt8](repeating: 0, count: 16)
    for index in 0..<8 {
        bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * (7 - index)))
        bytes[8 + index] = UInt8(truncatingIfNeeded: low >> (8 * (7 - index)))
    }
    bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
    bytes[8] = (bytes[8] & 0x3F) | 0x80  // variant 10xx (RFC 9562)
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var text = [UInt8]()
    text.reserveCapacity(36)
    for (index, byte) in bytes.enumerated() {
        if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}
