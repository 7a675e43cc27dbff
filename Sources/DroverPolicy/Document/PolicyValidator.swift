/// Turns a JSON tree into a ``PolicyDocument``, refusing what AWS IoT refuses.
///
/// Every refusal points at the offending value (or key), not at the enclosing object, so the
/// user sees which of several statements is wrong. Keys are checked in source order, so the
/// first mistake in the text is the one reported. Key names are case-sensitive, as in AWS.
struct PolicyValidator {
    let source: [UInt8]

    private static let documentKeys = ["Version", "Statement"]
    private static let statementKeys = ["Sid", "Effect", "Action", "Resource"]

    func document(from root: JSONValue) throws(SourceError) -> PolicyDocument {
        guard case .object(let members) = root.kind else {
            throw invalid("a policy document must be a JSON object, not \(root.kindDescription)", at: root.offset)
        }
        var version: String?
        var statementValue: JSONValue?
        for member in members {
            switch member.key.value {
            case "Version":
                let text = try string(member.value, key: "Version")
                guard text.value == PolicyDocument.supportedVersion else {
                    throw invalid(
                        #"unsupported "Version" "\#(text.value)"; policies use "\#(PolicyDocument.supportedVersion)""#,
                        at: member.value.offset
                    )
                }
                version = text.value
            case "Statement":
                statementValue = member.value
            default:
                throw unknownKey(member.key, known: Self.documentKeys, in: "the policy document")
            }
        }
        guard let version else { throw invalid("the policy document has no \"Version\"", at: root.offset) }
        guard let statementValue else { throw invalid("the policy document has no \"Statement\"", at: root.offset) }

        var statements: [PolicyStatement] = []
        switch statementValue.kind {
        case .object:
            statements.append(try statement(from: statementValue))
        case .array(let elements):
            guard !elements.isEmpty else {
                throw invalid("\"Statement\" must not be an empty list", at: statementValue.offset)
            }
            for element in elements {
                guard case .object = element.kind else {
                    throw invalid(
                        "each statement must be an object, not \(element.kindDescription)",
                        at: element.offset
                    )
                }
                statements.append(try statement(from: element))
            }
        default:
            throw invalid(
                "\"Statement\" must be an object or a list of objects, not \(statementValue.kindDescription)",
                at: statementValue.offset
            )
        }
        return PolicyDocument(version: version, statements: statements)
    }

    private func statement(from value: JSONValue) throws(SourceError) -> PolicyStatement {
        guard case .object(let members) = value.kind else { preconditionFailure("checked by the caller") }
        var sid: String?
        var effect: PolicyEffect?
        var actions: [ActionPattern]?
        var resources: [ResourcePattern]?
        for member in members {
            switch member.key.value {
            case "Sid":
                sid = try string(member.value, key: "Sid").value
            case "Effect":
                let text = try string(member.value, key: "Effect")
                guard let parsed = PolicyEffect(rawValue: text.value) else {
                    throw invalid(
                        "\"Effect\" must be \"Allow\" or \"Deny\", not \"\(text.value)\"",
                        at: member.value.offset
                    )
                }
                effect = parsed
            case "Action":
                actions = try stringOrList(member.value, key: "Action").map { (text) throws(SourceError) in
                    guard let action = ActionPattern(text.value) else {
                        throw invalid(
                            #"invalid action "\#(text.value)": an action is "iot:" and a name, such as "iot:Publish""#,
                            at: text.offset
                        )
                    }
                    return action
                }
            case "Resource":
                resources = try stringOrList(member.value, key: "Resource").map { (text) throws(SourceError) in
                    switch ResourcePattern.compile(text.value) {
                    case .success(let resource):
                        return resource
                    case .failure(let failure):
                        guard let inner = failure.offset else { throw invalid(failure.message, at: text.offset) }
                        throw invalid(failure.message, at: JSONParser.sourceOffset(of: inner, in: text, source: source))
                    }
                }
            case "Condition":
                throw unsupported(
                    "\"Condition\" is not supported: Drover policies have no conditions, "
                        + "and ignoring one would grant more than it means",
                    at: member.key.offset
                )
            case "NotAction":
                throw unsupported(
                    "\"NotAction\" is not supported: list the actions in \"Action\"",
                    at: member.key.offset
                )
            case "NotResource":
                throw unsupported(
                    "\"NotResource\" is not supported: list the resources in \"Resource\"",
                    at: member.key.offset
                )
            case "Principal", "NotPrincipal":
                throw invalid(
                    #""\#(member.key.value)" is not used in AWS IoT policies: "#
                        + "attach the policy to a certificate instead",
                    at: member.key.offset
                )
            default:
                throw unknownKey(member.key, known: Self.statementKeys, in: "a statement")
            }
        }
        guard let effect else { throw invalid("the statement has no \"Effect\"", at: value.offset) }
        guard let actions else { throw invalid("the statement has no \"Action\"", at: value.offset) }
        guard let resources else { throw invalid("the statement has no \"Resource\"", at: value.offset) }
        return PolicyStatement(sid: sid, effect: effect, actions: actions, resources: resources)
    }

    // MARK: Shapes

    private func string(_ value: JSONValue, key: String) throws(SourceError) -> JSONString {
        guard case .string(let text) = value.kind else {
            throw invalid("\"\(key)\" must be a string, not \(value.kindDescription)", at: value.offset)
        }
        return text
    }

    /// A string, or a non-empty list of strings, as a list.
    private func stringOrList(_ value: JSONValue, key: String) throws(SourceError) -> [JSONString] {
        switch value.kind {
        case .string(let text):
            return [text]
        case .array(let elements):
            guard !elements.isEmpty else { throw invalid("\"\(key)\" must not be an empty list", at: value.offset) }
            var strings: [JSONString] = []
            for element in elements {
                guard case .string(let text) = element.kind else {
                    throw invalid(
                        #""\#(key)" must be a string or a list of strings; "#
                            + "found \(element.kindDescription) in the list",
                        at: element.offset
                    )
                }
                strings.append(text)
            }
            return strings
        default:
            throw invalid(
                "\"\(key)\" must be a string or a list of strings, not \(value.kindDescription)",
                at: value.offset
            )
        }
    }

    // MARK: Errors

    private func unknownKey(_ key: JSONString, known: [String], in place: String) -> SourceError {
        var message = "unknown key \"\(key.value)\" in \(place)"
        if let near = known.first(where: { $0.lowercased() == key.value.lowercased() }) {
            message += " (did you mean \"\(near)\"?)"
        }
        return invalid(message, at: key.offset)
    }

    private func invalid(_ message: String, at offset: Int) -> SourceError {
        SourceError(.invalidPolicy, message, at: offset)
    }

    private func unsupported(_ message: String, at offset: Int) -> SourceError {
        SourceError(.unsupportedElement, message, at: offset)
    }
}
