import Testing

@testable import DroverShadow

/// "Updates affect only the fields specified in the request state document. Any field with a
/// value of null is removed from the device's shadow." (Device Shadow REST API)
@Suite("An update merges into the shadow as AWS describes")
struct ShadowMergeTests {
    @Test("a null deletes the member (Interacting with shadows: deleting the engine property)")
    func nullDeletes() throws {
        let before = try shadow(#"{"state":{"desired":{"color":{"r":10},"engine":"ON"}}}"#)
        let after = try #require(update(before, #"{"state":{"desired":{"engine":null}}}"#, at: 2_000).accepted)
        #expect(after.document.desired == ["color": ["r": 10]])
    }

    @Test("an array is replaced whole (Array values in shadow documents)")
    func arraysReplacedWhole() throws {
        let before = try shadow(#"{"state":{"desired":{"colors":["RED","GREEN","BLUE"]}}}"#)
        let after = try #require(update(before, #"{"state":{"desired":{"colors":["RED"]}}}"#, at: 2_000).accepted)
        #expect(after.document.desired == ["colors": ["RED"]])
        #expect(after.document.desiredMetadata == ["colors": .array([.timestamp(2_000)])])
    }

    @Test("objects merge member by member, and untouched members keep their timestamps")
    func nestedMerge() throws {
        let before = try shadow(#"{"state":{"reported":{"color":{"r":255,"g":255,"b":0},"power":"on"}}}"#, at: 1_000)
        let after = try #require(update(before, #"{"state":{"reported":{"color":{"r":10}}}}"#, at: 2_000).accepted)
        #expect(after.document.reported == ["color": ["r": 10, "g": 255, "b": 0], "power": "on"])
        #expect(
            after.document.reportedMetadata
                == [
                    "color": .object(["r": .timestamp(2_000), "g": .timestamp(1_000), "b": .timestamp(1_000)]),
                    "power": .timestamp(1_000),
                ]
        )
    }

    @Test("an object that nulls empty stays as {}; a section that they empty goes")
    func emptiedObjectsStay() throws {
        let before = try shadow(#"{"state":{"desired":{"a":{"b":{"c":1}},"x":1}}}"#)
        let emptied = try #require(update(before, #"{"state":{"desired":{"a":{"b":{"c":null}}}}}"#, at: 2_000).accepted)
        #expect(emptied.document.desired == ["a": ["b": [:]], "x": 1])
        #expect(emptied.document.desiredMetadata == ["a": .object(["b": .timestamp(2_000)]), "x": .timestamp(1_000)])

        let sectionEmptied = try #require(
            update(emptied.document, #"{"state":{"desired":{"x":null,"a":null}}}"#, at: 3_000).accepted)
        #expect(sectionEmptied.document.desired == nil)
        #expect(Shadow.get(sectionEmptied.document, shadowName: "s", now: 3_000).payload?["state"] == [:])
    }

    @Test("an empty object is a value: it is stored, and it is in the delta")
    func emptyObjectIsAValue() throws {
        let created = try #require(update(nil, #"{"state":{"desired":{"d":{},"b":1}}}"#, at: 1_000).accepted)
        #expect(created.document.desired == ["d": [:], "b": 1])
        #expect(created.document.desiredMetadata == ["d": .timestamp(1_000), "b": .timestamp(1_000)])
        #expect(created.document.delta == ["d": [:], "b": 1])
        let delta = try #require(created.deltaPayload)
        #expect(parsed(delta)?["state"] == json(#"{"d":{},"b":1}"#))
        #expect(parsed(delta)?["metadata"] == json(#"{"d":{"timestamp":1000},"b":{"timestamp":1000}}"#))
        #expect(parsed(created.acceptedPayload)?["metadata"] == json(#"{"desired":{"d":{"timestamp":1000},"b":{"timestamp":1000}}}"#))
        // It survives storage.
        #expect(ShadowDocument(storageBytes: created.document.storageBytes) == created.document)
        // Reported as {} too, it leaves the delta.
        let reported = try #require(update(created.document, #"{"state":{"reported":{"d":{},"b":1}}}"#, at: 2_000).accepted)
        #expect(reported.document.delta == [:])
        #expect(reported.deltaPayload == nil)
    }

    @Test("{} written over a value that is not an object leaves {}, and keeps the parent")
    func emptyObjectReplacesScalar() throws {
        let before = try shadow(#"{"state":{"desired":{"p":{"c":3},"q":1}}}"#)
        let after = try #require(update(before, #"{"state":{"desired":{"p":{"c":{}}}}}"#, at: 2_000).accepted)
        #expect(after.document.desired == ["p": ["c": [:]], "q": 1])
        #expect(after.document.desiredMetadata == ["p": .object(["c": .timestamp(2_000)]), "q": .timestamp(1_000)])
        // {} over an object merges nothing into it.
        let merged = try #require(update(before, #"{"state":{"desired":{"p":{}}}}"#, at: 3_000).accepted)
        #expect(merged.document.desired == ["p": ["c": 3], "q": 1])
    }

    @Test("a section given as {} is a no-op")
    func emptySectionIsNoOp() throws {
        let before = try shadow(#"{"state":{"reported":{"a":1}}}"#)
        let after = try #require(update(before, #"{"state":{"desired":{}}}"#, at: 2_000).accepted)
        #expect(after.document.desired == nil)
        #expect(after.document.reported == ["a": 1])
    }

    @Test("an object replaces a value that was not an object, and a value replaces an object")
    func objectReplacesScalar() throws {
        let before = try shadow(#"{"state":{"desired":{"a":5,"b":{"c":1}}}}"#)
        let after = try #require(update(before, #"{"state":{"desired":{"a":{"x":1},"b":[1]}}}"#, at: 2_000).accepted)
        #expect(after.document.desired == ["a": ["x": 1], "b": [1]])
        #expect(
            after.document.desiredMetadata == [
                "a": .object(["x": .timestamp(2_000)]), "b": .array([.timestamp(2_000)]),
            ])
    }

    @Test("\"desired\": null removes the desired section (Empty shadow document properties)")
    func nullSectionRemoved() throws {
        let before = try shadow(#"{"state":{"desired":{"color":"red"},"reported":{"color":"blue"}}}"#)
        let after = try #require(
            update(before, #"{"state":{"reported":{"color":"red"},"desired":null}}"#, at: 2_000).accepted
        )
        #expect(after.document.desired == nil)
        #expect(after.document.desiredMetadata == nil)
        #expect(after.document.reported == ["color": "red"])
        #expect(
            parsed(after.acceptedPayload)
                == json(
                    #"""
                    {"state":{"reported":{"color":"red"},"desired":null},
                     "metadata":{"reported":{"color":{"timestamp":2000}}},
                     "version":2,"timestamp":2000}
                    """#
                )
        )
    }

    @Test("\"state\": null empties the shadow but keeps it, and its version moves on")
    func nullStateKeepsTheShadow() throws {
        let before = try shadow(#"{"state":{"desired":{"a":1},"reported":{"b":2}}}"#)
        let after = try #require(update(before, #"{"state":null}"#, at: 2_000).accepted)
        #expect(after.document.desired == nil)
        #expect(after.document.reported == nil)
        #expect(after.document.version == 2)
        #expect(Shadow.get(after.document, shadowName: "s", now: 2_000).payload?["state"] == [:])
        // AWS's answer: "state": null, and metadata with only the time.
        #expect(
            parsed(after.acceptedPayload)
                == json(#"{"state":null,"metadata":{"timestamp":2000},"version":2,"timestamp":2000}"#))
        let tokened = try #require(update(after.document, #"{"state":null,"clientToken":"t"}"#, at: 3_000).accepted)
        #expect(parsed(tokened.acceptedPayload)?["clientToken"] == "t")
        #expect(tokened.document.version == 3)
    }

    @Test("members outside desired and reported are ignored (Diagnosing problems with shadows)")
    func otherMembersIgnored() throws {
        let document = try shadow(#"{"state":{"desired":{"a":1}},"metadata":{"x":1},"timestamp":5,"extra":[1,2]}"#)
        #expect(document.desired == ["a": 1])
    }

    @Test("integers stay integers and floating numbers stay floating through the shadow")
    func numbersKeepTheirForm() throws {
        let created = try #require(
            update(nil, #"{"state":{"reported":{"n":5,"f":5.0,"big":12345678901234,"neg":-3,"x":0.1}}}"#, at: 1_000)
                .accepted
        )
        let accepted = String(decoding: created.acceptedPayload, as: UTF8.self)
        #expect(accepted.contains(#""state":{"reported":{"big":12345678901234,"f":5.0,"n":5,"neg":-3,"x":0.1}}"#))
        guard case .accepted(let payload) = Shadow.get(created.document, shadowName: "s", now: 1_000) else {
            Issue.record("get refused")
            return
        }
        #expect(String(decoding: payload, as: UTF8.self).contains(#""n":5,"#))
    }
}

/// "Metadata ... includes timestamps, in Epoch time, for each attribute in the state section."
@Suite("Metadata holds a timestamp for every leaf")
struct ShadowMetadataTests {
    @Test("nested objects get a timestamp per leaf, arrays one per element")
    func perLeaf() throws {
        let document = try shadow(
            #"{"state":{"reported":{"a":{"b":{"c":true}},"list":[1,{"k":"v"},[2]],"s":"x","empty":[]}}}"#,
            at: 7
        )
        #expect(
            document.metadata
                == json(
                    #"""
                    {"reported":{
                      "a":{"b":{"c":{"timestamp":7}}},
                      "list":[{"timestamp":7},{"k":{"timestamp":7}},[{"timestamp":7}]],
                      "s":{"timestamp":7},
                      "empty":[]
                    }}
                    """#
                )
        )
    }

    @Test("a state member called timestamp gets metadata like any other")
    func memberCalledTimestamp() throws {
        let document = try shadow(#"{"state":{"reported":{"timestamp":{"timestamp":1}}}}"#, at: 9)
        #expect(document.metadata == json(#"{"reported":{"timestamp":{"timestamp":{"timestamp":9}}}}"#))
    }

    @Test("/update/accepted carries the metadata of what the request wrote, nulls included")
    func acceptedMetadata() throws {
        let before = try shadow(#"{"state":{"desired":{"a":1,"b":2}}}"#)
        let after = try #require(
            update(before, #"{"state":{"desired":{"a":null,"c":{"d":[1,2]}}},"clientToken":"tok"}"#, at: 2_000).accepted
        )
        #expect(
            parsed(after.acceptedPayload)
                == json(
                    #"""
                    {"state":{"desired":{"a":null,"c":{"d":[1,2]}}},
                     "metadata":{"desired":{"a":{"timestamp":2000},"c":{"d":[{"timestamp":2000},{"timestamp":2000}]}}},
                     "version":2,"timestamp":2000,"clientToken":"tok"}
                    """#
                )
        )
    }
}

/// "Every time the document is updated, this version number is incremented." (Versioning
/// shadow documents; Optimistic locking)
@Suite("Versions start at 1, grow with every update, and guard updates")
struct ShadowVersionTests {
    @Test("a new shadow is version 1 and every accepted update adds one, even one that changes nothing")
    func increments() throws {
        let first = try #require(update(nil, #"{"state":{"reported":{"a":1}}}"#, at: 1).accepted)
        #expect(first.document.version == 1)
        let second = try #require(update(first.document, #"{"state":{"reported":{"a":1}}}"#, at: 2).accepted)
        #expect(second.document.version == 2)
        let third = try #require(update(second.document, #"{"state":{}}"#, at: 3).accepted)
        #expect(third.document.version == 3)
        #expect(third.document.timestamp == 3)
        #expect(third.document.reportedMetadata == ["a": .timestamp(2)])
    }

    @Test("the optimistic-locking example: version 9 against 10 is a conflict, version 10 is accepted")
    func optimisticLocking() throws {
        let initial = try shadow(#"{"state":{"desired":{"colors":["RED","GREEN","BLUE"]}}}"#, deletedVersion: 9)
        #expect(initial.version == 10)

        let conflict = try #require(
            update(
                initial,
                #"{"state":{"desired":{"colors":["BLUE"]}},"version":9,"clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6"}"#,
                at: 2_000
            ).rejected
        )
        #expect(
            parsed(conflict.payload)
                == json(
                    #"{"code":409,"message":"Version conflict","clientToken":"426bfd96-e720-46d3-95cd-014e3ef12bb6","timestamp":2000}"#
                )
        )

        let accepted = try #require(
            update(initial, #"{"state":{"desired":{"colors":["BLUE"]}},"version":10}"#, at: 2_000).accepted)
        #expect(accepted.document.desired == ["colors": ["BLUE"]])
        #expect(accepted.document.version == 11)
    }

    @Test("a shadow re-created after a delete continues from the deleted version")
    func versionSurvivesDeletion() throws {
        let document = try shadow(#"{"state":{"reported":{"a":1}}}"#, deletedVersion: 3)
        let deletion = try #require(Shadow.delete(document, shadowName: "s", now: 2_000).accepted)
        #expect(deletion.version == 4)
        let recreated = try #require(
            update(nil, #"{"state":{"reported":{"a":2}}}"#, at: 3_000, deletedVersion: deletion.version).accepted
        )
        #expect(recreated.document.version == 5)
    }

    @Test("a request may create a shadow by naming the version it follows")
    func versionOnCreation() throws {
        #expect(update(nil, #"{"state":{"reported":{"a":1}},"version":0}"#, at: 1).accepted?.document.version == 1)
        #expect(update(nil, #"{"state":{"reported":{"a":1}},"version":1}"#, at: 1).rejected?.code == .conflict)
        #expect(
            update(nil, #"{"state":{"reported":{"a":1}},"version":4}"#, at: 1, deletedVersion: 4).accepted?.document
                .version
                == 5
        )
    }
}

/// "clientToken — Present only if a client token was used when publishing valid JSON."
@Suite("The client token is echoed")
struct ClientTokenTests {
    @Test("an update's token is in its accepted, delta and documents payloads")
    func echoedOnUpdate() throws {
        let outcome = try #require(update(nil, #"{"state":{"desired":{"a":1}},"clientToken":"abc"}"#, at: 1).accepted)
        for payload in [outcome.acceptedPayload, outcome.deltaPayload, outcome.documentsPayload] {
            #expect(parsed(payload)?["clientToken"] == "abc")
        }
    }

    @Test("without a token, no payload has one")
    func absentWithoutToken() throws {
        let outcome = try #require(update(nil, #"{"state":{"desired":{"a":1}}}"#, at: 1).accepted)
        for payload in [outcome.acceptedPayload, outcome.deltaPayload, outcome.documentsPayload] {
            #expect(parsed(payload)?["clientToken"] == nil)
        }
        #expect(update(nil, #"{"state":{"desired":{"a":1}},"clientToken":null}"#, at: 1).accepted != nil)
    }

    @Test("a refusal after the token was read echoes it")
    func echoedOnRefusal() throws {
        let error = try #require(update(nil, #"{"clientToken":"abc","state":[]}"#, at: 1).rejected)
        #expect(error.clientToken == "abc")
        #expect(parsed(error.payload)?["clientToken"] == "abc")
    }
}
