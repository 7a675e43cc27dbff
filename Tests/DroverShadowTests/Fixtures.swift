import Testing

@testable import DroverShadow

/// Parses JSON written in a test; a fixture that is not JSON fails the test that uses it.
func json(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue {
    switch JSONValue.parse(text) {
    case .success(let value):
        return value
    case .failure(let error):
        Issue.record("fixture is not JSON: \(error)", sourceLocation: sourceLocation)
        return .null
    }
}

/// Parses a payload the module produced.
func parsed(_ payload: [UInt8]?, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue? {
    guard let payload else { return nil }
    switch JSONValue.parse(payload) {
    case .success(let value):
        return value
    case .failure(let error):
        Issue.record("payload is not JSON: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// `Shadow.update` with the request as text.
func update(
    _ document: ShadowDocument?,
    _ request: String,
    at now: Int64,
    limits: ShadowLimits = ShadowLimits(),
    deletedVersion: Int = 0
) -> ShadowUpdateOutcome {
    Shadow.update(document, request: Array(request.utf8), now: now, limits: limits, deletedVersion: deletedVersion)
}

extension ShadowUpdateOutcome {
    var accepted: ShadowUpdate? {
        if case .accepted(let update) = self { return update }
        return nil
    }

    var rejected: ShadowError? {
        if case .rejected(let error) = self { return error }
        return nil
    }
}

extension ShadowGetOutcome {
    var payload: JSONValue? {
        if case .accepted(let payload) = self { return parsed(payload) }
        return nil
    }

    var rejected: ShadowError? {
        if case .rejected(let error) = self { return error }
        return nil
    }
}

extension ShadowDeleteOutcome {
    var accepted: ShadowDeletion? {
        if case .accepted(let deletion) = self { return deletion }
        return nil
    }

    var rejected: ShadowError? {
        if case .rejected(let error) = self { return error }
        return nil
    }
}

/// A shadow made by one accepted update.
func shadow(
    _ request: String,
    at now: Int64 = 1_000,
    deletedVersion: Int = 0,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> ShadowDocument {
    let outcome = update(nil, request, at: now, deletedVersion: deletedVersion)
    return try #require(
        outcome.accepted, "refused: \(String(describing: outcome.rejected))", sourceLocation: sourceLocation
    )
    .document
}
