/// What an API access key may do: an IAM-style policy document.
///
/// ```json
/// {"Version": "2012-10-17", "Statement": [
///   {"Effect": "Allow", "Action": ["iot:Describe*", "iot:List*"], "Resource": "*"},
///   {"Effect": "Deny", "Action": "iot:DescribeThing", "Resource": "arn:aws:iot:*:*:thing/secret-*"}]}
/// ```
///
/// Actions are `service:Name` with `*` and `?`: `iot:` names the control plane and, as in AWS
/// IAM, the data plane too (`iot:UpdateThingShadow`, `iot:Publish`); `iotdata:` names only the
/// data plane; `drover:` names Drover's own operations (access keys, audit, fleet
/// configuration); a bare `*` is everything. Resources are ARNs with `*` and `?`. As in IAM, what
/// no statement allows is denied, and an explicit Deny wins. `Condition`, `NotAction` and
/// `NotResource` are refused rather than ignored.
public struct APIPolicy: Hashable, Sendable {
    public struct Statement: Hashable, Sendable {
        public let effect: PolicyEffect
        public let actions: [String]
        public let resources: [String]
    }

    public let statements: [Statement]

    /// The largest document accepted, in bytes (IAM's limit for a managed policy is 6 144
    /// characters; the roles fit easily).
    public static let maximumSize = 20_480

    /// One API request: the operation and the resource it acts on.
    public struct Request: Hashable, Sendable {
        /// `iot`, `iotdata` or `drover`.
        public var service: String
        /// `CreateThing`, `UpdateThingShadow`, `CreateAccessKey`.
        public var operation: String
        /// The ARN acted on, or `*` for operations that act on no one resource (lists).
        public var resource: String

        public init(service: String, operation: String, resource: String) {
            self.service = service
            self.operation = operation
            self.resource = resource
        }

        public var action: String { "\(service):\(operation)" }
    }

    /// Whether the policy allows `request`.
    public func allows(_ request: Request) -> Bool {
        var allowed = false
        for statement in statements where statement.matches(request) {
            if statement.effect == .deny { return false }
            allowed = true
        }
        return allowed
    }

    /// Whether every request `other` allows is allowed here too, so that a key holding this
    /// policy may hand `other` to a new key. Sound, not complete: a pattern is covered when one
    /// of ours matches it symbol for symbol, and each of our Deny statements must appear in
    /// `other` as well.
    public func covers(_ other: APIPolicy) -> Bool {
        let ourAllows = statements.filter { $0.effect == .allow }
        for statement in other.statements where statement.effect == .allow {
            for action in statement.actions {
                for resource in statement.resources {
                    let covered = ourAllows.contains { mine in
                        mine.actions.contains { Self.action(mine: $0, covers: action) }
                            && mine.resources.contains { Glob.covers($0, resource) }
                    }
                    if !covered { return false }
                }
            }
        }
        for deny in statements where deny.effect == .deny {
            let kept = other.statements.contains { theirs in
                theirs.effect == .deny
                    && deny.actions.allSatisfy { action in theirs.actions.contains { Self.action(mine: $0, covers: action) } }
                    && deny.resources.allSatisfy { resource in theirs.resources.contains { Glob.covers($0, resource) } }
            }
            if !kept { return false }
        }
        return true
    }

    /// Whether action pattern `mine` covers action pattern `theirs`, services included:
    /// `iot:` covers `iotdata:` of the same name, and `*` everything.
    static func action(mine: String, covers theirs: String) -> Bool {
        if Glob.covers(mine, theirs) { return true }
        // `iot:X` covers `iotdata:X`: iot: names the data plane as well.
        if theirs.hasPrefix("iotdata:"), mine.hasPrefix("iot:") {
            return Glob.covers(mine, "iot:" + theirs.dropFirst("iotdata:".count))
        }
        return false
    }

    // MARK: Parsing

    /// Parses and validates `text`, or says why and where it is refused.
    public static func parse(_ text: String) -> Result<APIPolicy, PolicyParseError> {
        parseJSON(text, maximumSize: maximumSize) { _, root throws(SourceError) in try document(from: root) }
    }

    private static func document(from root: JSONValue) throws(SourceError) -> APIPolicy {
        guard case .object(let members) = root.kind else {
            throw SourceError(.invalidPolicy, "a policy is a JSON object with Version and Statement", at: root.offset)
        }
        var statements: [Statement] = []
        var sawStatement = false
        for member in members {
            switch member.key.value {
            case "Version":
                guard case .string(let version) = member.value.kind, version.value == "2012-10-17" || version.value == "2008-10-17"
                else { throw SourceError(.invalidPolicy, "Version must be \"2012-10-17\"", at: member.value.offset) }
            case "Id":
                break
            case "Statement":
                sawStatement = true
                switch member.value.kind {
                case .array(let values):
                    for value in values { statements.append(try statement(from: value)) }
                case .object:
                    statements.append(try statement(from: member.value))
                default:
                    throw SourceError(.invalidPolicy, "Statement must be a statement or a list of them", at: member.value.offset)
                }
            default:
                throw SourceError(.invalidPolicy, "unknown key \"\(member.key.value.prefix(64))\" in the policy", at: member.key.offset)
            }
        }
        guard sawStatement, !statements.isEmpty else {
            throw SourceError(.invalidPolicy, "the policy needs at least one Statement", at: root.offset)
        }
        return APIPolicy(statements: statements)
    }

