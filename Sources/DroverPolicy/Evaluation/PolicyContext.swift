/// What is known about the connection that makes a request: the values of the policy
/// variables, and the region and account that ARNs are built in.
///
/// The caller decides what is known. In particular the `thing*` values should be set only when
/// a thing is attached to the principal (AWS IoT also requires the client id to be the thing's
/// name); a nil value leaves its variable unresolved, so resources that use it match nothing.
public struct PolicyContext: Hashable, Sendable {
    /// `${iot:ClientId}`; nil outside MQTT (TestAuthorization without a client id).
    public var clientId: String?
    /// `${iot:Connection.Thing.ThingName}`.
    public var thingName: String?
    /// `${iot:Connection.Thing.ThingTypeName}`.
    public var thingTypeName: String?
    /// `${iot:Connection.Thing.Attributes[name]}`; a missing name is unresolved.
    public var thingAttributes: [String: String]
    /// `${iot:Connection.Thing.IsAttached}`, substituted as `true` or `false`; always resolved.
    public var isAttached: Bool
    /// `${iot:Certificate.Subject.CommonName}`.
    public var certificateCommonName: String?
    /// The region in ARNs that ``PolicyRequest`` builds, such as `us-east-1`.
    public var region: String
    /// The account in ARNs that ``PolicyRequest`` builds, twelve digits.
    public var account: String

    public init(
        clientId: String? = nil,
        thingName: String? = nil,
        thingTypeName: String? = nil,
        thingAttributes: [String: String] = [:],
        isAttached: Bool = false,
        certificateCommonName: String? = nil,
        region: String,
        account: String
    ) {
        self.clientId = clientId
        self.thingName = thingName
        self.thingTypeName = thingTypeName
        self.thingAttributes = thingAttributes
        self.isAttached = isAttached
        self.certificateCommonName = certificateCommonName
        self.region = region
        self.account = account
    }

    /// `arn:aws:iot:<region>:<account>:<kind><name>`.
    func arn(_ kind: String, _ name: String) -> String {
        "arn:aws:iot:\(region):\(account):\(kind)\(name)"
    }
}
