/// A policy as attached to a principal: its name, which decisions quote, and its document.
public struct NamedPolicy: Hashable, Sendable {
    public var name: String
    public var document: PolicyDocument

    public init(name: String, document: PolicyDocument) {
        self.name = name
        self.document = document
    }
}
