import DroverShadow
import Testing

@testable import DroverFleetConfig

private func json(_ text: String) -> JSONValue {
    try! JSONValue.parse(text).get()
}

private func object(_ text: String) -> [String: JSONValue] {
    json(text).objectValue!
}

/// A shadow made the way devices and deployments make them: updates at given times.
private func shadow(_ updates: [(String, Int64)]) -> ShadowDocument? {
    var document: ShadowDocument?
    for (request, time) in updates {
        guard case .accepted(let update) = Shadow.update(document, request: Array(request.utf8), now: time) else {
            Issue.record("update refused: \(request)")
            return nil
        }
        document = update.document
    }
    return document
}

@Suite("A template's document is a desired state that fits a shadow")
struct TemplateValidationTests {
    @Test("an object of values is accepted")
    func accepted() throws {
        let members = try ConfigDocument.validate(json(#"{"rate": 5, "mode": {"eco": true}, "list": [1, 2]}"#), limits: ShadowLimits()).get()
        #expect(members["rate"] == .number(JSONNumber(5)))
    }

    @Test("refused with a message that says what to fix", arguments: [
        (#"[1, 2]"#, "must be a JSON object"),
        (#"{}"#, "at least one key"),
        (#"{"a": {"b": null}}"#, "sets a.b to null"),
        (#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}"#, "nests 9 levels deep; a shadow allows 8"),
    ])
    func refused(document: String, message: String) {
        guard case .failure(let problem) = ConfigDocument.validate(json(document), limits: ShadowLimits()) else {
            Issue.record("accepted \(document)")
            return
        }
        #expect(problem.description.contains(message))
    }

    @Test("the depth limit is the shadow's: eight levels are allowed, nine are not")
    func depthAsShadow() {
        let eight = json(#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}"#)
        let nine = json(#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":1}}}}}}}}}}"#)
        func shadowAccepts(_ value: JSONValue) -> Bool {
            Shadow.update(nil, request: Array(#"{"state":{"desired":\#(value.jsonString)}}"#.utf8), now: 1).accepted != nil
        }
        #expect((try? ConfigDocument.validate(eight, limits: ShadowLimits()).get()) != nil)
        #expect(shadowAccepts(eight))
        #expect((try? ConfigDocument.validate(nine, limits: ShadowLimits()).get()) == nil)
        #expect(!shadowAccepts(nine))
    }

    @Test("a document larger than a shadow may be is refused")
    func tooLarge() {
        let document = JSONValue.object(["blob": .string(String(repeating: "x", count: 200))])
        guard case .failure(let problem) = ConfigDocument.validate(document, limits: ShadowLimits(maximumDocumentSize: 100)) else {
            Issue.record("accepted")
            return
        }
        #expect(problem.description.contains("a shadow allows 100"))
    }
}

@Suite("Moving a shadow from one configuration to another")
struct PatchTests {
    @Test("keys that only the old configuration set are deleted, at any depth; others stay")
    func removesOldKeys() {
        let patch = ConfigDocument.patch(
            from: object(#"{"rate": 5, "extra": 1, "mode": {"eco": true, "turbo": false}}"#),
            to: object(#"{"rate": 10, "mode": {"eco": false}}"#))
        #expect(JSONValue.object(patch) == json(#"{"rate": 10, "extra": null, "mode": {"eco": false, "turbo": null}}"#))
    }

    @Test("applied to a shadow, the patch leaves desired as the new configuration plus the operator's own keys")
    func appliedToShadow() throws {
        let old = object(#"{"rate": 5, "extra": 1}"#)
        let new = object(#"{"rate": 10}"#)
        let document = try #require(shadow([
            (#"{"state":{"desired":{"rate":5,"extra":1,"operator":"x"}}}"#, Int64(1)),
            (String(decoding: ConfigDocument.updateRequest(ConfigDocument.patch(from: old, to: new)), as: UTF8.self), Int64(2)),
        ]))
        #expect(document.desired == object(#"{"rate": 10, "operator": "x"}"#))
    }

    @Test("a patch from the whole current desired state replaces it exactly (reset)")
    func reset() throws {
        let current = try #require(shadow([(#"{"state":{"desired":{"rate":5,"mine":{"a":1}}}}"#, 1)]))
        let target = object(#"{"rate": 1, "mode": "safe"}"#)
        let request = ConfigDocument.updateRequest(ConfigDocument.patch(from: current.desired, to: target), version: current.version)
        guard case .accepted(let update) = Shadow.update(current, request: request, now: 2) else {
            Issue.record("refused")
            return
        }
        #expect(update.document.desired == target)
    }

    @Test("with a version, a shadow changed in between refuses the write (409)")
    func conflict() throws {
        let current = try #require(shadow([(#"{"state":{"desired":{"rate":5}}}"#, 1)]))
        let request = ConfigDocument.updateRequest(["rate": .number(JSONNumber(1))], version: current.version - 1)
        #expect(Shadow.update(current, request: request, now: 2).rejected?.code == .conflict)
    }
}

@Suite("How a member stands against its configuration")
struct ConditionTests {
    let configuration = object(#"{"rate": 10, "mode": {"eco": true}, "list": [1, 2]}"#)
    let deploy = (#"{"state":{"desired":{"rate": 10, "mode": {"eco": true}, "list": [1, 2]}}}"#, Int64(100))

    @Test("reported equal to the configuration is in sync")
    func inSync() {
        let document = shadow([deploy, (#"{"state":{"reported":{"rate": 10, "mode": {"eco": true}, "list": [1, 2], "other": 1}}}"#, 101)])
        #expect(ConfigDocument.condition(of: document, against: configuration) == .inSync)
    }

    @Test("nothing reported since the configuration was written is pending, with the keys")
    func pending() {
        let document = shadow([(#"{"state":{"reported":{"rate": 5}}}"#, 50), deploy])
        let condition = ConfigDocument.condition(of: document, against: configuration)
        #expect(condition.state == .pending)
        #expect(condition.reason == ConfigDocument.Reason.notReported)
        #expect(condition.keys == ["list", "mode.eco", "rate"])
    }

    @Test("a report in the same second as the write counts as pending, not drifted")
    func sameSecond() {
        let document = shadow([deploy, (#"{"state":{"reported":{"rate": 5}}}"#, 100)])
        #expect(ConfigDocument.condition(of: document, against: configuration).state == .pending)
    }

    @Test("a different value reported after the write is drifted, with the keys that differ")
    func reportedDiffers() {
        let document = shadow([deploy, (#"{"state":{"reported":{"rate": 10, "mode": {"eco": false}, "list": [1, 2]}}}"#, 101)])
        let condition = ConfigDocument.condition(of: document, against: configuration)
        #expect(condition == .init(state: .drifted, reason: ConfigDocument.Reason.reportedDiffers, keys: ["mode.eco"]))
    }

    @Test("an array is compared whole")
    func arrays() {
        let document = shadow([deploy, (#"{"state":{"reported":{"rate": 10, "mode": {"eco": true}, "list": [2, 1]}}}"#, 101)])
        #expect(ConfigDocument.condition(of: document, against: configuration).keys == ["list"])
    }

    @Test("desired changed by someone else is drifted")
    func desiredChanged() {
        let document = shadow([deploy, (#"{"state":{"desired":{"rate": 11}}}"#, 101)])
        let condition = ConfigDocument.condition(of: document, against: configuration)
        #expect(condition == .init(state: .drifted, reason: ConfigDocument.Reason.desiredChanged, keys: ["rate"]))
    }

    @Test("a deleted shadow is drifted")
    func deleted() {
        #expect(ConfigDocument.condition(of: nil, against: configuration).reason == ConfigDocument.Reason.shadowDeleted)
    }
}

extension ShadowUpdateOutcome {
    var accepted: ShadowUpdate? {
        if case .accepted(let update) = self { return update }
        return nil
    }

    var rejected: ShadowError? {
        if case .rejected(let error) = self { return error }
        return nil
    }
}

@Suite("A report in the same second as the configuration write")
struct SameSecondTests {
    @Test("after the write (a later shadow version) is drifted; before it is pending")
    func versionDecides() throws {
        let configuration = object(#"{"rate": 10}"#)
        let after = try #require(shadow([(#"{"state":{"desired":{"rate":10}}}"#, 100), (#"{"state":{"reported":{"rate":5}}}"#, 100)]))
        #expect(ConfigDocument.condition(of: after, against: configuration, writtenVersion: 1).state == .drifted)
        let before = try #require(shadow([(#"{"state":{"reported":{"rate":5}}}"#, 100), (#"{"state":{"desired":{"rate":10}}}"#, 100)]))
        #expect(ConfigDocument.condition(of: before, against: configuration, writtenVersion: 2).state == .pending)
    }
}
