import Testing

@testable import DroverPolicy

/// The shapes AWS IoT accepts: one statement or a list, one action or resource or a list.
@Suite("Valid documents")
struct PolicyDocumentTests {
    @Test("a single statement written as an object is a list of one")
    func singleStatementObject() throws {
        let policy = try document(
            """
            {
              "Version": "2012-10-17",
              "Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}
            }
            """
        )
        #expect(policy.version == "2012-10-17")
        #expect(policy.statements.count == 1)
        #expect(policy.statements[0].effect == .allow)
        #expect(policy.statements[0].sid == nil)
    }

    @Test("statements written as a list keep their order")
    func statementList() throws {
        let policy = try document(
            """
            {
              "Version": "2012-10-17",
              "Statement": [
                {"Sid": "First", "Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
                {"Sid": "Second", "Effect": "Deny", "Action": "iot:Publish", "Resource": "*"}
              ]
            }
            """
        )
        #expect(policy.statements.map(\.sid) == ["First", "Second"])
        #expect(policy.statements.map(\.effect) == [.allow, .deny])
    }

    @Test("Action and Resource may each be a string or a list of strings")
    func stringOrList() throws {
        let single = try document(
            Fixtures.statement(action: #""iot:Publish""#, resource: #""arn:aws:iot:*:*:topic/a""#)
        )
        #expect(single.statements[0].actions.map(\.text) == ["iot:Publish"])
        #expect(single.statements[0].resources.map(\.text) == ["arn:aws:iot:*:*:topic/a"])

        let lists = try document(
            Fixtures.statement(
                action: #"["iot:Publish", "iot:Receive"]"#,
                resource: #"["arn:aws:iot:*:*:topic/a", "arn:aws:iot:*:*:topic/b"]"#
            )
        )
        #expect(lists.statements[0].actions.map(\.text) == ["iot:Publish", "iot:Receive"])
        #expect(lists.statements[0].resources.map(\.text) == ["arn:aws:iot:*:*:topic/a", "arn:aws:iot:*:*:topic/b"])
    }

    @Test("any iot: action is accepted, data-plane ones and wildcards included")
    func anyIoTAction() throws {
        let policy = try document(
            Fixtures.statement(
                action: #"["iot:UpdateThingShadow", "iot:*", "iot:Pub*", "iot:?onnect"]"#,
                resource: #""*""#
            )
        )
        #expect(policy.statements[0].actions.count == 4)
    }

    @Test("escapes, whitespace and a byte order mark are JSON like any other")
    func jsonDetails() throws {
        let policy = try document(
            "\u{FEFF}\r\n{ \"Version\" : \"2012-10-17\" ,\t\"Statement\" : {\"Effect\":\"Allow\","
                + #""Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic\/caf\u00e9\ud83d\ude00"}}"#
        )
        #expect(policy.statements[0].resources[0].text == "arn:aws:iot:*:*:topic/café😀")
    }

    @Test("every supported variable parses")
    func supportedVariables() throws {
        let variables = [
            "${iot:ClientId}", "${iot:Connection.Thing.ThingName}", "${iot:Connection.Thing.ThingTypeName}",
            "${iot:Connection.Thing.Attributes[floor]}", "${iot:Connection.Thing.IsAttached}",
            "${iot:Certificate.Subject.CommonName}", "${*}", "${?}", "${$}",
        ]
        for variable in variables {
            #expect(ResourcePattern("arn:aws:iot:*:*:topic/" + variable) != nil, "\(variable)")
        }
        #expect(ResourcePattern("arn:aws:iot:*:*:topic/${iot:Connection.Thing.Attributes[]}") == nil)
    }
}
