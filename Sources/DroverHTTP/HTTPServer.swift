import DroverRegistry
import Hummingbird
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

    public init(host: String, port: Int, allowAnonymousWebSocket: Bool? = nil) {
        self.host = host
        self.port = port
        self.allowAnonymousWebSocket = allowAnonymousWebSocket
    }

    var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

/// Builds the HTTP application: `/health`, Prometheus `/metrics`, and MQTT over WebSocket at `/mqtt`.
public enum DroverHTTPServer {
    public static func buildApplication(
        configuration: HTTPServerConfiguration,
        broker: Broker,
        registry: PrometheusCollectorRegistry,
        controlPlane: ControlPlane? = nil,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = buildRouter(broker: broker, registry: registry)
        controlPlane?.register(on: router)
        let listener = ListenerInfo(
            name: "ws", isLoopback: configuration.isLoopback,
            allowAnonymous: configuration.allowAnonymousWebSocket ?? configuration.isLoopback,
            anonymousFromAnyAddress: configuration.allowAnonymousWebSocket == true)
        let maxFrame = max(broker.configuration.maxPacketSize, 1 << 14)
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(configuration: .init(ws: .init(maxFrameSize: maxFrame))) { request, channel, _ in
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
            },
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "drover"),
            onServerRunning: onServerRunning,
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: logger
        )
    }

    public static func buildRouter(broker: Broker, registry: PrometheusCollectorRegistry) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/health") { _, _ -> Response in
            let body = "{\"status\":\"ok\",\"connections\":\(broker.connectionCount),\"sessions\":\(broker.sessionCount)}"
            return Response(
                status: broker.isShuttingDown ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.get("/metrics") { _, _ -> Response in
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        return router
    }
}
