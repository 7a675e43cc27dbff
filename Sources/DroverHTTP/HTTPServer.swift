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

    public init(host: String, port: Int, allowAnonymousWebSocket: Bool? = nil, tls: TLS? = nil) {
        self.host = host
        self.port = port
        self.allowAnonymousWebSocket = allowAnonymousWebSocket
        self.tls = tls
    }

    var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
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
        let router = buildRouter(broker: broker, registry: registry, gate: gate)
        controlPlane?.register(on: router)
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
            var headers = HTTPFields()
            headers[.secWebSocketProtocol] = "mqtt"
            let eventLoop = channel.eventLoop
            let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
            return .upgrade(headers) { inbound, outbound, _ in
                try await WebSocketMQTTBridge.run(
                    broker: broker, listener: listener, eventLoop: eventLoop, remoteAddress: remote,
                    inbound: inbound, outbound: outbound)
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

    public static func buildRouter(
        broker: Broker, registry: PrometheusCollectorRegistry, gate: HTTPConnectionGate? = nil
    ) -> Router<BasicRequestContext> {
        let open = registry.makeGauge(descriptor: .init(metricName: "drover_http_connections", unitName: "", helpText: "HTTP and HTTPS connections open"))
        let refused = registry.makeGauge(descriptor: .init(metricName: "drover_http_refused_connections", unitName: "", helpText: "HTTP connections closed at the connection cap, since start"))
        let timedOut = registry.makeGauge(descriptor: .init(metricName: "drover_http_timed_out_connections", unitName: "", helpText: "HTTP connections closed by the header deadline or the idle timeout, since start"))
        let malformed = registry.makeGauge(descriptor: .init(metricName: "drover_http_refused_requests", unitName: "", helpText: "HTTP requests refused for their framing or size (400, 413, 431), since start"))
        let router = Router()
        router.get("/health") { _, _ -> Response in
            let body = "{\"status\":\"ok\",\"connections\":\(broker.connectionCount),\"sessions\":\(broker.sessionCount)}"
            return Response(
                status: broker.isShuttingDown ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/metrics") { _, _ -> Response in
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
        return router
    }
}
