/// Why a policy document was refused, and where.
///
/// The position is that of the offending text: the character where the JSON went wrong, the
/// value of a key that has the wrong type or content, the name of an unknown key, the `$` of an
/// unknown variable, or the `{` of a statement that lacks a key. `description` reads
/// `expected ',' or '}' at line 3, column 14`, which is what the API returns to the caller.
public struct PolicyParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of refusal, for callers that map errors (the HTTP API answers
    /// `MalformedPolicyException` for all of them, but logs and tests can tell them apart).
    /// A struct over a private enum, so kinds can be added later.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case malformedJSON
            case invalidPolicy
            case unsupportedElement
            case documentTooLarge
        }

        private var backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The text is not JSON: a trailing comma, a missing quote, an unexpected character.
        public static let malformedJSON = Code(.malformedJSON)
        /// The JSON is not a valid policy: a missing or unknown key, a wrong type, an invalid
        /// version, effect, action or resource, an unknown variable.
        public static let invalidPolicy = Code(.invalidPolicy)
        /// An element that AWS IoT policies may have but Drover does not evaluate:
        /// `Condition`, `NotAction`, `NotResource`. Refused rather than ignored, since ignoring a
        /// condition would grant more than its author meant.
        public static let unsupportedElement = Code(.unsupportedElement)
        /// The document is larger than ``PolicyDocument/maximumSize``.
        public static let documentTooLarge = Code(.documentTooLarge)

        public var description: String {
            switch backing {
            case .malformedJSON: "malformedJSON"
            case .invalidPolicy: "invalidPolicy"
            case .unsupportedElement: "unsupportedElement"
            case .documentTooLarge: "documentTooLarge"
            }
        }
    }

    public var code: Code
    /// What is wrong, without the position: `expected ',' or '}'`.
    public var message: String
    /// 1-based line of the offending text.
    public var line: Int
    /// 1-based column of the offending text, counted in characters from the start of its line.
    public var column: Int
    /// 0-based offset of the offending text, in UTF-8 bytes from the start of the document.
    public var offset: Int

    public init(code: Code, message: String, line: Int, column: Int, offset: Int) {
        self.code = code
        self.message = message
        self.line = line
        self.column = column
        self.offset = offset
    }

    public var description: String {
        "\(message) at line \(line), column \(column)"
    }
}

/// A refusal that knows its byte offset but not yet its line and column; those are computed
/// once, from the source, when the parse fails. Internal: the parser and the validator throw it.
struct SourceError: Error {
    var code: PolicyParseError.Code
    var message: String
    var offset: Int

    init(_ code: PolicyParseError.Code, _ message: String, at offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    func located(in source: [UInt8]) -> PolicyParseError {
        let offset = min(max(offset, 0), source.count)
        var line = 1
        var lineStart = 0
        for position in 0..<offset where source[position] == UInt8(ascii: "\n") {
            line += 1
            lineStart = position + 1
        }
        let column = String(decoding: source[lineStart..<offset], as: UTF8.self).count + 1
        return PolicyParseError(code: code, message: message, line: line, column: column, offset: offset)
    }
}