    private static func statement(from value: JSONValue) throws(SourceError) -> Statement {
        guard case .object(let members) = value.kind else {
            throw SourceError(.invalidPolicy, "a statement is an object with Effect, Action and Resource", at: value.offset)
        }
        var effect: PolicyEffect?
        var actions: [String]?
        var resources: [String]?
        for member in members {
            switch member.key.value {
            case "Sid":
                break
            case "Effect":
                guard case .string(let text) = member.value.kind, let parsed = PolicyEffect(rawValue: text.value) else {
                    throw SourceError(.invalidPolicy, "Effect must be \"Allow\" or \"Deny\"", at: member.value.offset)
                }
                effect = parsed
            case "Action":
                actions = try strings(member.value, "Action")
                for (index, action) in (actions ?? []).enumerated() where !isValidAction(action) {
                    throw SourceError(
                        .invalidPolicy,
                        "invalid action \"\(action.prefix(64))\": an action is iot:, iotdata: or drover: and a name (wildcards * and ? allowed), or *",
                        at: offset(of: member.value, index))
                }
            case "Resource":
                resources = try strings(member.value, "Resource")
                for (index, resource) in (resources ?? []).enumerated() where !(resource == "*" || resource.hasPrefix("arn:")) {
                    throw SourceError(.invalidPolicy, "a resource is an ARN (arn:aws:iot:...) or *", at: offset(of: member.value, index))
                }
            case "Condition", "NotAction", "NotResource", "Principal", "NotPrincipal":
                throw SourceError(
                    .unsupportedElement, "\(member.key.value) is not supported in access key policies: it is refused, not ignored",
                    at: member.key.offset)
            default:
                throw SourceError(.invalidPolicy, "unknown key \"\(member.key.value.prefix(64))\" in a statement", at: member.key.offset)
            }
        }
        guard let effect, let actions, let resources else {
            throw SourceError(.invalidPolicy, "a statement needs Effect, Action and Resource", at: value.offset)
        }
        return Statement(effect: effect, actions: actions, resources: resources)
    }

    private static func strings(_ value: JSONValue, _ name: String) throws(SourceError) -> [String] {
        switch value.kind {
        case .string(let text):
            return [text.value]
        case .array(let values) where !values.isEmpty && values.count <= 256:
            var out: [String] = []
            for element in values {
                guard case .string(let text) = element.kind else {
                    throw SourceError(.invalidPolicy, "\(name) must be a string or a list of strings", at: element.offset)
                }
                out.append(text.value)
            }
            return out
        default:
            throw SourceError(.invalidPolicy, "\(name) must be a string or a list of 1 to 256 strings", at: value.offset)
        }
    }

    private static func offset(of value: JSONValue, _ index: Int) -> Int {
        if case .array(let values) = value.kind, values.indices.contains(index) { return values[index].offset }
        return value.offset
    }

    static func isValidAction(_ action: String) -> Bool {
        if action == "*" { return true }
        for prefix in ["iot:", "iotdata:", "drover:"] where action.hasPrefix(prefix) {
            let name = action.dropFirst(prefix.count)
            return !name.isEmpty && name.count <= 128
                && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || $0 == "*" || $0 == "?" }
        }
        return false
    }
}

extension APIPolicy.Statement {
    func matches(_ request: APIPolicy.Request) -> Bool {
        let action = request.action
        let actionMatches = actions.contains { pattern in
            if Glob.matches(pattern, action) { return true }
            // iot: names the data plane as well: iot:Publish allows iotdata:Publish.
            if request.service == "iotdata" { return Glob.matches(pattern, "iot:" + request.operation) }
            return false
        }
        return actionMatches && resources.contains { Glob.matches($0, request.resource) }
    }
}

/// `*` (any run, `/` included) and `?` (one character) over Unicode scalars, without recursion
/// and in time linear in the product of the lengths at worst.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || (p[pi] != "*" && p[pi] == t[ti])) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Whether every string that `inner` matches is matched by `outer`: `outer`'s `*` covers any
    /// run of `inner`'s symbols, `?` covers one character or `?`, a letter only itself.
    static func covers(_ outer: String, _ inner: String) -> Bool {
        let p = Array(outer.unicodeScalars), q = Array(inner.unicodeScalars)
        // reach[j]: outer[..<i] can produce inner[..<j].
        var reach = [Bool](repeating: false, count: q.count + 1)
        reach[0] = true
        for symbol in p {
            var next = [Bool](repeating: false, count: q.count + 1)
            if symbol == "*" {
                var any = false
                for j in 0...q.count {
                    any = any || reach[j]
                    next[j] = any
                }
            } else {
                for j in 0..<q.count where reach[j] {
                    let theirs = q[j]
                    if theirs == "*" { continue }
                    if symbol == "?" || symbol == theirs { next[j + 1] = true }
                }
            }
            reach = next
        }
        return reach[q.count]
    }
}
