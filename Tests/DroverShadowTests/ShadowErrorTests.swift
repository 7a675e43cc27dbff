import Testing

@testable import DroverShadow

/// One refused update, and what AWS answers ("Device Shadow error messages").
struct Refusal: Sendable, CustomTestStringConvertible {
    var request: String
    var code: Int
    var message: String

    var testDescription: String { "\(request) → \(code) \(message)" }
}

@Suite("A refused update is answered with AWS's code and message")
struct ShadowErrorTests {
    @Test(
        "each malformed request gets its error",
        arguments: [
            Refusal(request: "", code: 400, message: "Payload contains invalid json"),
            Refusal(request: "{", code: 400, message: "Payload contains invalid json"),
            Refusal(request: #"{"state":{"desired":{"a":1,}}}"#, code: 400, message: "Payload contains invalid json"),
            Refusal(
                request: #"{"state":{"desired":{"colors":[null,"RED","GREEN"]}}}"#, code: 400,
                message: "Payload contains invalid json"),
            Refusal(
                request: #"{"state":{"reported":{"a":[{"b":null}]}}}"#, code: 400,
                message: "Payload contains invalid json"),
            Refusal(request: "{}", code: 400, message: "Missing required node: state"),
            Refusal(request: #"{"desired":{"a":1}}"#, code: 400, message: "Missing required node: state"),
            Refusal(request: "[]", code: 400, message: "Missing required node: state"),
            Refusal(request: #"{"state":5}"#, code: 400, message: "State node must be an object"),
            Refusal(request: #"{"state":[]}"#, code: 400, message: "State node must be an object"),
            Refusal(request: #"{"state":"x"}"#, code: 400, message: "State node must be an object"),
            Refusal(request: #"{"state":{"desired":[1]}}"#, code: 400, message: "Desired node must be an object"),
            Refusal(request: #"{"state":{"desired":true}}"#, code: 400, message: "Desired node must be an object"),
            Refusal(request: #"{"state":{"reported":"on"}}"#, code: 400, message: "Reported node must be an object"),
            Refusal(
                request: #"{"state":{"delta":{"a":1}}}"#, code: 400, message: "State contains an invalid node: 'delta'"),
            Refusal(
                request: #"{"state":{"desired":{},"metadata":{}}}"#, code: 400,
                message: "State contains an invalid node: 'metadata'"),
            Refusal(request: #"{"state":{},"version":"1"}"#, code: 400, message: "Invalid version"),
            Refusal(request: #"{"state":{},"version":1.5}"#, code: 400, message: "Invalid version"),
            Refusal(request: #"{"state":{},"version":1.0}"#, code: 400, message: "Invalid version"),
            Refusal(request: #"{"state":{},"version":-1}"#, code: 400, message: "Invalid version"),
            Refusal(request: #"{"state":{},"version":true}"#, code: 400, message: "Invalid version"),
            Refusal(request: #"{"state":{},"clientToken":5}"#, code: 400, message: "Invalid clientToken"),
            Refusal(request: #"{"state":{},"clientToken":{"a":1}}"#, code: 400, message: "Invalid clientToken"),
            Refusal(request: #"{"state":{},"version":7}"#, code: 409, message: "Version conflict"),
        ]
    )
    func refused(_ refusal: Refusal) throws {
        let error = try #require(update(nil, refusal.request, at: 42).rejected)
        #expect(error.code.value == refusal.code)
        #expect(error.message == refusal.message)
        #expect(parsed(error.payload)?["code"] == .number(JSONNumber(refusal.code)))
        #expect(parsed(error.payload)?["message"] == .string(refusal.message))
        #expect(parsed(error.payload)?["timestamp"] == 42)
    }

    @Test("a payload that is not UTF-8 is 415")
    func notUTF8() throws {
        let request: [UInt8] = Array(#"{"state":{"reported":{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}}}"#.utf8)
        let error = try #require(Shadow.update(nil, request: request, now: 1).rejected)
        #expect(error.code.value == 415)
        #expect(error.message == "Unsupported documented encoding; supported encoding is UTF-8")
    }

    @Test("a client token of 64 bytes is accepted, 65 bytes is refused")
    func clientTokenLength() throws {
        let ascii64 = String(repeating: "t", count: 64)
        let outcome = update(nil, #"{"state":{},"clientToken":"\#(ascii64)"}"#, at: 1)
        #expect(outcome.accepted.flatMap { parsed($0.acceptedPayload) }?["clientToken"] == .string(ascii64))

        let error = try #require(update(nil, #"{"state":{},"clientToken":"\#(ascii64)t"}"#, at: 1).rejected)
        #expect(error.code.value == 400)
        #expect(error.message == "Invalid clientToken")
        #expect(error.clientToken == nil, "an invalid token is not echoed")

        // Bytes, not characters: 32 × "é" is 64 bytes, 33 is 66.
        #expect(
            update(nil, #"{"state":{},"clientToken":"\#(String(repeating: "é", count: 32))"}"#, at: 1).accepted != nil)
        #expect(
            update(nil, #"{"state":{},"clientToken":"\#(String(repeating: "é", count: 33))"}"#, at: 1).rejected != nil)
    }

    /// `{"l1":{"l2":...{"ln":{"leaf":1}}}}`: n objects nested inside the section.
    static func nestedObjects(_ depth: Int) -> String {
        var text = #"{"leaf":1}"#
        for level in stride(from: depth, through: 1, by: -1) where level > 1 {
            text = #"{"l\#(level)":\#(text)}"#
        }
        return #"{"l1":\#(text)}"#
    }

    @Test(
        "nesting 8 levels deep inside desired or reported is accepted, 9 is refused",
        arguments: ["desired", "reported"])
    func depthLimit(section: String) throws {
        let eight = update(nil, #"{"state":{"\#(section)":\#(Self.nestedObjects(8))}}"#, at: 1)
        #expect(eight.accepted != nil)

        let error = try #require(update(nil, #"{"state":{"\#(section)":\#(Self.nestedObjects(9))}}"#, at: 1).rejected)
        #expect(error.code.value == 400)
        #expect(error.message == "JSON contains too many levels of nesting; maximum is 8")
    }

    @Test("arrays count as levels of nesting")
    func arraysCount() throws {
        let eight = String(repeating: "[", count: 8) + "1" + String(repeating: "]", count: 8)
        #expect(update(nil, #"{"state":{"reported":{"a":\#(eight)}}}"#, at: 1).accepted != nil)
        let nine = "[" + eight + "]"
        #expect(update(nil, #"{"state":{"reported":{"a":\#(nine)}}}"#, at: 1).rejected?.code.value == 400)
    }

    @Test("AWS's example for its former limit of 5 is exactly at that limit")
    func documentedDepthExample() throws {
        let limits = ShadowLimits(maximumDepth: 5)
        let five = #"{"state":{"desired":{"one":{"two":{"three":{"four":{"five":{}}}}}}}}"#
        #expect(update(nil, five, at: 1, limits: limits).accepted != nil)
        let six = #"{"state":{"desired":{"one":{"two":{"three":{"four":{"five":{"six":{}}}}}}}}}"#
        #expect(
            update(nil, six, at: 1, limits: limits).rejected?.message
                == "JSON contains too many levels of nesting; maximum is 5")
    }

    /// A request of exactly `size` bytes: `{"state":{"reported":{"pad":"xxx..."}}}`.
    static func request(ofSize size: Int) -> String {
        let frame = #"{"state":{"reported":{"pad":""}}}"#
        return #"{"state":{"reported":{"pad":""# + String(repeating: "x", count: size - frame.utf8.count) + #""}}}"#
    }

    @Test("a request exactly at the size limit is accepted, one byte over is 413")
    func requestSizeLimit() throws {
        let limits = ShadowLimits(maximumRequestSize: 100)
        let atLimit = Self.request(ofSize: 100)
        #expect(atLimit.utf8.count == 100)
        #expect(update(nil, atLimit, at: 1, limits: limits).accepted != nil)

        let error = try #require(update(nil, Self.request(ofSize: 101), at: 1, limits: limits).rejected)
        #expect(error.code.value == 413)
        #expect(error.message == "The payload exceeds the maximum size allowed")
    }

    @Test("the default size limit is 64 KiB")
    func defaultSizeLimit() throws {
        #expect(update(nil, Self.request(ofSize: 65_536), at: 1).accepted != nil)
        #expect(update(nil, Self.request(ofSize: 65_537), at: 1).rejected?.code.value == 413)
    }

    @Test("a shadow exactly at the size limit is accepted, one byte over is 413, metadata not counted")
    func documentSizeLimit() throws {
        let existing = try shadow(#"{"state":{"desired":{"a":"0123456789"}}}"#)
        let request = #"{"state":{"reported":{"b":"0123456789"}}}"#
        let state = #"{"desired":{"a":"0123456789"},"reported":{"b":"0123456789"}}"#
        let atLimit = ShadowLimits(maximumDocumentSize: state.utf8.count)
        let accepted = try #require(update(existing, request, at: 2, limits: atLimit).accepted)
        #expect(accepted.document.stateSize == state.utf8.count)

        let overLimit = ShadowLimits(maximumDocumentSize: state.utf8.count - 1)
        let error = try #require(
            update(existing, #"{"state":{"reported":{"b":"0123456789"}},"clientToken":"c"}"#, at: 2, limits: overLimit)
                .rejected)
        #expect(error.code.value == 413)
        #expect(error.message == "The payload exceeds the maximum size allowed")
        #expect(error.clientToken == "c")
    }

    @Test("metadata counts against the stored size: a 64 KiB array of small numbers is refused, not grown to 800 KB")
    func storedSizeLimit() throws {
        let elements = Array(repeating: "1", count: 30_000).joined(separator: ",")
        let array = #"{"state":{"reported":{"a":["# + elements + #"]}}}"#
        #expect(array.utf8.count < 65_536)
        let error = try #require(update(nil, array, at: 1_700_000_000).rejected)
        #expect(error.code.value == 413)
        #expect(error.message == "The payload exceeds the maximum size allowed")

        // A shadow just at the stored size is accepted; one byte less allowed is refused.
        let request = #"{"state":{"reported":{"b":[1,2,3]}}}"#
        let stored = try #require(update(nil, request, at: 1_700_000_000).accepted).document.storedSize
        #expect(stored > request.utf8.count)
        #expect(update(nil, request, at: 1_700_000_000, limits: ShadowLimits(maximumStoredSize: stored)).accepted != nil)
        #expect(
            update(nil, request, at: 1_700_000_000, limits: ShadowLimits(maximumStoredSize: stored - 1)).rejected?.code
                .value == 413)
        // By default the stored size is four times the document size.
        #expect(ShadowLimits(maximumDocumentSize: 1000).maximumStoredSize == 4000)
        #expect(ShadowLimits(maximumDocumentSize: .max).maximumStoredSize == .max)
    }

    @Test(
        "the refusals a caller makes carry AWS's codes, messages and iot-data exception names",
        arguments: [
            (ShadowError.unauthorized(), 401, "Unauthorized", "UnauthorizedException"),
            (ShadowError.forbidden(), 403, "Forbidden", "ForbiddenException"),
            (ShadowError.thingNotFound(), 404, "Thing not found", "ResourceNotFoundException"),
            (ShadowError.noShadow(named: "x"), 404, "No shadow exists with name: 'x'", "ResourceNotFoundException"),
            (ShadowError.versionConflict(), 409, "Version conflict", "ConflictException"),
            (
                ShadowError.payloadTooLarge(), 413, "The payload exceeds the maximum size allowed",
                "RequestEntityTooLargeException"
            ),
            (
                ShadowError.unsupportedEncoding(), 415, "Unsupported documented encoding; supported encoding is UTF-8",
                "UnsupportedDocumentEncodingException"
            ),
            (ShadowError.tooManyRequests(), 429, "Too Many Requests", "ThrottlingException"),
            (ShadowError.internalFailure(), 500, "Internal service failure", "InternalFailureException"),
            (ShadowError.invalidJSON(), 400, "Payload contains invalid json", "InvalidRequestException"),
        ]
    )
    func callerRefusals(error: ShadowError, code: Int, message: String, awsErrorType: String) {
        #expect(error.code.value == code)
        #expect(error.message == message)
        #expect(error.code.awsErrorType == awsErrorType)
        #expect(parsed(error.payload) == .object(["code": .number(JSONNumber(code)), "message": .string(message)]))
    }

    @Test("the error document has code, message, timestamp and client token")
    func errorDocument() {
        let error = ShadowError.versionConflict(
            clientToken: "426bfd96-e720-46d3-95cd-014e3ef12bb6", timestamp: 1_591_057_529)
        #expect(
            String(decoding: error.payload, as: UTF8.self)
                == #"{"clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6","code":409,"message":"Version conflict","timestamp":1591057529}"#
        )
    }
}
