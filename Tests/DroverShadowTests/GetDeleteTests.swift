import Testing

@testable import DroverShadow

@Suite("/get answers the whole shadow, with the delta when there is one")
struct GetTests {
    @Test("with a delta: state has desired, reported and delta")
    func withDelta() throws {
        let document = try shadow(
            #"{"state":{"desired":{"color":"RED","state":"STOP"},"reported":{"color":"GREEN","engine":"ON"}}}"#,
            at: 12_345,
            deletedVersion: 16
        )
        #expect(
            Shadow.get(document, shadowName: "s", clientToken: "tok", now: 123_456_789).payload
                == json(
                    #"""
                    {"state":{"desired":{"color":"RED","state":"STOP"},
                              "reported":{"color":"GREEN","engine":"ON"},
                              "delta":{"color":"RED","state":"STOP"}},
                     "metadata":{"desired":{"color":{"timestamp":12345},"state":{"timestamp":12345}},
                                 "reported":{"color":{"timestamp":12345},"engine":{"timestamp":12345}}},
                     "version":17,"timestamp":123456789,"clientToken":"tok"}
                    """#
                )
        )
    }

    @Test("without a delta: no delta member at all")
    func withoutDelta() throws {
        let document = try shadow(#"{"state":{"desired":{"a":1},"reported":{"a":1,"b":2}}}"#, at: 5)
        let payload = try #require(Shadow.get(document, shadowName: "s", now: 6).payload)
        #expect(payload["state"]?["delta"] == nil)
        #expect(payload["clientToken"] == nil)
        #expect(payload["timestamp"] == 6)
    }

    @Test("no shadow: 404 naming it, with the token")
    func notFound() throws {
        let error = try #require(Shadow.get(nil, shadowName: "myThing", clientToken: "t", now: 9).rejected)
        #expect(
            parsed(error.payload)
                == json(
                    #"{"code":404,"message":"No shadow exists with name: 'myThing'","clientToken":"t","timestamp":9}"#)
        )
    }
}

@Suite("/delete removes the shadow and answers its version")
struct DeleteTests {
    @Test("the documented accepted message: version and timestamp")
    func accepted() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#, deletedVersion: 3)
        let deletion = try #require(Shadow.delete(document, shadowName: "s", now: 1_591_057_529).accepted)
        #expect(parsed(deletion.payload) == json(#"{"version":4,"timestamp":1591057529}"#))
        #expect(deletion.version == 4)
    }

    @Test("the token is echoed")
    func token() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#)
        let deletion = try #require(Shadow.delete(document, shadowName: "s", clientToken: "t", now: 2).accepted)
        #expect(parsed(deletion.payload) == json(#"{"version":1,"timestamp":2,"clientToken":"t"}"#))
    }

    @Test("a version that is not the shadow's is a conflict; the right one is accepted")
    func versionConflict() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#)
        let error = try #require(Shadow.delete(document, shadowName: "s", version: 2, now: 2).rejected)
        #expect(error.code == .conflict)
        #expect(error.message == "Version conflict")
        #expect(Shadow.delete(document, shadowName: "s", version: 1, now: 2).accepted != nil)
    }

    @Test("no shadow: 404")
    func notFound() throws {
        let error = try #require(Shadow.delete(nil, shadowName: "gone", now: 2).rejected)
        #expect(error.code.value == 404)
        #expect(error.message == "No shadow exists with name: 'gone'")
    }
}

@Suite("The options of /get and /delete requests")
struct RequestOptionsTests {
    @Test("an empty payload, or only whitespace, has no options")
    func empty() {
        #expect(ShadowRequestOptions.parse([UInt8](), now: 1).success == ShadowRequestOptions())
        #expect(ShadowRequestOptions.parse(Array(" \n".utf8), now: 1).success == ShadowRequestOptions())
    }

    @Test("the SDK's request carries a client token, and may carry a version")
    func tokenAndVersion() {
        #expect(
            ShadowRequestOptions.parse(Array(#"{"clientToken":"abc"}"#.utf8), now: 1).success
                == ShadowRequestOptions(clientToken: "abc")
        )
        #expect(
            ShadowRequestOptions.parse(Array(#"{"clientToken":"abc","version":3}"#.utf8), now: 1).success
                == ShadowRequestOptions(clientToken: "abc", version: 3)
        )
    }

    @Test("bad options are refused with AWS's messages")
    func refused() {
        #expect(ShadowRequestOptions.parse(Array("{".utf8), now: 1).failure == .invalidJSON(timestamp: 1))
        #expect(ShadowRequestOptions.parse(Array("[]".utf8), now: 1).failure == .invalidJSON(timestamp: 1))
        let long = String(repeating: "x", count: 65)
        #expect(
            ShadowRequestOptions.parse(Array(#"{"clientToken":"\#(long)"}"#.utf8), now: 1).failure
                == .invalidClientToken(timestamp: 1)
        )
        #expect(
            ShadowRequestOptions.parse(Array(#"{"clientToken":"t","version":"3"}"#.utf8), now: 1).failure
                == .invalidVersion(clientToken: "t", timestamp: 1)
        )
    }
}
