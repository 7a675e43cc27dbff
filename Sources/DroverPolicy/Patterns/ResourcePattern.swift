/// One entry of a statement's `Resource`: an ARN with `*`, `?` and policy variables, such as
/// `arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*`.
///
/// `*` matches any run of characters, `/` included, and `?` exactly one character. MQTT's `+`
/// and `#` mean nothing here: they are literal characters, as in AWS IoT, so a `topicfilter/a/#`
/// resource names the filter `a/#` itself. `${*}`, `${?}` and `${$}` write a literal `*`, `?`
/// and `$`, as in IAM.
public struct ResourcePattern: Hashable, Sendable, CustomStringConvertible {
    /// The pattern as written in the policy, variables unsubstituted.
    public let text: String
    let pattern: CompiledPattern

    /// Why a resource was refused: the UTF-8 offset inside the resource text, or nil when the
    /// resource as a whole is wrong.
    struct Failure: Error {
        var message: String
        var offset: Int?
    }

    /// Compiles `text`, or returns nil when it is not a valid resource pattern (see
    /// ``compile(_:)`` for why).
    public init?(_ text: String) {
        guard case .success(let pattern) = Self.compile(text) else { return nil }
        self = pattern
    }

    private init(text: String, pattern: CompiledPattern) {
        self.text = text
        self.pattern = pattern
    }

    /// Compiles a resource, refusing an empty one, one that is neither an ARN nor `*`, an
    /// unterminated `${`, and an unknown variable (at the offset of its `$`).
    static func compile(_ text: String) -> Result<ResourcePattern, Failure> {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return .failure(Failure(message: "a resource must not be empty", offset: nil)) }
        guard text == "*" || text.hasPrefix("arn:") else {
            return .failure(
                Failure(
                    message: "invalid resource \"\(text)\": a resource is an ARN (\"arn:aws:iot:...\") or \"*\"",
                    offset: nil
                )
            )
        }
        var segments: [CompiledPattern.Piece] = []
        var literal: [UInt8] = []
        func flush() {
            if !literal.isEmpty { segments.append(.literal(literal)) }
            literal = []
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "*"):
                flush()
                segments.append(.anyRun)
                index += 1
            case UInt8(ascii: "?"):
                flush()
                segments.append(.anyCharacter)
                index += 1
            case UInt8(ascii: "$") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "{"):
                guard let close = bytes[(index + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                    return .failure(Failure(message: "policy variable \"${\" has no closing '}'", offset: index))
                }
                let name = String(decoding: bytes[(index + 2)..<close], as: UTF8.self)
                switch name {
                case "*", "?", "$":
                    literal.append(contentsOf: name.utf8)
                default:
                    guard let variable = PolicyVariable(name: name[...]) else {
                        return .failure(Failure(message: Self.unknownVariableMessage(name), offset: index))
                    }
                    flush()
                    segments.append(.variable(variable))
                }
                index = close + 1
            default:
                literal.append(byte)
                index += 1
            }
        }
        flush()
        return .success(ResourcePattern(text: text, pattern: CompiledPattern(segments)))
    }

    private static func unknownVariableMessage(_ name: String) -> String {
        var message = "unknown policy variable \"${\(name)}\""
        if let near = PolicyVariable.supportedNames.first(where: { $0.lowercased() == name.lowercased() }) {
            message += " (did you mean \"${\(near)}\"?)"
        } else {
            message += "; Drover supports "
            message += PolicyVariable.supportedNames.map { "${\($0)}" }.joined(separator: ", ")
        }
        return message
    }

    /// Whether `resource`, a full ARN, matches once the variables are substituted from
    /// `context`. Substituted text is literal, and a variable without a value matches nothing.
    public func matches(_ resource: String, context: PolicyContext) -> Bool {
        var resource = resource
        return resource.withUTF8 { matches(utf8: $0, context: context) }
    }

    func matches(utf8 resource: UnsafeBufferPointer<UInt8>, context: PolicyContext) -> Bool {
        pattern.matches(resource, context: context)
    }

    public var description: String { text }
}
