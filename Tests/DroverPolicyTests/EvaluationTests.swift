import Testing

@testable import DroverPolicy

/// AWS IoT's rules: an explicit Deny wins, else an Allow must match, else implicit deny.
@Suite("Evaluation")
struct EvaluationTests {
    /// The usual device policy: connect as yourself, publish and receive under your own things/
    /// topic, and nothing under anyone else's.
    static let devicePolicy = """
        {
          "Version": "2012-10-17",
          "Statement": [
            {
              "Effect": "Allow",
              "Action": "iot:Connect",
              "Resource": "arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}"
            },
            {
              "Sid": "OwnTopics",
              "Effect": "Allow",
              "Action": ["iot:Publish", "iot:Receive"],
              "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/${iot:Connection.Thing.ThingName}/*"
            }
          ]
        }
        """

    static let denyOthers = """
        {
          "Version": "2012-10-17",
          "Statement": [
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "*"},
            {
              "Sid": "NoOthers",
              "Effect": "Deny",
              "Action": "iot:Publish",
              "Resource": "arn:aws:iot:us-east-1:123456789012:topic/things/other/*"
            }
          ]
        }
        """

    static let allowAll =
        #"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}"#

    func policies(_ named: (String, String)...) throws -> [NamedPolicy] {
        try named.map { NamedPolicy(name: $0.0, document: try document($0.1)) }
    }

    @Test("an Allow that matches action and resource allows")
    func allow() throws {
        let policies = try policies(("device", Self.devicePolicy))
        let decision = evaluate(
            policies,
            .publish(topic: "things/thing-1/temp", in: Fixtures.device),
            context: Fixtures.device
        )
        #expect(decision.isAllowed)
        #expect(decision.outcome == .allowed)
        #expect(decision.statement?.policyName == "device")
        #expect(decision.statement?.index == 1)
        #expect(decision.statement?.sid == "OwnTopics")
        #expect(decision.statement?.action == "iot:Publish")
    }

    @Test("a request that no statement matches is implicitly denied")
    func implicitDeny() throws {
        let policies = try policies(("device", Self.devicePolicy))
        let wrongTopic = evaluate(
            policies,
            .publish(topic: "things/thing-2/temp", in: Fixtures.device),
            context: Fixtures.device
        )
        #expect(!wrongTopic.isAllowed)
        #expect(wrongTopic.outcome == .implicitDeny)
        #expect(wrongTopic.statement == nil)
        let wrongAction = evaluate(
            policies,
            .subscribe(topicFilter: "things/thing-1/#", in: Fixtures.device),
            context: Fixtures.device
        )
        #expect(wrongAction.outcome == .implicitDeny)
        let noPolicies = evaluate([], .connect(clientId: "sensor-1", in: Fixtures.device), context: Fixtures.device)
        #expect(noPolicies.outcome == .implicitDeny)
    }

    @Test("a Deny in one policy wins over an Allow in another, in either order")
    func denyWinsAcrossPolicies() throws {
        let request = PolicyRequest.publish(topic: "things/other/temp", in: Fixtures.device)
        for order in [
            [("all", Self.allowAll), ("limits", Self.denyOthers)],
            [("limits", Self.denyOthers), ("all", Self.allowAll)],
        ] {
            let decision = evaluate(
                try order.map { NamedPolicy(name: $0.0, document: try document($0.1)) },
                request,
                context: Fixtures.device
            )
            #expect(decision.outcome == .explicitDeny)
            #expect(decision.statement?.policyName == "limits")
            #expect(decision.statement?.sid == "NoOthers")
        }
    }

