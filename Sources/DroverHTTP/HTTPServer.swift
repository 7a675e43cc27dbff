import DroverRegistry
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import MQTTBroker
import NIOCore
import Prometheus

/// Where the HTTP server binds.
public struct HTTPServerConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// nil: allow anonymous MQTT over WebSocket only when bound to loopback.
    public var allowAnonymousWebSocket: Bool?

    /// The server's certificate chain and key (PEM) for HTTPS; nil: plain HTTP.
    public var tls: TLS?

    public struct TLS: Sendable, Hashable {
        public var certificateChainPEM: String
        public var privateKeyPEM: String

        public init(certificateChainPEM: String, privateKeyPEM: String) {
            self.certificateChainPEM = certificateChainPEM
            self.privateKeyPEM = privateKeyPEM
        }

        /// TLS 1.2 or newer, no client certificate (requests are signed instead).
        func configuration() throws -> TLSConfiguration {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8))
            let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        }
    }

    /// Who may read `/health` and `/metrics` on this listener.
    public var monitoring: MonitoringAccess = .open

    /// Browser origins (`https://app.example.com`) whose pages may open MQTT over WebSocket; a
    /// request with any other Origin is refused. Clients that are not browsers send none.
    public var allowedOrigins: Set<String> = []

    public init(host: String, port: Int, allowAnonymousWebSocket: Bool? = nil, tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.allowAnonymousWebSocket = allowAnonymousWebSocket
        self.tls = tls
    }

    var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

/// Who may read `/health` and `/metrics`.
public enum MonitoringAccess: String, Sendable, Hashable {
    /// Anyone who can reach the listener.
    case open
    /// Requests signed with an access key whose policy allows `drover:GetHealth` or
    /// `drover:GetMetrics`.
    case signed
    /// Not served.
    case off
}

