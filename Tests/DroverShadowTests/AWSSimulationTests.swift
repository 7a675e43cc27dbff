import Testing

@testable import DroverShadow

/// The AWS IoT developer guide's "Simulating Device Shadow service communications" page, step
/// by step: a device and an app share the named shadow `simShadow1`, and the page shows the
/// documents AWS answered with. The shadow had been at version 2 before, so it comes back at 3.
@Suite("The AWS developer guide's shadow simulation gives the documents AWS showed")
struct AWSSimulationTests {
    @Test("get before the shadow exists is 404 with the shadow's name")
    func getBeforeCreation() throws {
        let error = try #require(Shadow.get(nil, shadowName: "simShadow1", now: 1_591_140_000).rejected)
        #expect(error.code == .notFound)
        #expect(error.message == "No shadow exists with name: 'simShadow1'")
    }

    @Test("the device creates the shadow, the app sets desired, the device reports, the app reads")
    func wholeExchange() throws {
        // The device reports its current state.
        let created = try #require(
            update(
                nil,
                #"""
                {
                  "state": {
                    "reported": {
                      "ID": "SmartLamp21",
                      "ColorRGB": [128, 128, 128]
                    }
                  },
                  "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"
                }
                """#,
                at: 1_591_140_517,
                deletedVersion: 2
            ).accepted
        )
        #expect(
            parsed(created.acceptedPayload)
                == json(
                    #"""
                    {
                      "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
                      "metadata": {
                        "reported": {
                          "ID": {"timestamp": 1591140517},
                          "ColorRGB": [{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]
                        }
                      },
                      "version": 3,
                      "timestamp": 1591140517,
                      "clientToken": "426bfd96-e720-46d3-95cd-014e3ef12bb6"
                    }
                    """#
                )
        )
        #expect(created.deltaPayload == nil)

        // The app reads it (aws iot-data get-thing-shadow).
        #expect(
            Shadow.get(created.document, shadowName: "simShadow1", now: 1_591_141_111).payload
                == json(
                    #"""
                    {
                      "state": {"reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}},
                      "metadata": {
                        "reported": {
                          "ID": {"timestamp": 1591140517},
                          "ColorRGB": [{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]
                        }
                      },
                      "version": 3,
                      "timestamp": 1591141111
                    }
                    """#
                )
        )

        // The app asks for yellow.
        let desired = try #require(
            update(
                created.document,
                #"{"state":{"desired":{"ColorRGB":[255,255,0]}},"clientToken":"21b21b21-bfd2-4279-8c65-e2f697ff4fab"}"#,
                at: 1_591_141_596
            ).accepted
        )
        #expect(
            parsed(desired.acceptedPayload)
                == json(
                    #"""
                    {
                      "state": {"desired": {"ColorRGB": [255, 255, 0]}},
                      "metadata": {
                        "desired": {
                          "ColorRGB": [{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]
                        }
                      },
                      "version": 4,
                      "timestamp": 1591141596,
                      "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"
                    }
                    """#
                )
        )
        #expect(
            parsed(desired.deltaPayload)
                == json(
                    #"""
                    {
                      "version": 4,
                      "timestamp": 1591141596,
                      "state": {"ColorRGB": [255, 255, 0]},
                      "metadata": {
                        "ColorRGB": [{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]
                      },
                      "clientToken": "21b21b21-bfd2-4279-8c65-e2f697ff4fab"
                    }
                    """#
                )
        )

        // The device turns yellow and reports it.
        let reported = try #require(
            update(
                desired.document,
                #"{"state":{"reported":{"ColorRGB":[255,255,0]}},"clientToken":"a4dc2227-9213-4c6a-a6a5-053304f60258"}"#,
                at: 1_591_142_747
            ).accepted
        )
        #expect(
            parsed(reported.acceptedPayload)
                == json(
                    #"""
                    {
                      "state": {"reported": {"ColorRGB": [255, 255, 0]}},
                      "metadata": {
                        "reported": {
                          "ColorRGB": [{"timestamp": 1591142747}, {"timestamp": 1591142747}, {"timestamp": 1591142747}]
                        }
                      },
                      "version": 5,
                      "timestamp": 1591142747,
                      "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"
                    }
                    """#
                )
        )
        #expect(reported.deltaPayload == nil, "desired and reported agree: nothing to tell the device")
        #expect(
            parsed(reported.documentsPayload)
                == json(
                    #"""
                    {
                      "previous": {
                        "state": {
                          "desired": {"ColorRGB": [255, 255, 0]},
                          "reported": {"ID": "SmartLamp21", "ColorRGB": [128, 128, 128]}
                        },
                        "metadata": {
                          "desired": {
                            "ColorRGB": [{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]
                          },
                          "reported": {
                            "ID": {"timestamp": 1591140517},
                            "ColorRGB": [{"timestamp": 1591140517}, {"timestamp": 1591140517}, {"timestamp": 1591140517}]
                          }
                        },
                        "version": 4
                      },
                      "current": {
                        "state": {
                          "desired": {"ColorRGB": [255, 255, 0]},
                          "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]}
                        },
                        "metadata": {
                          "desired": {
                            "ColorRGB": [{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]
                          },
                          "reported": {
                            "ID": {"timestamp": 1591140517},
                            "ColorRGB": [{"timestamp": 1591142747}, {"timestamp": 1591142747}, {"timestamp": 1591142747}]
                          }
                        },
                        "version": 5
                      },
                      "timestamp": 1591142747,
                      "clientToken": "a4dc2227-9213-4c6a-a6a5-053304f60258"
                    }
                    """#
                )
        )

        // The app reads the result: no delta, since the device caught up.
        #expect(
            Shadow.get(reported.document, shadowName: "simShadow1", now: 1_591_143_269).payload
                == json(
                    #"""
                    {
                      "state": {
                        "desired": {"ColorRGB": [255, 255, 0]},
                        "reported": {"ID": "SmartLamp21", "ColorRGB": [255, 255, 0]}
                      },
                      "metadata": {
                        "desired": {
                          "ColorRGB": [{"timestamp": 1591141596}, {"timestamp": 1591141596}, {"timestamp": 1591141596}]
                        },
                        "reported": {
                          "ID": {"timestamp": 1591140517},
                          "ColorRGB": [{"timestamp": 1591142747}, {"timestamp": 1591142747}, {"timestamp": 1591142747}]
                        }
                      },
                      "version": 5,
                      "timestamp": 1591143269
                    }
                    """#
                )
        )
    }

    @Test("timestamps and versions are integers, as the v2 SDK parses them")
    func integersForTheSDK() throws {
        let created = try #require(
            update(nil, #"{"state":{"desired":{"on":true}},"clientToken":"t"}"#, at: 1_591_140_517).accepted
        )
        for payload in [created.acceptedPayload, created.deltaPayload, created.documentsPayload].compactMap({ $0 }) {
            let document = try #require(parsed(payload))
            #expect(document["timestamp"]?.numberValue?.isInteger == true)
        }
        let accepted = try #require(parsed(created.acceptedPayload))
        #expect(accepted["version"]?.numberValue?.isInteger == true)
        #expect(accepted["metadata"]?["desired"]?["on"]?["timestamp"]?.numberValue?.isInteger == true)
    }
}
