/// A JSON number that remembers whether it was written as an integer.
///
/// Devices compare what they sent with what comes back, so `5` must come back as `5`, not `5.0`:
/// a number written without a fraction or an exponent that fits in 64 bits is kept as an
/// integer, and every other number as a `Double`. An integer literal too large for 64 bits is
/// kept as a `Double` (the precision a JSON parser in most languages would keep).
///
/// Equality is by numeric value, so `5`, `5.0` and `5e0` are equal (the delta of a desired `5`
/// and a reported `5.0` is empty), while the written form survives for serialization.
///
/// Invariant: the value is finite. JSON has no NaN or infinity, and a literal that overflows a
/// `Double` is refused by the parser.
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible {
    enum Storage: Sendable {
        case integer(Int64)
        case floating(Double)
    }

    let storage: Storage

    public init(_ value: Int64) {
        storage = .integer(value)
    }

    public init(_ value: Int) {
        storage = .integer(Int64(value))
    }

    /// Nil for NaN and the infinities, which JSON cannot represent.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        storage = .floating(value)
    }

    /// Whether the number was written (or made) as an integer.
    public var isInteger: Bool {
        if case .integer = storage { return true }
        return false
    }

    /// The value as an integer, if it is one exactly: `5` and `5.0` give 5, `5.5` gives nil.
    public var int64Value: Int64? {
        switch storage {
        case .integer(let value): value
        case .floating(let value): Int64(exactly: value)
        }
    }

    public var doubleValue: Double {
        switch storage {
        case .integer(let value): Double(value)
        case .floating(let value): value
        }
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.integer(let a), .integer(let b)): a == b
        case (.floating(let a), .floating(let b)): a == b
        case (.integer(let a), .floating(let b)), (.floating(let b), .integer(let a)):
            // Exact: 2^53 + 1 is not equal to the Double nearest to it.
            Int64(exactly: b) == a
        }
    }

    public func hash(into hasher: inout Hasher) {
        // Consistent with ==: every value equal to an integer hashes as that integer.
        if let integer = int64Value {
            hasher.combine(integer)
        } else {
            hasher.combine(doubleValue)
        }
    }

    /// The JSON text: `5`, `-12`, `5.0`, `0.1`, `1e+20`. Swift prints the shortest text that
    /// reads back as the same `Double`, and all of its forms for finite values are valid JSON.
    public var description: String {
        switch storage {
        case .integer(let value): String(value)
        case .floating(let value): value.description
        }
    }
}
