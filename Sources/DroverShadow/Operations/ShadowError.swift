/// A refused shadow request, as AWS IoT words it.
///
/// It is a value in an outcome, not something thrown: on MQTT it becomes the error document of
/// `/rejected` (``payload``), and over HTTP an AWS error (``Code-swift.struct/awsErrorType``).
/// The messages are those of the AWS developer guide's "Device Shadow error messages" page, and
/// the 404 message is the one its "Simulating Device Shadow service communications" page shows.
public struct ShadowError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of refusal. A struct over a private enum, so kinds can be added later.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case badRequest
            case unauthorized
            case forbidden
            case notFound
            case conflict
            case payloadTooLarge
            case unsupportedEncoding
            case tooManyRequests
            case internalFailure
        }

        private var backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        public static let badRequest = Code(.badRequest)
        public static let unauthorized = Code(.unauthorized)
        public static let forbidden = Code(.forbidden)
        public static let notFound = Code(.notFound)
        public static let conflict = Code(.conflict)
        public static let payloadTooLarge = Code(.payloadTooLarge)
        public static let unsupportedEncoding = Code(.unsupportedEncoding)
        public static let tooManyRequests = Code(.tooManyRequests)
        public static let internalFailure = Code(.internalFailure)

        /// The number in the error document's `code`. AWS uses HTTP status codes for it, on
        /// MQTT too.
        public var value: Int {
            switch backing {
            case .badRequest: 400
            case .unauthorized: 401
            case .forbidden: 403
            case .notFound: 404
            case .conflict: 409
            case .payloadTooLarge: 413
            case .unsupportedEncoding: 415
            case .tooManyRequests: 429
            case .internalFailure: 500
            }
        }

        /// The exception that botocore's `iot-data` model names for this status, which an HTTP
        /// answer carries in `x-amzn-ErrorType` so that boto3 raises the right class.
        public var awsErrorType: String {
            switch backing {
            case .badRequest: "InvalidRequestException"
            case .unauthorized: "UnauthorizedException"
            case .forbidden: "ForbiddenException"
            case .notFound: "ResourceNotFoundException"
            case .conflict: "ConflictException"
            case .payloadTooLarge: "RequestEntityTooLargeException"
            case .unsupportedEncoding: "UnsupportedDocumentEncodingException"
            case .tooManyRequests: "ThrottlingException"
            case .internalFailure: "InternalFailureException"
            }
        }

        public var description: String { String(value) }
    }

    public var code: Code
    public var message: String
    /// The request's client token, echoed so the client can match the answer; nil when the
    /// request had none or it was itself the problem.
    public var clientToken: String?
    /// When the answer was made, in epoch seconds; AWS leaves it out of some error documents.
    public var timestamp: Int64?

    public init(code: Code, message: String, clientToken: String? = nil, timestamp: Int64? = nil) {
        self.code = code
        self.message = message
        self.clientToken = clientToken
        self.timestamp = timestamp
    }

    /// The `/rejected` error document: `{"clientToken":...,"code":400,"message":...,"timestamp":N}`.
    public var payload: [UInt8] {
        var members: [String: JSONValue] = [
            "code": .number(JSONNumber(code.value)),
            "message": .string(message),
        ]
        if let clientToken { members["clientToken"] = .string(clientToken) }
        if let timestamp { members["timestamp"] = .number(JSONNumber(timestamp)) }
        return JSONValue.object(members).jsonBytes
    }

    public var description: String {
        "\(code.value) \(message)"
    }
}

// MARK: AWS's refusals

extension ShadowError {
    /// 400: the payload is not JSON.
    public static func invalidJSON(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest, message: "Payload contains invalid json", clientToken: clientToken, timestamp: timestamp)
    }

    /// 400: an update without `state`.
    public static func missingState(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest, message: "Missing required node: state", clientToken: clientToken, timestamp: timestamp)
    }

    /// 400: `state` is neither an object nor `null`.
    public static func stateNotAnObject(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest, message: "State node must be an object", clientToken: clientToken, timestamp: timestamp)
    }

    /// 400: `state.desired` is neither an object nor `null`.
    public static func desiredNotAnObject(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest, message: "Desired node must be an object", clientToken: clientToken, timestamp: timestamp
        )
    }

    /// 400: `state.reported` is neither an object nor `null`.
    public static func reportedNotAnObject(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest, message: "Reported node must be an object", clientToken: clientToken,
            timestamp: timestamp)
    }

    /// 400: `state` has a member other than `desired` and `reported` (a client echoing `delta`,
    /// for instance).
    public static func invalidStateNode(_ name: String, clientToken: String? = nil, timestamp: Int64? = nil)
        -> ShadowError
    {
        ShadowError(
            code: .badRequest,
            message: "State contains an invalid node: '\(name)'",
            clientToken: clientToken,
            timestamp: timestamp
        )
    }

    /// 400: `version` is not a non-negative integer.
    public static func invalidVersion(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .badRequest, message: "Invalid version", clientToken: clientToken, timestamp: timestamp)
    }

    /// 400: `clientToken` is not a string, or is longer than 64 bytes. The token is not echoed.
    public static func invalidClientToken(timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .badRequest, message: "Invalid clientToken", timestamp: timestamp)
    }

    /// 400: the state nests deeper than the limit.
    public static func tooDeep(maximumDepth: Int, clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .badRequest,
            message: "JSON contains too many levels of nesting; maximum is \(maximumDepth)",
            clientToken: clientToken,
            timestamp: timestamp
        )
    }

    /// 401.
    public static func unauthorized(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .unauthorized, message: "Unauthorized", clientToken: clientToken, timestamp: timestamp)
    }

    /// 403.
    public static func forbidden(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .forbidden, message: "Forbidden", clientToken: clientToken, timestamp: timestamp)
    }

    /// 404: the thing does not exist.
    public static func thingNotFound(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .notFound, message: "Thing not found", clientToken: clientToken, timestamp: timestamp)
    }

    /// 404: the shadow does not exist (for the classic shadow, `name` is the thing's name).
    public static func noShadow(named name: String, clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError
    {
        ShadowError(
            code: .notFound,
            message: "No shadow exists with name: '\(name)'",
            clientToken: clientToken,
            timestamp: timestamp
        )
    }

    /// 409: the request's `version` is not the shadow's.
    public static func versionConflict(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(code: .conflict, message: "Version conflict", clientToken: clientToken, timestamp: timestamp)
    }

    /// 413: the request, or the shadow it would make, is larger than the limit.
    public static func payloadTooLarge(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .payloadTooLarge,
            message: "The payload exceeds the maximum size allowed",
            clientToken: clientToken,
            timestamp: timestamp
        )
    }

    /// 415: the payload is not UTF-8.
    public static func unsupportedEncoding(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .unsupportedEncoding,
            message: "Unsupported documented encoding; supported encoding is UTF-8",
            clientToken: clientToken,
            timestamp: timestamp
        )
    }

    /// 429: too many requests in flight (AWS allows 10 per connection).
    public static func tooManyRequests(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .tooManyRequests, message: "Too Many Requests", clientToken: clientToken, timestamp: timestamp)
    }

    /// 500.
    public static func internalFailure(clientToken: String? = nil, timestamp: Int64? = nil) -> ShadowError {
        ShadowError(
            code: .internalFailure, message: "Internal service failure", clientToken: clientToken, timestamp: timestamp)
    }
}
