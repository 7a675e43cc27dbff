/// An outcome as the `iot-data` API answers it (UpdateThingShadow, GetThingShadow,
/// DeleteThingShadow): the same documents as the MQTT topics, as the body.
///
/// AWS: "If the client updates the document using the REST API, then it receives the HTTP error
/// code as part of its response, and no MQTT error messages are emitted." A refusal is therefore
/// the AWS error shape that botocore reads for `iot-data`: the exception's name (for
/// `x-amzn-ErrorType`) and `{"message": ...}` as the body.
public struct ShadowHTTPResponse: Hashable, Sendable {
    /// 200, or the refusal's code.
    public var status: Int
    /// For `x-amzn-ErrorType`; nil on success.
    public var errorType: String?
    /// JSON.
    public var body: [UInt8]

    public init(status: Int, errorType: String?, body: [UInt8]) {
        self.status = status
        self.errorType = errorType
        self.body = body
    }

    /// A success carrying `body`.
    public static func ok(_ body: [UInt8]) -> ShadowHTTPResponse {
        ShadowHTTPResponse(status: 200, errorType: nil, body: body)
    }

    /// A refusal in the AWS error shape.
    public init(_ error: ShadowError) {
        self.init(
            status: error.code.value,
            errorType: error.code.awsErrorType,
            body: JSONValue.object(["message": .string(error.message)]).jsonBytes
        )
    }
}

extension ShadowUpdateOutcome {
    /// The UpdateThingShadow answer: the `/update/accepted` document, or the refusal.
    public var httpResponse: ShadowHTTPResponse {
        switch self {
        case .accepted(let update): .ok(update.acceptedPayload)
        case .rejected(let error): ShadowHTTPResponse(error)
        }
    }
}

extension ShadowGetOutcome {
    /// The GetThingShadow answer: the `/get/accepted` document, or the refusal.
    public var httpResponse: ShadowHTTPResponse {
        switch self {
        case .accepted(let payload): .ok(payload)
        case .rejected(let error): ShadowHTTPResponse(error)
        }
    }
}

extension ShadowDeleteOutcome {
    /// The DeleteThingShadow answer: the `/delete/accepted` document, or the refusal.
    public var httpResponse: ShadowHTTPResponse {
        switch self {
        case .accepted(let deletion): .ok(deletion.payload)
        case .rejected(let error): ShadowHTTPResponse(error)
        }
    }
}
