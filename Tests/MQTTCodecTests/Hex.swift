import NIOCore

extension ByteBuffer {
    /// A buffer from hex digits; spaces are ignored so vectors can be grouped by field.
    init(hex: String) {
        let digits = Array(hex.filter { !$0.isWhitespace })
        var bytes: [UInt8] = []
        var index = 0
        while index + 1 < digits.count {
            bytes.append(UInt8(String(digits[index...index + 1]), radix: 16)!)
            index += 2
        }
        self.init(bytes: bytes)
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined() }
}

extension String {
    init(format: String, _ value: UInt8) {
        let digits = String(value, radix: 16)
        self = digits.count == 1 ? "0" + digits : digits
    }
}
