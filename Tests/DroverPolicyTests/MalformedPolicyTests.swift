import Testing

@testable import DroverPolicy

/// A document that will not parse, or is not a valid policy, is refused with what is wrong and
/// where: the line and column (1-based, in characters) and the UTF-8 offset of the offending text.
@Suite("Malformed documents are refused with the position of the error")
struct MalformedPolicyTests {
    @Test("a trailing comma in a list is reported at the comma")
    func trailingCommaInList() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
              ]
            }
            """
        )
        #expect(error.code == .malformedJSON)
        #expect(error.message == "trailing comma before ']'")
        #expect(error.line == 4)
        #expect(error.column == 66)
        #expect(error.description == "trailing comma before ']' at line 4, column 66")
    }

    @Test("a trailing comma in an object is reported at the comma")
    func trailingCommaInObject() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",}
            }
            """
        )
        #expect(error.message == "trailing comma before '}'")
        #expect((error.line, error.column) == (3, 76))
    }

    @Test("a missing comma between members expects ',' or '}'")
    func missingComma() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17"
              "Statement": {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}
            }
            """
        )
        #expect(error.description == "expected ',' or '}' at line 3, column 3")
        #expect(error.offset == 30)
    }

    @Test("a string without its closing quote is reported at its opening quote")
    func missingClosingQuote() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {
                "Effect": "Allow,
                "Action": "iot:Connect",
                "Resource": "*"
              }
            }
            """
        )
        #expect(error.code == .malformedJSON)
        #expect(error.message == "string is missing its closing '\"'")
        #expect((error.line, error.column) == (4, 15))
    }

    @Test("a value without its opening quote is not a value")
    func missingOpeningQuote() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {"Effect": Allow", "Action": "iot:Connect", "Resource": "*"}
            }
            """
        )
        #expect(error.message == "expected a value, found 'A'")
        #expect((error.line, error.column) == (3, 27))
    }

    @Test("columns count characters, not bytes, and the offset counts bytes")
    func columnsCountCharacters() throws {
        let error = try refusal(#"{"Version": "2012-10-17", "Statement": {"Sid": "été", "Effect": x}}"#)
        #expect(error.message == "expected a value, found 'x'")
        #expect(error.column == 65)
        #expect(error.offset == 66)
    }

    @Test("Effect other than Allow or Deny is refused at its value")
    func wrongEffect() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": [
                {
                  "Effect": "allow",
                  "Action": "iot:Connect",
                  "Resource": "*"
                }
              ]
            }
            """
        )
        #expect(error.code == .invalidPolicy)
        #expect(error.message == #""Effect" must be "Allow" or "Deny", not "allow""#)
        #expect((error.line, error.column) == (5, 17))
    }

    @Test("an unknown statement key is refused, naming the key")
    func unknownStatementKey() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {
                "Effect": "Allow",
                "Actions": "iot:Connect",
                "Resource": "*"
              }
            }
            """
        )
        #expect(error.message == #"unknown key "Actions" in a statement"#)
        #expect((error.line, error.column) == (5, 5))
    }

    @Test("a key in the wrong case is refused with the right spelling")
    func keyInWrongCase() throws {
        let error = try refusal(#"{"version": "2012-10-17", "Statement": []}"#)
        #expect(error.message == #"unknown key "version" in the policy document (did you mean "Version"?)"#)
        #expect(error.column == 2)
    }

    @Test("an unknown top-level key is refused, naming the key")
    func unknownDocumentKey() throws {
        let error = try refusal(
            #"{"Version": "2012-10-17", "Id": "x", "Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}"#
        )
        #expect(error.message == #"unknown key "Id" in the policy document"#)
        #expect(error.column == 27)
    }

    @Test("an unknown variable is refused at its '$'")
    func unknownVariable() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/${iot:ThingName}/data"
              }
            }
            """
        )
        #expect(error.code == .invalidPolicy)
        #expect(
            error.message.hasPrefix(#"unknown policy variable "${iot:ThingName}"; Drover supports ${iot:ClientId}"#)
        )
        #expect((error.line, error.column) == (6, 59))
    }

    @Test("a variable in the wrong case is refused with the right spelling")
    func variableInWrongCase() throws {
        let error = try refusal(Fixtures.statement(resource: #""arn:aws:iot:*:*:client/${iot:clientid}""#))
        #expect(error.message == #"unknown policy variable "${iot:clientid}" (did you mean "${iot:ClientId}"?)"#)
        #expect(error.column == 115)
    }

    @Test("the position of a variable counts the escapes written before it")
    func variableAfterEscapes() throws {
        // `\u00e9` is six bytes of source for two bytes of text, `\/` two for one.
        let error = try refusal(Fixtures.statement(resource: #""arn:aws:iot:*:*:topic\/caf\u00e9/${iot:Nope}""#))
        #expect(error.message.hasPrefix(#"unknown policy variable "${iot:Nope}""#))
        #expect(error.column == 125)
        #expect(error.offset == 124)
    }

    @Test("an unterminated variable is refused at its '$'")
    func unterminatedVariable() throws {
        let error = try refusal(Fixtures.statement(resource: #""arn:aws:iot:*:*:topic/${iot:ClientId""#))
        #expect(error.message == #"policy variable "${" has no closing '}'"#)
        #expect(error.column == 114)
    }

    @Test("Condition is refused as unsupported, at its key")
    func conditionRefused() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": "*",
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
              }
            }
            """
        )
        #expect(error.code == .unsupportedElement)
        #expect(error.message.hasPrefix(#""Condition" is not supported"#))
        #expect((error.line, error.column) == (7, 5))
    }

    @Test("NotAction and NotResource are refused as unsupported", arguments: ["NotAction", "NotResource"])
    func notElementsRefused(key: String) throws {
        let error = try refusal(
            #"{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "\#(key)": "x", "Resource": "*"}}"#
        )
        #expect(error.code == .unsupportedElement)
        #expect(error.message.hasPrefix("\"\(key)\" is not supported"))
        #expect(error.column == 59)
    }

    @Test("an empty Statement list is refused at its bracket")
    func emptyStatement() throws {
        let error = try refusal(
            """
            {
              "Version": "2012-10-17",
              "Statement": []
            }
            """
        )
        #expect(error.message == #""Statement" must not be an empty list"#)
        #expect((error.line, error.column) == (3, 16))
    }

    @Test("a version other than 2012-10-17 is refused at its value")
    func wrongVersion() throws {
        let error = try refusal(
            #"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}"#
        )
        #expect(error.message == #"unsupported "Version" "2008-10-17"; policies use "2012-10-17""#)
        #expect(error.column == 13)
    }

    @Test("a missing Version or Statement is reported at the document's brace")
    func missingTopLevelKeys() throws {
        let noVersion = try refusal(#"  {"Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}}"#)
        #expect(noVersion.message == #"the policy document has no "Version""#)
        #expect(noVersion.column == 3)
        let noStatement = try refusal(#"{"Version": "2012-10-17"}"#)
        #expect(noStatement.message == #"the policy document has no "Statement""#)
    }

    @Test("a statement without Effect, Action or Resource is reported at its brace")
    func missingStatementKeys() throws {
        let error = try refusal(
            #"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*"}]}"#
        )
        #expect(error.message == #"the statement has no "Resource""#)
        #expect(error.column == 41)
    }

    @Test(
        "actions other than iot: names are refused at the action",
        arguments: [
            (#""s3:GetObject""#, "s3:GetObject", 70),
            (#""""#, "", 70),
            (#"["iot:Publish", "*"]"#, "*", 86),
            (#"["iot:Publish", "iot:"]"#, "iot:", 86),
            (#"["iot:Pub-lish"]"#, "iot:Pub-lish", 71),
        ]
    )
    func invalidActions(action: String, name: String, column: Int) throws {
        let error = try refusal(Fixtures.statement(action: action, resource: #""*""#))
        #expect(
            error.message == "invalid action \"\(name)\": an action is \"iot:\" and a name, such as \"iot:Publish\""
        )
        #expect(error.column == column)
    }

    @Test("Action and Resource must be strings or non-empty lists of strings")
    func wrongShapes() throws {
        let emptyList = try refusal(Fixtures.statement(action: "[]", resource: #""*""#))
        #expect(emptyList.message == #""Action" must not be an empty list"#)
        #expect(emptyList.column == 70)
        let number = try refusal(Fixtures.statement(resource: "42"))
        #expect(number.message == #""Resource" must be a string or a list of strings, not a number"#)
        let mixed = try refusal(Fixtures.statement(resource: #"["*", null]"#))
        #expect(mixed.message == #""Resource" must be a string or a list of strings; found null in the list"#)
        #expect(mixed.column == 97)
    }

    @Test("a resource that is neither an ARN nor '*' is refused")
    func resourceNotAnARN() throws {
        let error = try refusal(Fixtures.statement(resource: #""topic/a""#))
        #expect(error.message == #"invalid resource "topic/a": a resource is an ARN ("arn:aws:iot:...") or "*""#)
        #expect(error.column == 91)
    }

    @Test("a statement that is not an object is refused at the element")
    func statementNotAnObject() throws {
        let error = try refusal(#"{"Version": "2012-10-17", "Statement": ["Allow"]}"#)
        #expect(error.message == "each statement must be an object, not a string")
        #expect(error.column == 41)
    }

    @Test("a document that is not an object is refused")
    func documentNotAnObject() throws {
        let error = try refusal("  [1, 2]")
        #expect(error.message == "a policy document must be a JSON object, not a list")
        #expect(error.column == 3)
    }

    @Test("a duplicate key is refused at its second occurrence")
    func duplicateKey() throws {
        let error = try refusal(
            #"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Effect": "Deny", "Action": "iot:*", "Resource": "*"}}"#
        )
        #expect(error.message == #"duplicate key "Effect""#)
        #expect(error.column == 60)
    }

    @Test(
        "JSON syntax errors name what was expected",
        arguments: [
            ("", "the document is empty", 1, 1),
            ("   ", "the document is empty", 1, 4),
            ("{\"Version\": \"2012-10-17\"", "unexpected end of the document", 1, 25),
            ("{\"Version\" \"2012-10-17\"}", "expected ':' after \"Version\"", 1, 12),
            ("{Version: 1}", "expected a member name in double quotes", 1, 2),
            ("{} {}", "unexpected '{' after the end of the document", 1, 4),
            ("{\"a\": [1 2]}", "expected ',' or ']'", 1, 10),
            ("{\"a\": tru}", "expected a value, found 't'", 1, 7),
            ("{\"a\": 01}", "expected ',' or '}'", 1, 8),
            ("{\"a\": -}", "invalid number", 1, 7),
            ("{\"a\": \"x\ty\"}", "control character U+0009 must be escaped in a string", 1, 9),
            ("{\"a\": \"\\x\"}", "invalid escape sequence '\\x'", 1, 8),
            ("{\"a\": \"\\ud800\"}", "\\u escape is an unpaired surrogate", 1, 8),
            ("{\"a\": // comment\n1}", "expected a value, found '/'", 1, 7),
        ]
    )
    func syntaxErrors(text: String, message: String, line: Int, column: Int) throws {
        let error = try refusal(text)
        #expect(error.code == .malformedJSON)
        #expect(error.message == message)
        #expect((error.line, error.column) == (line, column))
    }

    @Test("deep nesting is refused instead of exhausting the stack")
    func deepNesting() throws {
        let error = try refusal("{\"a\": " + String(repeating: "[", count: 10_000))
        #expect(error.message == "the document is nested too deeply")
        #expect(error.column == 38)
    }

    @Test("a document over 20 KB is refused; one at the limit is parsed")
    func sizeLimit() throws {
        let base = Fixtures.statement(resource: #""*""#)
        let padded = base + String(repeating: " ", count: PolicyDocument.maximumSize - base.utf8.count)
        _ = try document(padded)
        let error = try refusal(padded + " ")
        #expect(error.code == .documentTooLarge)
        #expect(error.message == "the policy document is 20481 bytes; the limit is 20480")
        #expect((error.line, error.column, error.offset) == (1, 1, 0))
    }
}
