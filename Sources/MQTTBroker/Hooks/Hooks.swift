import MQTTCodec
import NIOCore

/// What a client presents when it connects.
public struct AuthenticationRequest: Sendable {
    public var clientId: String
    public var username: String?
    public var password: ByteBuffer?
    public var protocolVersion: MQTTProtocolVersion
    public var listener: ListenerInfo
    /// "ip:port" of the peer, when known.
    public var remoteAddress: String?
    /// The DER of the verified client certificate on a mutual-TLS listener.
    public var peerCertificate: [UInt8]?

    public init(
        clientId: String, username: String?, password: ByteBuffer?, protocolVersion: MQTTProtocolVersion,
        listener: ListenerInfo, remoteAddress: String?, peerCertificate: [UInt8]? = nil
    ) {
        self.clientId = clientId
        self.username = username
        self.password = password
        self.protocolVersion = protocolVersion
        self.listener = listener
        self.remoteAddress = remoteAddress
        self.peerCertificate = peerCertificate
    }
}

/// Who a connection is, once authenticated. Authorization decisions are made on this.
public struct ClientIdentity: Sendable, Hashable {
    public var clientId: String
    public var username: String?
    public var listener: ListenerInfo
    /// The principal that policies attach to (a certificate id, later); nil when anonymous.
    public var principal: String?
    /// Free-form facts that the authenticator found (thing name, attributes), for policy variables.
    public var attributes: [String: String]

    public init(clientId: String, username: String?, listener: ListenerInfo, principal: String? = nil,
                attributes: [String: String] = [:]) {
        self.clientId = clientId
        self.username = username
        self.listener = listener
        self.principal = principal
        self.attributes = attributes
    }
}

/// The outcome of authentication: a value, not an error.
public enum AuthenticationResult: Sendable {
    case allow(principal: String?, attributes: [String: String])
    case deny(ReasonCode, reason: String)
}

/// Decides who may connect. It runs once per CONNECT, so it may do I/O and answer later.
public protocol MQTTAuthenticator: Sendable {
    func authenticate(_ request: AuthenticationRequest, on eventLoop: any EventLoop) -> EventLoopFuture<AuthenticationResult>
}

/// An action a client wants to take, checked by the ``MQTTAuthorizer``.
public enum MQTTAction: Sendable, Hashable {
    case connect
    case publish(topic: String, retain: Bool)
    case subscribe(filter: String)
    case receive(topic: String)
}

/// Decides what an authenticated client may do. It runs on the hot path (every publish and every
/// delivery), so it must answer from memory: no I/O, no waiting.
public protocol MQTTAuthorizer: Sendable {
    func authorize(_ identity: ClientIdentity, _ action: MQTTAction) -> Bool
}

/// The default of this release: anonymous clients are allowed on listeners that allow them (by
/// default, those bound to loopback), and nobody else.
public struct LoopbackAnonymousAuthenticator: MQTTAuthenticator {
    public init() {}

    public func authenticate(_ request: AuthenticationRequest, on eventLoop: any EventLoop) -> EventLoopFuture<AuthenticationResult> {
        if request.listener.allowAnonymous {
            return eventLoop.makeSucceededFuture(.allow(principal: nil, attributes: [:]))
        }
        return eventLoop.makeSucceededFuture(
            .deny(.notAuthorized, reason: "anonymous clients are not allowed on listener \(request.listener.name)"))
    }
}

/// Allows every action of an authenticated client.
public struct AllowAllAuthorizer: MQTTAuthorizer {
    public init() {}
    public func authorize(_ identity: ClientIdentity, _ action: MQTTAction) -> Bool { true }
}
