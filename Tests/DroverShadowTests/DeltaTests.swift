import Testing

@testable import DroverShadow

/// "Delta state is a virtual type of state that contains the difference between the desired and
/// reported states." (Device Shadow service documents: Delta state; Device Shadow MQTT topics:
/// /update/delta)
@Suite("The delta holds the desired members that differ from reported")
struct DeltaTests {
    @Test("equal values are not in the delta")
    func equal() {
        #expect(Shadow.delta(desired: ["a": 1, "b": "x"], reported: ["a": 1, "b": "x"]) == [:])
        #expect(Shadow.delta(desired: ["a": 5], reported: ["a": 5.0]) == [:])
    }

    @Test("the documented example: different and desired-only members are in, reported-only members are not")
    func documentedExample() {
        let delta = Shadow.delta(
            desired: ["color": "RED", "state": "STOP"],
            reported: ["color": "GREEN", "engine": "ON"]
        )
        #expect(delta == ["color": "RED", "state": "STOP"])
    }

    @Test("nested objects differ member by member, and the delta keeps the path to the root")
    func nested() {
        let desired = json(#"{"lights":{"color":{"r":255,"g":255,"b":255}}}"#).objectValue
        let reported = json(#"{"lights":{"color":{"r":255,"g":0,"b":255}}}"#).objectValue
        #expect(
            Shadow.delta(desired: desired, reported: reported) == json(#"{"lights":{"color":{"g":255}}}"#).objectValue)
    }

    @Test("arrays are compared whole, and a differing desired array is copied whole")
    func arraysWhole() {
        #expect(Shadow.delta(desired: ["c": [1, 2, 3]], reported: ["c": [1, 2, 4]]) == ["c": [1, 2, 3]])
        #expect(Shadow.delta(desired: ["c": [1, 2, 3]], reported: ["c": [1, 2, 3]]) == [:])
        #expect(Shadow.delta(desired: ["c": [["a": 1]]], reported: ["c": [["a": 1, "b": 2]]]) == ["c": [["a": 1]]])
    }

    @Test("a desired object against a reported value that is not an object is copied whole")
    func objectAgainstScalar() {
        #expect(Shadow.delta(desired: ["a": ["b": 1]], reported: ["a": 1]) == ["a": ["b": 1]])
        #expect(Shadow.delta(desired: ["a": 1], reported: ["a": ["b": 1]]) == ["a": 1])
    }

    @Test("without reported, the delta is all of desired; without desired, it is empty")
    func missingSections() {
        #expect(Shadow.delta(desired: ["a": 1], reported: nil) == ["a": 1])
        #expect(Shadow.delta(desired: nil, reported: ["a": 1]) == [:])
    }
}

@Suite("/update/delta is published when a delta remains, with all of it")
struct DeltaPayloadTests {
    @Test("no delta payload when desired and reported agree")
    func notSentWhenEqual() throws {
        let before = try shadow(#"{"state":{"desired":{"on":true}}}"#)
        let caughtUp = try #require(update(before, #"{"state":{"reported":{"on":true}}}"#, at: 2_000).accepted)
        #expect(caughtUp.deltaPayload == nil)
        let again = try #require(update(caughtUp.document, #"{"state":{"desired":{"on":true}}}"#, at: 3_000).accepted)
        #expect(again.deltaPayload == nil)
    }

    @Test("no delta payload for a shadow without desired state")
    func notSentWithoutDesired() throws {
        let created = try #require(update(nil, #"{"state":{"reported":{"temp":55}}}"#, at: 1).accepted)
        #expect(created.deltaPayload == nil)
    }

    @Test("the delta holds every differing member, whether or not this update named it")
    func allDifferingMembers() throws {
        let before = try shadow(#"{"state":{"desired":{"a":1,"b":2},"reported":{"a":0,"b":0}}}"#, at: 1_000)
        let after = try #require(
            update(before, #"{"state":{"desired":{"b":3}},"clientToken":"t"}"#, at: 2_000).accepted)
        #expect(
            parsed(after.deltaPayload)
                == json(
                    #"""
                    {"state":{"a":1,"b":3},
                     "metadata":{"a":{"timestamp":1000},"b":{"timestamp":2000}},
                     "version":2,"timestamp":2000,"clientToken":"t"}
                    """#
                )
        )
    }

    @Test("a member deleted from reported but still desired is in the delta")
    func deletedFromReported() throws {
        let before = try shadow(#"{"state":{"desired":{"a":1},"reported":{"a":1}}}"#)
        let after = try #require(update(before, #"{"state":{"reported":{"a":null}}}"#, at: 2_000).accepted)
        #expect(parsed(after.deltaPayload)?["state"] == ["a": 1])
    }

    @Test("a nested delta's metadata is the desired metadata along the same paths")
    func nestedMetadata() throws {
        let before = try shadow(
            #"{"state":{"desired":{"lights":{"color":{"r":255,"g":255,"b":255}}},"reported":{"lights":{"color":{"r":255,"g":0,"b":255}}}}}"#,
            at: 1_000
        )
        let after = try #require(
            update(before, #"{"state":{"desired":{"lights":{"color":{"g":254}}}}}"#, at: 2_000).accepted)
        #expect(
            parsed(after.deltaPayload)
                == json(
                    #"""
                    {"state":{"lights":{"color":{"g":254}}},
                     "metadata":{"lights":{"color":{"g":{"timestamp":2000}}}},
                     "version":2,"timestamp":2000}
                    """#
                )
        )
    }
}

@Suite("/update/documents holds the shadow before and after")
struct DocumentsPayloadTests {
    @Test("previous and current each have state, metadata and version")
    func previousAndCurrent() throws {
        let before = try shadow(#"{"state":{"desired":{"a":1}}}"#, at: 1_000)
        let after = try #require(
            update(before, #"{"state":{"reported":{"a":1}},"clientToken":"c"}"#, at: 2_000).accepted)
        #expect(
            parsed(after.documentsPayload)
                == json(
                    #"""
                    {"previous":{"state":{"desired":{"a":1}},"metadata":{"desired":{"a":{"timestamp":1000}}},"version":1},
                     "current":{"state":{"desired":{"a":1},"reported":{"a":1}},
                                "metadata":{"desired":{"a":{"timestamp":1000}},"reported":{"a":{"timestamp":2000}}},
                                "version":2},
                     "timestamp":2000,"clientToken":"c"}
                    """#
                )
        )
    }

    @Test("an update that creates the shadow has no previous")
    func noPreviousOnCreation() throws {
        let created = try #require(update(nil, #"{"state":{"reported":{"a":1}}}"#, at: 5).accepted)
        #expect(
            parsed(created.documentsPayload)
                == json(
                    #"{"current":{"state":{"reported":{"a":1}},"metadata":{"reported":{"a":{"timestamp":5}}},"version":1},"timestamp":5}"#
                )
        )
    }
}
