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
    /// The access key whose Signature Version 4 on the WebSocket upgrade was verified.
    public var signedAccessKeyId: String?

    public init(
        clientId: String, username: String?, password: ByteBuffer?, protocolVersion: MQTTProtocolVersion,
        listener: ListenerInfo, remoteAddress: String?, peerCertificate: [UInt8]? = nil, signedAccessKeyId: String? = nil
    ) {
        self.clientId = clientId
        self.username = username
        self.password = password
        self.protocolVersion = protocolVersion
        self.listener = listener
        self.remoteAddress = remoteAddress
        self.peerCertificate = peerCertificate
        self.signedAccessKeyId = signedAccessKeyId
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

    /// What a session's ownership compares: the principal, and for anonymous clients the
    /// kind of listener (an in-process client is never the same owner as a network one).
    var owner: SessionOwnerKey {
        SessionOwnerKey(principal: principal, thing: attributes["thing"],
                        isInternal: listener.name == InProcessClient.listener.name)
    }

    /// Whether this is one of the broker's own in-process clients.
    public var isInternal: Bool { listener.name == InProcessClient.listener.name }
}

struct SessionOwnerKey: Hashable {
    var principal: String?
    var thing: String?
    var isInternal: Bool
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
            // Allowed by default only on loopback, and then for peers on loopback: a listener
            // reached from elsewhere (a forwarded port, a proxy) admits none unless the operator
            // allowed anonymous clients from any address.
            if request.listener.anonymousFromAnyAddress || Self.isLoopbackPeer(request.remoteAddress) {
                return eventLoop.makeSucceededFuture(.allow(principal: nil, attributes: [:]))
            }
            return eventLoop.makeSucceededFuture(
                .deny(.notAuthorized, reason: "anonymous clients are allowed only from loopback"))
        }
        return eventLoop.makeSucceededFuture(
            .deny(.notAuthorized, reason: "anonymous clients are not allowed on listener \(request.listener.name)"))
    }
}

extension LoopbackAnonymousAuthenticator {
    /// Whether "ip:port" (as ``AuthenticationRequest/remoteAddress`` has it) is on loopback.
    public static func isLoopbackPeer(_ address: String?) -> Bool {
        guard let address else { return false }
        if address == "in-process" { return true }
        // "host:port": the host is everything before the last colon (IPv6 hosts hold colons).
        guard let colon = address.lastIndex(of: ":") else { return false }
        var host = address[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if host == "::1" { return true }
        if host.hasPrefix("::ffff:") { host = host.dropFirst("::ffff:".count) }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }
}

/// Allows every action of an authenticated client.
public struct AllowAllAuthorizer: MQTTAuthorizer {
    public init() {}
    public func authorize(_ identity: ClientIdentity, _ action: MQTTAction) -> Bool { true }
}
