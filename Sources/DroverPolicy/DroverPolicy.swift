/// # DroverPolicy
///
/// AWS IoT policy documents: parsing with error positions, policy variables, and evaluation of a
/// request against the policies attached to a principal. The module depends on nothing but the
/// standard library, so the broker's authorizer and the HTTP API share one implementation.
///
/// Invariants:
/// - A ``PolicyDocument`` exists only if it parsed and validated, so evaluation never meets an
///   unknown key, an unsupported element or an unknown variable. A refused document is a
///   ``PolicyParseError`` that carries the line, column and offset of the offending text.
/// - Every action and resource pattern is compiled once, at parse time, into segments
///   (literal, variable, `*`, `?`). Evaluation allocates no regex and, on the usual path, no
///   memory at all: it walks the UTF-8 bytes of the requested ARN.
/// - Text substituted for a variable is always literal: a client id `a*` matches `a*` only.
/// - A variable without a value (no thing attached, no such attribute) makes its resource match
///   nothing, as AWS IoT leaves it unresolved.
/// - An explicit Deny in any matching statement of any policy wins; otherwise some Allow must
///   match; otherwise the request is implicitly denied. A refusal is a ``PolicyDecision``, never
///   an error.
public enum DroverPolicyNamespace {}
