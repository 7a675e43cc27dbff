@testable import DroverHTTP
import DroverRegistry
import Testing

@Suite("CreateThing's body")
struct CreateThingInputTests {
    typealias Input = ControlPlane.CreateThingInput

    /// What a reader made of a body: the input, or the refusal's message.
    enum Outcome: Equatable {
        case read(Input)
        case refused(String)

        init(_ read: () throws -> Input) {
            do { self = .read(try read()) } catch let error as RegistryError { self = .refused(error.message) } catch { self = .refused("other \(error)") }
        }

        func isRefusal(_ prefix: String) -> Bool {
            if case .refused(let message) = self { return message.hasPrefix(prefix) }
            return false
        }
    }

    /// Pieces of bodies, well formed and not, of the right types and of the wrong ones.
    static let values = [#""t1""#, "null", "1", "true", "false", "[]", "{}", #"["a"]"#, #""é\n\u00e9""#, "1.5", #""""#]
    static let payloads = [#"{"attributes":{"a":"b"}}"#, #"{"attributes":{"a":1}}"#, #"{"attributes":{"a":null}}"#, #"{"attributes":null}"#,
                           #"{"attributes":[]}"#, #"{"merge":true}"#, #"{"merge":1}"#, #"{"merge":"true"}"#, #"{"merge":null,"x":[1,{}]}"#,
                           #"{"attributes":{"k":"v","l":"w"},"merge":false}"#, "null", "[]", #""p""#, "{}"]

    static func randomBody(_ generator: inout some RandomNumberGenerator) -> String {
        var members: [String] = []
        for _ in 0..<Int.random(in: 0...4, using: &generator) {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0: members.append(#""thingTypeName":"# + values.randomElement(using: &generator)!)
            case 1: members.append(#""billingGroupName":"# + values.randomElement(using: &generator)!)
            case 2: members.append(#""attributePayload":"# + payloads.randomElement(using: &generator)!)
            case 3: members.append(#""unknown":"# + (values + payloads).randomElement(using: &generator)!)
            default: members.append(#""thingName":"# + values.randomElement(using: &generator)!)
            }
        }
        // No name twice: JSONDecoder takes one of them, where the parser refuses the body.
        var seen: Set<Substring> = []
        members = members.filter { seen.insert($0.prefix { $0 != ":" }).inserted }
        var body = " {" + members.joined(separator: ", ") + "}\n"
        switch Int.random(in: 0..<12, using: &generator) {
        case 0: body.removeLast(2)  // cut short
        case 1: body = body.replacingOccurrences(of: "}", with: "},")  // trailing comma
        case 2: body = "[" + body + "]"
        case 3: body = values.randomElement(using: &generator)!
        case 4: body += "x"
        default: break
        }
        return body
    }

    @Test("the same input or the same refusal as JSONDecoder, on 20 000 generated bodies")
    func agreesWithTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        var refused = 0
        var wrongType = 0
        var read = 0
        for _ in 0..<20_000 {
            let body = Array(Self.randomBody(&generator).utf8)
            let expected = Outcome { try ControlPlane.decode(Input.self, body: body) }
            let actual = Outcome { try Input(body: body) }
            #expect(actual == expected, "body: \(String(decoding: body, as: UTF8.self))")
            if expected.isRefusal("the body is not") { refused += 1 }
            if expected.isRefusal("the body's field") { wrongType += 1 }
            if case .read = expected { read += 1 }
        }
        // The generator reaches both kinds of refusal, and acceptance.
        #expect(refused > 1_000)
        #expect(wrongType > 1_000)
        #expect(read > 1_000)
    }

    @Test("an empty body is no members; what CreateThing reads is read")
    func plainCases() throws {
        #expect(try Input(body: []) == Input())
        let body = Array(#"{"thingTypeName":"sensor","attributePayload":{"attributes":{"a":"1","b":""}},"billingGroupName":null}"#.utf8)
        #expect(try Input(body: body) == Input(thingTypeName: "sensor", attributePayload: .init(attributes: ["a": "1", "b": ""])))
        #expect(throws: RegistryError.self) { try Input(body: Array(#"{"thingTypeName":"a","thingTypeName":"b"}"#.utf8)) }
        #expect(throws: RegistryError.self) { try Input(body: Array((String(repeating: "[", count: 200) + String(repeating: "]", count: 200)).utf8)) }
    }
}
