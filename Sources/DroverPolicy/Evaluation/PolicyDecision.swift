/// The outcome of evaluating a request: allowed or not, which statement decided, and why.
///
/// A refusal is an outcome, not an error. The decision keeps the facts (policy name, statement,
/// the patterns that matched) and builds ``explanation`` only when asked, so that evaluating on
/// the broker's hot path does not format strings nobody reads.
public struct PolicyDecision: Hashable, Sendable, CustomStringConvertible {
    /// How the request was decided, in AWS IoT's terms.
    public enum Outcome: Hashable, Sendable {
        /// Some Allow matched, and no Deny did.
        case allowed
        /// A Deny matched; it wins over any Allow, in this or another policy.
        case explicitDeny
        /// No statement matched at all.
        case implicitDeny
    }

    /// The statement that decided, as written in its policy.
    public struct Statement: Hashable, Sendable {
        public var policyName: String
        /// 0-based position in the document's statements (explanations count from 1).
        public var index: Int
        public var sid: String?
        public var effect: PolicyEffect
        /// The first of the statement's actions that matched the request, as written.
        public var action: String
        /// The first of the statement's resources that matched the request, as written
        /// (variables unsubstituted).
        public var resource: String

        public init(
            policyName: String,
            index: Int,
            sid: String?,
            effect: PolicyEffect,
            action: String,
            resource: String
        ) {
            self.policyName = policyName
            self.index = index
            self.sid = sid
            self.effect = effect
            self.action = action
            self.resource = resource
        }
    }

    public var outcome: Outcome
    /// The deciding statement: the Deny for an explicit deny, the first matching Allow for an
    /// allow, nil for an implicit deny.
    public var statement: Statement?
    public var request: PolicyRequest

    public init(outcome: Outcome, statement: Statement?, request: PolicyRequest) {
        self.outcome = outcome
        self.statement = statement
        self.request = request
    }

    public var isAllowed: Bool { outcome == .allowed }

    /// For people: `denied by policy 'p1', statement 2 (Sid "NoOthers"): Deny iot:Publish on
    /// arn:...:topic/things/other/*`, or `no statement allows iot:Publish on arn:...: implicit
    /// deny`.
    public var explanation: String {
        guard let statement else {
            return "no statement allows \(request.action) on \(request.resource): implicit deny"
        }
        var text = outcome == .allowed ? "allowed" : "denied"
        text += " by policy '\(statement.policyName)', statement \(statement.index + 1)"
        if let sid = statement.sid { text += " (Sid \"\(sid)\")" }
        text += ": \(statement.effect) \(statement.action) on \(statement.resource)"
        return text
    }

    public var description: String { explanation }
}
