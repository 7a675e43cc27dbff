import Testing

@testable import DroverShadow

@Suite("The iot-data API answers with the same documents")
struct ShadowHTTPTests {
    @Test("UpdateThingShadow: 200 with the /update/accepted document")
    func update() throws {
        let outcome = DroverShadowTests.update(nil, #"{"state":{"desired":{"a":1}}}"#, at: 1)
        let response = outcome.httpResponse
        #expect(response.status == 200)
        #expect(response.errorType == nil)
        #expect(response.body == outcome.accepted?.acceptedPayload)
    }

    @Test("a refusal is its code, the exception name and a message")
    func refusal() {
        let response = DroverShadowTests.update(nil, #"{"state":{},"version":3}"#, at: 1).httpResponse
        #expect(response.status == 409)
        #expect(response.errorType == "ConflictException")
        #expect(parsed(response.body) == ["message": "Version conflict"])
    }

    @Test("GetThingShadow: 200 with the document, or 404 ResourceNotFoundException")
    func get() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#, at: 1)
        let found = Shadow.get(document, shadowName: "thing", now: 2).httpResponse
        #expect(found.status == 200)
        #expect(parsed(found.body)?["state"] == ["reported": ["a": 1]])

        let missing = Shadow.get(nil, shadowName: "thing", now: 2).httpResponse
        #expect(missing.status == 404)
        #expect(missing.errorType == "ResourceNotFoundException")
        #expect(parsed(missing.body) == ["message": "No shadow exists with name: 'thing'"])
    }

    @Test("DeleteThingShadow: 200 with version and timestamp")
    func delete() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#, at: 1)
        let response = Shadow.delete(document, shadowName: "thing", now: 2).httpResponse
        #expect(response.status == 200)
        #expect(parsed(response.body) == json(#"{"version":1,"timestamp":2}"#))
    }
}

@Suite("A shadow survives a round trip through storage")
struct ShadowStorageTests {
    @Test("storageBytes reads back as the same document")
    func roundTrip() throws {
        let first = try shadow(
            #"{"state":{"desired":{"a":{"b":[1,{"c":2.5}]},"timestamp":{"timestamp":3}},"reported":{"x":"y"}}}"#, at: 10
        )
        let second = try #require(update(first, #"{"state":{"reported":{"z":[]}}}"#, at: 20).accepted).document
        let restored = try #require(ShadowDocument(storageBytes: second.storageBytes))
        #expect(restored == second)
        #expect(restored.reportedMetadata == ["x": .timestamp(10), "z": .array([])])
        #expect(restored.storageBytes == second.storageBytes)
    }

    @Test(
        "a stored document that breaks an invariant is not read back",
        arguments: [
            #"{"metadata":{},"state":{},"timestamp":1}"#,
            #"{"metadata":{"desired":{"a":{"timestamp":1}}},"state":{"desired":{"a":1,"b":2}},"timestamp":1,"version":1}"#,
            #"{"metadata":{"desired":{"a":{"timestamp":1}}},"state":{"desired":{"a":null}},"timestamp":1,"version":1}"#,
            #"{"metadata":{"desired":{}},"state":{"desired":{}},"timestamp":1,"version":1}"#,
            #"{"metadata":{"desired":{"a":{}}},"state":{"desired":{"a":{}}},"timestamp":1,"version":1}"#,
            #"{"metadata":{"desired":{"a":[{"timestamp":1}]}},"state":{"desired":{"a":[1,2]}},"timestamp":1,"version":1}"#,
            #"{"metadata":{"delta":{}},"state":{"delta":{"a":1}},"timestamp":1,"version":1}"#,
            #"{"metadata":{},"state":{},"timestamp":1,"version":-1}"#,
            "not json",
        ]
    )
    func damaged(text: String) {
        #expect(ShadowDocument(storageBytes: Array(text.utf8)) == nil)
    }
}
