import Logging
import MQTTBroker
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Where a listener binds, and what it allows.
public struct MQTTListenerConfiguration: Sendable, Hashable {
    /// A bounded name for metrics and logs: "mqtt", "mqtts".
    public var name: String
    public var host: String
    public var port: Int
    /// nil: allow anonymous clients only when bound to loopback (as Mosquitto 2 does).
    public var allowAnonymous: Bool?

    public init(name: String, host: String, port: Int, allowAnonymous: Bool? = nil) {
        self.name = name
        self.host = host
        self.port = port
        self.allowAnonymous = allowAnonymous
    }

    public var isLoopback: Bool { Self.isLoopback(host) }

    public var listenerInfo: ListenerInfo {
        ListenerInfo(name: name, isLoopback: isLoopback, allowAnonymous: allowAnonymous ?? isLoopback,
                     anonymousFromAnyAddress: allowAnonymous == true)
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// A plain-TCP MQTT listener. It stops accepting on graceful shutdown; the broker service
/// disconnects the clients.
public final class MQTTListener: Service {
    private let broker: Broker
    private let configuration: MQTTListenerConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let tls: MQTTTLSSetup?

    /// With `tls`, the listener speaks MQTT over mutual TLS.
    public init(broker: Broker, configuration: MQTTListenerConfiguration, group: any EventLoopGroup, logger: Logger,
                tls: MQTTTLSSetup? = nil) {
        self.broker = broker
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.tls = tls
    }

    public func run() async throws {
        let broker = self.broker
        let listener = configuration.listenerInfo
        let tls = self.tls
        let sslContext = try tls?.makeContext()
        let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 128 * 1024))
                .childChannelOption(.maxMessagesPerRead, value: 4)
                // Start reads small: an idle device connection then costs ~3.8 KB, not ~5.6 KB
                // (docs/benchmarks.md). The allocator grows the buffer for busy connections.
                .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536))
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls, let sslContext {
                            try channel.pipeline.syncOperations.addHandler(tls.makeHandler(sslContext))
                            try channel.pipeline.syncOperations.addHandler(MQTTChannelHandler(
                                broker: broker, listener: listener, peerCertificate: MQTTTLSSetup.peerCertificate))
                        } else {
                            try channel.pipeline.syncOperations.addHandler(MQTTChannelHandler(broker: broker, listener: listener))
                        }
                    }
                }
                .bind(host: configuration.host, port: configuration.port)
                .get()
        logger.notice("MQTT listener ready", metadata: [
            "listener": "\(configuration.name)", "address": "\(configuration.host):\(channel.localAddress?.port ?? 0)",
            "anonymous": "\(listener.allowAnonymous)", "tls": "\(tls == nil ? "no" : "mutual, TLS 1.2+")",
        ])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// Owns the broker's lifetime: on graceful shutdown it refuses new clients, sends every MQTT 5
/// client DISCONNECT 0x8B and waits (bounded) until they are closed.
public struct BrokerService: Service {
    private let broker: Broker
    private let logger: Logger

    public init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        logger.notice("shutting down: disconnecting clients", metadata: ["connections": "\(broker.connectionCount)"])
        let grace = broker.configuration.shutdownGracePeriod
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await broker.shutdown().get() }
            group.addTask { try? await Task.sleep(for: .seconds(grace)) }
            await group.next()
            group.cancelAll()
        }
    }
}