/// Builds the HTTP application: `/health`, Prometheus `/metrics`, and MQTT over WebSocket at `/mqtt`.
/// The same routes serve plain HTTP (loopback, for local tools) and HTTPS.
public enum DroverHTTPServer {
    public static func buildApplication(
        configuration: HTTPServerConfiguration,
        broker: Broker,
        registry: PrometheusCollectorRegistry,
        controlPlane: ControlPlane? = nil,
        limits: HTTPLimits = HTTPLimits(),
        gate: HTTPConnectionGate? = nil,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let gate = gate ?? HTTPConnectionGate(limit: limits.maxConnections)
        let router = buildRouter(
            broker: broker, registry: registry, gate: gate,
            monitoring: configuration.monitoring, controlPlane: controlPlane)
        controlPlane?.register(on: router)
        let allowedOrigins = configuration.allowedOrigins
        // A GET /mqtt that reaches the router was not upgraded: say why.
        router.get("/mqtt") { request, _ -> Response in
            let head = request.head
            let offered = head.headerFields[.secWebSocketProtocol]?
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            if let origin = head.headerFields[.origin], !originAllowed(origin, authority: head.authority, allowedOrigins) {
                return ControlPlane.error(.forbidden, "ForbiddenException",
                                          "WebSocket connections from the origin \(origin.prefix(128)) are not allowed (http.allowed_origins)")
            }
            if case .refused(let code, let message) = controlPlane?.authenticateWebSocket(head) ?? .unsigned {
                return ControlPlane.error(.forbidden, code, message)
            }
            guard head.headerFields[.upgrade]?.lowercased() == "websocket", offered.contains("mqtt") else {
                return ControlPlane.error(.badRequest, "InvalidRequestException",
                                          "/mqtt is MQTT over WebSocket: upgrade with the subprotocol mqtt")
            }
            return ControlPlane.error(.badRequest, "InvalidRequestException", "the WebSocket upgrade was refused")
        }
        let listener = ListenerInfo(
            name: configuration.tls == nil ? "ws" : "wss", isLoopback: configuration.isLoopback,
            allowAnonymous: configuration.allowAnonymousWebSocket ?? configuration.isLoopback,
            anonymousFromAnyAddress: configuration.allowAnonymousWebSocket == true)
        let maxFrame = max(broker.configuration.maxPacketSize, 1 << 14)
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) throws
            -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> = { request, channel, _ in
            guard request.path?.split(separator: "?").first == "/mqtt" else { return .dontUpgrade }
            // [MQTT-6.0.0-3] The client offers the "mqtt" subprotocol; we answer with it.
            let offered = request.headerFields[.secWebSocketProtocol]?
                .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            guard offered.contains("mqtt") else { return .dontUpgrade }
            // Refused upgrades fall through to the router's GET /mqtt, which says why.
            if let origin = request.headerFields[.origin], !originAllowed(origin, authority: request.authority, allowedOrigins) {
                return .dontUpgrade
            }
            let signedAccessKeyId: String?
            switch controlPlane?.authenticateWebSocket(request) ?? .unsigned {
            case .unsigned: signedAccessKeyId = nil
            case .signed(let id): signedAccessKeyId = id
            case .refused: return .dontUpgrade
            }
            var headers = HTTPFields()
            headers[.secWebSocketProtocol] = "mqtt"
            let eventLoop = channel.eventLoop
            let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
            return .upgrade(headers) { inbound, outbound, _ in
                try await WebSocketMQTTBridge.run(
                    broker: broker, listener: listener, eventLoop: eventLoop, remoteAddress: remote,
                    signedAccessKeyId: signedAccessKeyId, inbound: inbound, outbound: outbound)
            }
        }
        let channelConfiguration = HTTP1WebSocketUpgradeChannel.Configuration(ws: .init(maxFrameSize: maxFrame))
        let tls = try configuration.tls.map { try $0.configuration() }
        // TLS first, then the guard on the plain bytes, then HTTP with the WebSocket upgrade.
        let server = HTTPServerBuilder { responder in
            let http = HTTP1WebSocketUpgradeChannel(
                responder: responder, configuration: channelConfiguration, shouldUpgrade: shouldUpgrade)
            let guarded = GuardedHTTPChannel(base: http, limits: limits, gate: gate)
            if let tls { return try TLSChannel(guarded, tlsConfiguration: tls) }
            return guarded
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "drover"),
            onServerRunning: onServerRunning,
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: logger
        )
    }

    /// A page may open MQTT over WebSocket if it comes from this server itself (the Origin names
    /// the Host it connects to, as paho and same-site pages send) or from a configured origin.
    static func originAllowed(_ origin: String, authority: String?, _ allowed: Set<String>) -> Bool {
        if allowed.contains(origin) { return true }
        guard let authority, let scheme = origin.range(of: "://") else { return false }
        return origin[scheme.upperBound...].lowercased() == authority.lowercased()
    }

    public static func buildRouter(
        broker: Broker, registry: PrometheusCollectorRegistry, gate: HTTPConnectionGate? = nil,
        monitoring: MonitoringAccess = .open, controlPlane: ControlPlane? = nil
    ) -> Router<BasicRequestContext> {
        let open = registry.makeGauge(descriptor: .init(metricName: "drover_http_connections", unitName: "", helpText: "HTTP and HTTPS connections open"))
        let refused = registry.makeGauge(descriptor: .init(metricName: "drover_http_refused_connections", unitName: "", helpText: "HTTP connections closed at the connection cap, since start"))
        let timedOut = registry.makeGauge(descriptor: .init(metricName: "drover_http_timed_out_connections", unitName: "", helpText: "HTTP connections closed by the header deadline or the idle timeout, since start"))
        let malformed = registry.makeGauge(descriptor: .init(metricName: "drover_http_refused_requests", unitName: "", helpText: "HTTP requests refused for their framing or size (400, 413, 431), since start"))
        let router = Router()
        let health: @Sendable () -> Response = {
            let body = "{\"status\":\"ok\",\"connections\":\(broker.connectionCount),\"sessions\":\(broker.sessionCount)}"
            return Response(
                status: broker.isShuttingDown ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let metrics: @Sendable () -> Response = {
            if let counts = gate?.counts {
                open.set(Double(counts.open))
                refused.set(Double(counts.refused))
                timedOut.set(Double(counts.timedOut))
                malformed.set(Double(counts.malformed))
            }
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        switch monitoring {
        case .open:
            router.get("/health") { _, _ in health() }
            router.get("/metrics") { _, _ in metrics() }
        case .signed:
            controlPlane?.route(router, .get, "/health", "GetHealth", policyService: "drover") { _ in health() }
            controlPlane?.route(router, .get, "/metrics", "GetMetrics", policyService: "drover") { _ in metrics() }
        case .off:
            break
        }
        return router
    }
}
