/// A parsed and validated AWS IoT policy document.
///
/// The only way to get one is ``parse(_:)``, so every document in memory has a supported
/// version, at least one statement, valid actions and compiled resources. Evaluation can then
/// trust it and do no checking on the hot path.
public struct PolicyDocument: Hashable, Sendable {
    /// The only version AWS IoT policies use, and the one in which policy variables exist.
    public static let supportedVersion = "2012-10-17"

    /// Larger documents are refused. AWS IoT allows 2048 characters of non-whitespace; Drover is
    /// more generous, but still bounds what one API call can make the broker hold and evaluate.
    public static let maximumSize = 20 * 1024

    /// `Version`, always ``supportedVersion``.
    public let version: String
    /// The statements in document order. Never empty; a single statement written as an object
    /// is a list of one.
    public let statements: [PolicyStatement]

    init(version: String, statements: [PolicyStatement]) {
        self.version = version
        self.statements = statements
    }

    /// Parses and validates `text`, or says why and where it is refused.
    ///
    /// A refused document is an expected outcome of the API (the user made a mistake), so it is
    /// a value; use `.get()` to throw it.
    public static func parse(_ text: String) -> Result<PolicyDocument, PolicyParseError> {
        parseJSON(text, maximumSize: maximumSize) { source, root throws(SourceError) in
            try PolicyValidator(source: source).document(from: root)
        }
    }
}

/// Reads `text` as JSON of at most `maximumSize` bytes and hands the tree to `build`; a refusal
/// says where it is. Shared by device policies and access key policies.
func parseJSON<T>(
    _ text: String, maximumSize: Int, _ build: ([UInt8], JSONValue) throws(SourceError) -> T
) -> Result<T, PolicyParseError> {
    let source = Array(text.utf8)
    guard source.count <= maximumSize else {
        let message = "the policy document is \(source.count) bytes; the limit is \(maximumSize)"
        return .failure(PolicyParseError(code: .documentTooLarge, message: message, line: 1, column: 1, offset: 0))
    }
    do throws(SourceError) {
        var parser = JSONParser(bytes: source)
        let root = try parser.parseDocument()
        return .success(try build(source, root))
    } catch {
        return .failure(error.located(in: source))
    }
}

/// Whether a statement grants or refuses.
public enum PolicyEffect: String, Hashable, Sendable, CustomStringConvertible {
    case allow = "Allow"
    case deny = "Deny"

    public var description: String { rawValue }
}

/// One statement: an effect on some actions over some resources.
public struct PolicyStatement: Hashable, Sendable {
    /// `Sid`, which explanations quote so that people can find the statement.
    public let sid: String?
    public let effect: PolicyEffect
    /// Never empty; a single action written as a string is a list of one.
    public let actions: [ActionPattern]
    /// Never empty; a single resource written as a string is a list of one.
    public let resources: [ResourcePattern]

    init(sid: String?, effect: PolicyEffect, actions: [ActionPattern], resources: [ResourcePattern]) {
        self.sid = sid
        self.effect = effect
        self.actions = actions
        self.resources = resources
    }
}
