import Testing

@testable import DroverPolicy

/// Shared values: one account and region, and contexts with and without a thing.
enum Fixtures {
    static let region = "us-east-1"
    static let account = "123456789012"
    static let arnPrefix = "arn:aws:iot:us-east-1:123456789012:"

    static func arn(_ rest: String) -> String { arnPrefix + rest }

    /// A device that connected with a certificate attached to thing `thing-1`.
    static let device = PolicyContext(
        clientId: "sensor-1",
        thingName: "thing-1",
        thingTypeName: "thermostat",
        thingAttributes: ["floor": "3", "empty": ""],
        isAttached: true,
        certificateCommonName: "device.example.com",
        region: region,
        account: account
    )

    /// A connection with a client id but no thing attached to its certificate.
    static let anonymous = PolicyContext(clientId: "sensor-1", region: region, account: account)

    /// A document with one statement, for tests about a single action or resource.
    static func statement(effect: String = "Allow", action: String = "\"iot:*\"", resource: String) -> String {
        """
        {"Version": "2012-10-17", "Statement": {"Effect": "\(effect)", "Action": \(action), "Resource": \(resource)}}
        """
    }
}

/// Parses a document that the test expects to be valid.
func document(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PolicyDocument {
    switch PolicyDocument.parse(text) {
    case .success(let document):
        return document
    case .failure(let error):
        Issue.record("refused: \(error)", sourceLocation: sourceLocation)
        throw error
    }
}

/// The refusal of a document that the test expects to be invalid.
func refusal(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PolicyParseError {
    switch PolicyDocument.parse(text) {
    case .success:
        Issue.record("accepted a document that should be refused", sourceLocation: sourceLocation)
        throw AcceptedInvalidDocument()
    case .failure(let error):
        return error
    }
}

struct AcceptedInvalidDocument: Error {}

func resource(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ResourcePattern {
    try #require(ResourcePattern(text), sourceLocation: sourceLocation)
}