    @Test("a Deny in the same statement list wins over an earlier Allow")
    func denyWinsWithinPolicy() throws {
        let text = """
            {
              "Version": "2012-10-17",
              "Statement": [
                {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "iot:Connect", "Resource": "*"}
              ]
            }
            """
        let policy = try policies(("p", text))
        #expect(
            evaluate(policy, .connect(clientId: "x", in: Fixtures.device), context: Fixtures.device).outcome
                == .explicitDeny
        )
        #expect(evaluate(policy, .publish(topic: "x", in: Fixtures.device), context: Fixtures.device).isAllowed)
    }

    @Test("a Deny whose variable has no value denies nothing")
    func unresolvedDenyDoesNotDeny() throws {
        let policies = try policies(
            ("all", Self.allowAll),
            (
                "deny",
                Fixtures.statement(
                    effect: "Deny",
                    resource: #""arn:aws:iot:*:*:topic/${iot:Connection.Thing.ThingName}/*""#
                )
            )
        )
        let decision = evaluate(policies, .publish(topic: "x/y", in: Fixtures.anonymous), context: Fixtures.anonymous)
        #expect(decision.isAllowed)
    }

    @Test("an Allow whose variable has no value allows nothing")
    func unresolvedAllowDoesNotAllow() throws {
        let policies = try policies(("device", Self.devicePolicy))
        let decision = evaluate(
            policies,
            .publish(topic: "things/thing-1/temp", in: Fixtures.anonymous),
            context: Fixtures.anonymous
        )
        #expect(decision.outcome == .implicitDeny)
    }

    @Test("iot:* matches every action, data-plane ones included")
    func iotStar() throws {
        let policies = try policies(("all", Self.allowAll))
        let actions: [PolicyAction] = [
            .connect, .publish, .subscribe, .receive, .retainPublish, PolicyAction(rawValue: "iot:UpdateThingShadow")!,
        ]
        for action in actions {
            let request = PolicyRequest(action: action, resource: Fixtures.arn("topic/a"))
            #expect(evaluate(policies, request, context: Fixtures.device).isAllowed, "\(action)")
        }
    }

    @Test(
        "action wildcards: '*' for a run and '?' for one letter, case-sensitive",
        arguments: [
            ("iot:Pub*", PolicyAction.publish, true), ("iot:Pub*", .subscribe, false),
            ("iot:*Publish", .retainPublish, true), ("iot:*Publish", .publish, true),
            ("iot:?onnect", .connect, true), ("iot:?onnect", .subscribe, false),
            ("iot:publish", .publish, false), ("iot:Publish", .retainPublish, false),
            ("iot:R*", .receive, true), ("iot:R*", .retainPublish, true),
        ]
    )
    func actionWildcards(pattern: String, action: PolicyAction, matches: Bool) throws {
        let policies = try policies(("p", Fixtures.statement(action: "\"\(pattern)\"", resource: #""*""#)))
        let request = PolicyRequest(action: action, resource: Fixtures.arn("topic/a"))
        #expect(evaluate(policies, request, context: Fixtures.device).isAllowed == matches)
        #expect(ActionPattern(pattern)!.matches(action) == matches)
    }

    @Test("the first matching Allow is the one reported")
    func firstAllowReported() throws {
        let policies = try policies(("a", Self.allowAll), ("b", Self.allowAll))
        let decision = evaluate(policies, .receive(topic: "x", in: Fixtures.device), context: Fixtures.device)
        #expect(decision.statement?.policyName == "a")
    }

    @Test("explanations name the policy, the statement, its Sid and what matched")
    func explanation() throws {
        let policies = try policies(("device", Self.devicePolicy), ("p1", Self.denyOthers))
        let denied = evaluate(
            policies,
            .publish(topic: "things/other/temp", in: Fixtures.device),
            context: Fixtures.device
        )
        #expect(
            denied.explanation
                == #"denied by policy 'p1', statement 2 (Sid "NoOthers"): Deny iot:Publish on "#
                + "arn:aws:iot:us-east-1:123456789012:topic/things/other/*"
        )
        let allowed = evaluate(policies, .connect(clientId: "sensor-1", in: Fixtures.device), context: Fixtures.device)
        #expect(
            allowed.explanation
                == "allowed by policy 'device', statement 1: Allow iot:Connect on "
                + "arn:aws:iot:us-east-1:123456789012:client/${iot:ClientId}"
        )
        let implicit = evaluate(policies, .publish(topic: "elsewhere", in: Fixtures.device), context: Fixtures.device)
        #expect(
            implicit.explanation
                == "no statement allows iot:Publish on "
                + "arn:aws:iot:us-east-1:123456789012:topic/elsewhere: implicit deny"
        )
        #expect(implicit.description == implicit.explanation)
    }

    @Test("requests name the AWS IoT resource for each MQTT action")
    func requestARNs() {
        let context = Fixtures.device
        #expect(
            PolicyRequest.connect(clientId: "c", in: context).resource == "arn:aws:iot:us-east-1:123456789012:client/c"
        )
        #expect(
            PolicyRequest.publish(topic: "a/b", in: context)
                == PolicyRequest(action: .publish, resource: Fixtures.arn("topic/a/b"))
        )
        #expect(PolicyRequest.retainPublish(topic: "a", in: context).action == .retainPublish)
        #expect(PolicyRequest.receive(topic: "a", in: context).resource == Fixtures.arn("topic/a"))
        #expect(
            PolicyRequest.subscribe(topicFilter: "a/+/#", in: context).resource == Fixtures.arn("topicfilter/a/+/#")
        )
    }

    @Test("a requested action is iot: and letters, without wildcards")
    func requestedActions() {
        #expect(PolicyAction(rawValue: "iot:UpdateThingShadow")?.rawValue == "iot:UpdateThingShadow")
        #expect(PolicyAction(rawValue: "iot:Publish") == .publish)
        for invalid in ["iot:", "iot:Pub*", "s3:GetObject", "", "iot:Get-Thing", "IOT:Publish"] {
            #expect(PolicyAction(rawValue: invalid) == nil, "\(invalid)")
        }
    }
}
