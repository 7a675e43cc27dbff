/// Why bytes were not accepted as JSON, and where.
///
/// The kinds matter to the shadow service, which answers each with a different AWS error: bad
/// syntax is 400, nesting past the limit is 400 with its own message, too many bytes is 413, and
/// bytes that are not UTF-8 are 415.
public struct JSONParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A struct over a private enum, so kinds can be added later.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case malformed
            case tooLarge
            case tooDeep
            case invalidUTF8
        }

        private var backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// Not RFC 8259 JSON: a trailing comma, a missing quote, a duplicate key, trailing text.
        public static let malformed = Code(.malformed)
        /// More bytes than ``JSONParseLimits/maximumBytes``; nothing was parsed.
        public static let tooLarge = Code(.tooLarge)
        /// Objects and arrays nested deeper than ``JSONParseLimits/maximumDepth``.
        public static let tooDeep = Code(.tooDeep)
        /// The bytes are not valid UTF-8; nothing was parsed.
        public static let invalidUTF8 = Code(.invalidUTF8)

        public var description: String {
            switch backing {
            case .malformed: "malformed"
            case .tooLarge: "tooLarge"
            case .tooDeep: "tooDeep"
            case .invalidUTF8: "invalidUTF8"
            }
        }
    }

    public var code: Code
    /// What is wrong: `expected ',' or '}'`.
    public var message: String
    /// 0-based offset of the offending byte.
    public var offset: Int

    public init(code: Code, message: String, offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String {
        "\(message) at offset \(offset)"
    }
}

/// Bounds that the parser enforces while it reads, so that a hostile payload can exhaust neither
/// memory nor the stack.
public struct JSONParseLimits: Hashable, Sendable {
    /// The largest input accepted, in bytes; checked before anything is parsed.
    public var maximumBytes: Int
    /// The deepest nesting accepted. The outermost object or array is depth 1, so a maximum of
    /// 1 accepts `{"a": 1}` and refuses `{"a": {}}`; scalars do not count.
    public var maximumDepth: Int

    public init(maximumBytes: Int = 1 << 20, maximumDepth: Int = 64) {
        self.maximumBytes = maximumBytes
        self.maximumDepth = maximumDepth
    }
}
