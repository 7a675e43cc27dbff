/// What a principal asks to do: an action on a resource, named by its full ARN
/// (`arn:aws:iot:us-east-1:123456789012:topic/a/b`).
public struct PolicyRequest: Hashable, Sendable, CustomStringConvertible {
    public var action: PolicyAction
    public var resource: String

    public init(action: PolicyAction, resource: String) {
        self.action = action
        self.resource = resource
    }

    public var description: String { "\(action) on \(resource)" }
}

extension PolicyRequest {
    /// `iot:Connect` on `arn:aws:iot:<region>:<account>:client/<clientId>`.
    public static func connect(clientId: String, in context: PolicyContext) -> PolicyRequest {
        PolicyRequest(action: .connect, resource: context.arn("client/", clientId))
    }

    /// `iot:Publish` on `...:topic/<topic>`.
    public static func publish(topic: String, in context: PolicyContext) -> PolicyRequest {
        PolicyRequest(action: .publish, resource: context.arn("topic/", topic))
    }

    /// `iot:RetainPublish` on `...:topic/<topic>`.
    public static func retainPublish(topic: String, in context: PolicyContext) -> PolicyRequest {
        PolicyRequest(action: .retainPublish, resource: context.arn("topic/", topic))
    }

    /// `iot:Receive` on `...:topic/<topic>`.
    public static func receive(topic: String, in context: PolicyContext) -> PolicyRequest {
        PolicyRequest(action: .receive, resource: context.arn("topic/", topic))
    }

    /// `iot:Subscribe` on `...:topicfilter/<filter>`; `+` and `#` stay as they are, and a policy
    /// names them literally.
    public static func subscribe(topicFilter: String, in context: PolicyContext) -> PolicyRequest {
        PolicyRequest(action: .subscribe, resource: context.arn("topicfilter/", topicFilter))
    }
}
