/// An action that a request asks to perform, such as `iot:Publish`.
///
/// A struct over the action's name rather than an enum: the broker asks about the five MQTT
/// actions below, but TestAuthorization may ask about any `iot:` action, and AWS adds actions.
public struct PolicyAction: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// An action named `iot:` and letters (`iot:UpdateThingShadow`), or nil. A request names
    /// one concrete action, so wildcards are refused here; they belong in policies.
    public init?(rawValue: String) {
        let name = rawValue.utf8.dropFirst(4)
        guard rawValue.hasPrefix("iot:"), !name.isEmpty,
            name.allSatisfy({ ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") })
        else { return nil }
        self.rawValue = rawValue
    }

    private init(known rawValue: String) {
        self.rawValue = rawValue
    }

    /// CONNECT, on `client/<clientId>`.
    public static let connect = PolicyAction(known: "iot:Connect")
    /// PUBLISH from the client, on `topic/<topic>`.
    public static let publish = PolicyAction(known: "iot:Publish")
    /// SUBSCRIBE, on `topicfilter/<filter>`.
    public static let subscribe = PolicyAction(known: "iot:Subscribe")
    /// Delivery of a message to the client, on `topic/<topic>`.
    public static let receive = PolicyAction(known: "iot:Receive")
    /// PUBLISH with the retain flag, on `topic/<topic>`, checked in addition to `iot:Publish`.
    public static let retainPublish = PolicyAction(known: "iot:RetainPublish")

    public var description: String { rawValue }
}
