import Testing

@testable import DroverPolicy

/// `*` and `?` in resources, MQTT wildcards as literals, and policy variables.
@Suite("Resource matching")
struct ResourceMatchingTests {
    @Test(
        "'*' matches any run of characters, across topic levels and including none",
        arguments: [
            ("topic/a/b", true), ("topic/a/b/c/d", true), ("topic/a/", true), ("topic/a", false),
            ("topic/b/x", false), ("topicfilter/a/b", false),
        ]
    )
    func starSpansLevels(topic: String, matches: Bool) throws {
        #expect(
            try resource(Fixtures.arn("topic/a/*")).matches(Fixtures.arn(topic), context: Fixtures.device) == matches
        )
    }

    @Test(
        "'?' matches exactly one character",
        arguments: [
            ("topic/abc", true), ("topic/aéc", true), ("topic/a/c", true), ("topic/ac", false), ("topic/abbc", false),
        ]
    )
    func questionMatchesOneCharacter(topic: String, matches: Bool) throws {
        #expect(
            try resource(Fixtures.arn("topic/a?c")).matches(Fixtures.arn(topic), context: Fixtures.device) == matches
        )
    }

    @Test(
        "MQTT '+' and '#' are literal characters in policy resources",
        arguments: [
            ("topicfilter/a/+", "topicfilter/a/+", true), ("topicfilter/a/+", "topicfilter/a/b", false),
            ("topicfilter/a/#", "topicfilter/a/#", true), ("topicfilter/a/#", "topicfilter/a/b/c", false),
            ("topic/#", "topic/x", false),
        ]
    )
    func mqttWildcardsAreLiteral(pattern: String, request: String, matches: Bool) throws {
        #expect(try resource(Fixtures.arn(pattern)).matches(Fixtures.arn(request), context: Fixtures.device) == matches)
    }

    @Test("'*' alone matches every resource, and the ARN parts may be wildcards")
    func wholeWildcards() throws {
        #expect(try resource("*").matches("arn:aws:iot:eu-west-1:999999999999:client/x", context: Fixtures.device))
        let anyRegion = try resource("arn:aws:iot:*:*:topic/a")
        #expect(anyRegion.matches("arn:aws:iot:eu-west-1:999999999999:topic/a", context: Fixtures.device))
        #expect(!anyRegion.matches("arn:aws:iot:eu-west-1:999999999999:topic/ab", context: Fixtures.device))
    }

    @Test("a failed '*' backtracks and tries a later split")
    func backtracking() throws {
        let pattern = try resource(Fixtures.arn("topic/*/data/*/x"))
        #expect(pattern.matches(Fixtures.arn("topic/a/data/b/data/c/x"), context: Fixtures.device))
        #expect(pattern.matches(Fixtures.arn("topic/data/data/x/x"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/a/data/b/y"), context: Fixtures.device))
    }

    @Test(
        "each variable is substituted from the context",
        arguments: [
            ("${iot:ClientId}", "sensor-1"),
            ("${iot:Connection.Thing.ThingName}", "thing-1"),
            ("${iot:Connection.Thing.ThingTypeName}", "thermostat"),
            ("${iot:Connection.Thing.Attributes[floor]}", "3"),
            ("${iot:Connection.Thing.IsAttached}", "true"),
            ("${iot:Certificate.Subject.CommonName}", "device.example.com"),
        ]
    )
    func variables(variable: String, value: String) throws {
        let pattern = try resource(Fixtures.arn("topic/things/\(variable)/*"))
        #expect(pattern.matches(Fixtures.arn("topic/things/\(value)/data"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/things/other/data"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/things/\(variable)/data"), context: Fixtures.device))
    }

    @Test("a variable may follow a '*' and sit next to literal text")
    func variableAfterStar() throws {
        let pattern = try resource(Fixtures.arn("topic/*-${iot:ClientId}x"))
        #expect(pattern.matches(Fixtures.arn("topic/a/b-sensor-1x"), context: Fixtures.device))
        #expect(pattern.matches(Fixtures.arn("topic/-sensor-1-sensor-1x"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/a-sensor-2x"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/a-sensor-1"), context: Fixtures.device))
    }

    @Test("IsAttached is 'false' when no thing is attached")
    func isAttachedFalse() throws {
        let pattern = try resource(Fixtures.arn("topic/attached/${iot:Connection.Thing.IsAttached}"))
        #expect(pattern.matches(Fixtures.arn("topic/attached/false"), context: Fixtures.anonymous))
        #expect(!pattern.matches(Fixtures.arn("topic/attached/true"), context: Fixtures.anonymous))
    }

    @Test(
        "a variable without a value makes the resource match nothing",
        arguments: [
            "${iot:Connection.Thing.ThingName}", "${iot:Connection.Thing.ThingTypeName}",
            "${iot:Connection.Thing.Attributes[floor]}", "${iot:Certificate.Subject.CommonName}",
        ]
    )
    func unresolvedVariable(variable: String) throws {
        let pattern = try resource(Fixtures.arn("topic/*\(variable)*"))
        for topic in ["topic/", "topic/x", "topic/\(variable)", "topic/thing-1"] {
            #expect(!pattern.matches(Fixtures.arn(topic), context: Fixtures.anonymous), "\(topic)")
        }
    }

    @Test("a missing attribute is unresolved even when the thing has others")
    func missingAttribute() throws {
        let pattern = try resource(Fixtures.arn("topic/${iot:Connection.Thing.Attributes[room]}*"))
        #expect(!pattern.matches(Fixtures.arn("topic/x"), context: Fixtures.device))
    }

    @Test("an empty value is a value, and substitutes nothing")
    func emptyAttribute() throws {
        let pattern = try resource(Fixtures.arn("topic/x${iot:Connection.Thing.Attributes[empty]}y"))
        #expect(pattern.matches(Fixtures.arn("topic/xy"), context: Fixtures.device))
    }

    @Test("a client id with '*' or '?' in it matches only literally")
    func substitutedWildcardsAreLiteral() throws {
        let pattern = try resource(Fixtures.arn("topic/${iot:ClientId}/data"))
        var context = Fixtures.device
        context.clientId = "a*"
        #expect(pattern.matches(Fixtures.arn("topic/a*/data"), context: context))
        #expect(!pattern.matches(Fixtures.arn("topic/abc/data"), context: context))
        #expect(!pattern.matches(Fixtures.arn("topic/a/b/data"), context: context))
        context.clientId = "?"
        #expect(pattern.matches(Fixtures.arn("topic/?/data"), context: context))
        #expect(!pattern.matches(Fixtures.arn("topic/x/data"), context: context))
        context.clientId = "${iot:ClientId}"
        #expect(pattern.matches(Fixtures.arn("topic/${iot:ClientId}/data"), context: context))
    }

    @Test("${*}, ${?} and ${$} write literal characters")
    func escapedWildcards() throws {
        let pattern = try resource(Fixtures.arn("topic/${*}/${?}/${$}{x}"))
        #expect(pattern.matches(Fixtures.arn("topic/*/?/${x}"), context: Fixtures.device))
        #expect(!pattern.matches(Fixtures.arn("topic/a/b/${x}"), context: Fixtures.device))
    }

    @Test("matching is case-sensitive")
    func caseSensitive() throws {
        #expect(
            !(try resource(Fixtures.arn("topic/Data"))).matches(Fixtures.arn("topic/data"), context: Fixtures.device)
        )
    }

    /// The matcher against a plain recursive definition, on random patterns and texts over a
    /// small alphabet, so that every backtracking path is exercised.
    @Test("the matcher agrees with the recursive definition of '*' and '?'")
    func agreesWithReference() throws {
        func reference(_ pattern: Substring, _ text: Substring) -> Bool {
            guard let first = pattern.first else { return text.isEmpty }
            switch first {
            case "*":
                var rest = text
                while true {
                    if reference(pattern.dropFirst(), rest) { return true }
                    if rest.isEmpty { return false }
                    rest = rest.dropFirst()
                }
            case "?":
                return !text.isEmpty && reference(pattern.dropFirst(), text.dropFirst())
            default:
                return text.first == first && reference(pattern.dropFirst(), text.dropFirst())
            }
        }
        var generator = SplitMix64(state: 2012_10_17)
        let alphabet: [Character] = ["a", "b", "/", "é"]
        for _ in 0..<5_000 {
            let pattern = String(
                (0..<Int.random(in: 0...7, using: &generator)).map { _ in
                    (alphabet + ["*", "?"]).randomElement(using: &generator)!
                }
            )
            let text = String(
                (0..<Int.random(in: 0...9, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            )
            let compiled = try resource("arn:" + pattern)
            #expect(
                compiled.matches("arn:" + text, context: Fixtures.device) == reference(pattern[...], text[...]),
                "\(pattern) against \(text)"
            )
        }
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
