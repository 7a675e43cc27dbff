/// A JSON value that remembers where it starts in the source text.
///
/// Foundation's `JSONSerialization` forgets positions, and a refused policy must say where it is
/// wrong, so the policy parser keeps its own small tree. Numbers are validated but not kept:
/// no element of a policy document is a number.
struct JSONValue: Sendable {
    enum Kind: Sendable {
        case object([JSONMember])
        case array([JSONValue])
        case string(JSONString)
        case number
        case bool(Bool)
        case null
    }

    var kind: Kind
    /// UTF-8 offset of the value's first byte: the brace, the bracket, the opening quote.
    var offset: Int

    /// How a message names the kind of a value it did not expect ("found a number").
    var kindDescription: String {
        switch kind {
        case .object: "an object"
        case .array: "a list"
        case .string: "a string"
        case .number: "a number"
        case .bool(let value): value ? "true" : "false"
        case .null: "null"
        }
    }
}

/// One `"name": value` pair of an object, in source order. Duplicate names are refused by the
/// parser, so a member's name is unique within its object.
struct JSONMember: Sendable {
    var key: JSONString
    var value: JSONValue
}

/// A decoded string and where it was written.
struct JSONString: Sendable {
    var value: String
    /// UTF-8 offset of the opening quote.
    var offset: Int
    /// Whether the source spelled it with backslash escapes, in which case offsets inside the
    /// decoded value and offsets in the source differ (see ``JSONParser/sourceOffset(of:in:source:)``).
    var hasEscapes: Bool
}
