/// Decides `request` against the policies attached to a principal, as AWS IoT does: an
/// explicit Deny in any matching statement wins; otherwise the request is allowed if some Allow
/// matches; otherwise it is implicitly denied.
///
/// A statement matches when one of its actions matches the request's action and one of its
/// resources matches the request's resource, with variables substituted from `context`.
/// Policies and statements are tried in order, so the reported Allow is the first one; once an
/// Allow is known only Deny statements are still looked at, and the first matching Deny ends
/// the evaluation. No memory is allocated on the way (only ``PolicyDecision/explanation``
/// formats text, when it is read).
public func evaluate(_ policies: [NamedPolicy], _ request: PolicyRequest, context: PolicyContext) -> PolicyDecision {
    var action = request.action.rawValue
    var resource = request.resource
    let match = action.withUTF8 { action in
        resource.withUTF8 { resource in
            decidingMatch(policies, action: action, resource: resource, context: context)
        }
    }
    guard let match else {
        return PolicyDecision(outcome: .implicitDeny, statement: nil, request: request)
    }
    let policy = policies[match.policy]
    let statement = policy.document.statements[match.statement]
    let deciding = PolicyDecision.Statement(
        policyName: policy.name,
        index: match.statement,
        sid: statement.sid,
        effect: statement.effect,
        action: statement.actions[match.action].text,
        resource: statement.resources[match.resource].text
    )
    return PolicyDecision(
        outcome: statement.effect == .deny ? .explicitDeny : .allowed,
        statement: deciding,
        request: request
    )
}

/// Where a matching statement is, by index, so that the loop copies no strings; the decision
/// is built once, from the statement that decided.
private struct StatementMatch {
    var policy: Int
    var statement: Int
    var action: Int
    var resource: Int
}

/// The deciding statement (a Deny, else the first Allow), or nil for an implicit deny.
private func decidingMatch(
    _ policies: [NamedPolicy],
    action: UnsafeBufferPointer<UInt8>,
    resource: UnsafeBufferPointer<UInt8>,
    context: PolicyContext
) -> StatementMatch? {
    var allow: StatementMatch? = nil
    for policyIndex in policies.indices {
        let statements = policies[policyIndex].document.statements
        for statementIndex in statements.indices {
            let effect = statements[statementIndex].effect
            // With an Allow in hand, only a Deny can change the outcome.
            if allow != nil && effect == .allow { continue }
            guard let actionIndex = statements[statementIndex].actions.firstIndex(where: { $0.matches(utf8: action) }),
                let resourceIndex = statements[statementIndex].resources.firstIndex(where: {
                    $0.matches(utf8: resource, context: context)
                })
            else { continue }
            let match = StatementMatch(
                policy: policyIndex,
                statement: statementIndex,
                action: actionIndex,
                resource: resourceIndex
            )
            if effect == .deny { return match }
            allow = match
        }
    }
    return allow
}
