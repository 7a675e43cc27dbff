/// A policy variable that Drover can substitute in a resource: `${iot:ClientId}` and friends.
///
/// The set is closed on purpose. An unknown name is refused when the policy is parsed, rather
/// than left unresolved at evaluation, because a typo in a Deny would otherwise silently deny
/// nothing.
struct PolicyVariable: Hashable, Sendable {
    enum Kind: Hashable, Sendable {
        case clientId
        case thingName
        case thingTypeName
        case thingAttribute(String)
        case thingIsAttached
        case certificateCommonName
    }

    var kind: Kind

    /// The names that ``init(name:)`` accepts, for messages.
    static let supportedNames = [
        "iot:ClientId", "iot:Connection.Thing.ThingName", "iot:Connection.Thing.ThingTypeName",
        "iot:Connection.Thing.Attributes[name]", "iot:Connection.Thing.IsAttached",
        "iot:Certificate.Subject.CommonName",
    ]

    private static let attributePrefix = "iot:Connection.Thing.Attributes["

    /// The variable for the text between `${` and `}`, or nil if Drover does not know it.
    /// Names are case-sensitive, as in AWS IoT.
    init?(name: Substring) {
        switch name {
        case "iot:ClientId": kind = .clientId
        case "iot:Connection.Thing.ThingName": kind = .thingName
        case "iot:Connection.Thing.ThingTypeName": kind = .thingTypeName
        case "iot:Connection.Thing.IsAttached": kind = .thingIsAttached
        case "iot:Certificate.Subject.CommonName": kind = .certificateCommonName
        default:
            guard name.hasPrefix(Self.attributePrefix), name.hasSuffix("]") else { return nil }
            let attribute = name.dropFirst(Self.attributePrefix.count).dropLast()
            guard !attribute.isEmpty, !attribute.contains("["), !attribute.contains("]") else { return nil }
            kind = .thingAttribute(String(attribute))
        }
    }

    /// The text to substitute, or nil when the context has no value, which makes the resource
    /// match nothing.
    func value(in context: PolicyContext) -> String? {
        switch kind {
        case .clientId: context.clientId
        case .thingName: context.thingName
        case .thingTypeName: context.thingTypeName
        case .thingAttribute(let name): context.thingAttributes[name]
        case .thingIsAttached: context.isAttached ? "true" : "false"
        case .certificateCommonName: context.certificateCommonName
        }
    }
}
