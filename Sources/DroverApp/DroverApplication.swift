import DroverHTTP
import DroverListeners
import DroverSQLite
import Foundation
import Logging
import MQTTBroker
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// The composition root: builds every part from the configuration into one ServiceGroup.
public struct DroverApplication: Sendable {
    public let configuration: DroverConfiguration
    public let broker: Broker
    public let registry: PrometheusCollectorRegistry
    let services: [any Service]
    let logger: Logger

    public init(configuration: DroverConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        try Self.prepareDataDirectory(configuration.dataDir)
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let metrics = BrokerMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let store = try Self.makeStore(configuration, logger: logger)
        let started = ContinuousClock.now
        let broker = try Broker(
            configuration: configuration.limits, store: store, metrics: metrics, timerLoop: eventLoopGroup.next(),
            logger: logger)
        logger.notice("broker state loaded", metadata: [
            "storage": "\(configuration.storageBackend)", "sessions": "\(broker.sessionCount)",
            "retained": "\(broker.retainedCount)", "seconds": "\((ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 3))))",
        ])
        self.broker = broker
        var services: [any Service] = []
        if configuration.mqtt.port != 0 {
            services.append(MQTTListener(
                broker: broker,
                configuration: .init(name: "mqtt", host: configuration.mqtt.bind, port: configuration.mqtt.port,
                                     allowAnonymous: configuration.mqtt.allowAnonymous),
                group: eventLoopGroup, logger: logger))
        }
        if configuration.mqtts.port != 0 {
            logger.warning(
                "MQTT over mutual TLS needs the certificate authority, which is not part of this build yet; the listener is not started",
                metadata: ["port": "\(configuration.mqtts.port)"])
        }
        if configuration.http.port != 0 {
            let host = configuration.http.bind
            let port = configuration.http.port
            services.append(DroverHTTPServer.buildApplication(
                configuration: .init(host: host, port: port,
                                     allowAnonymousWebSocket: configuration.http.allowAnonymous),
                broker: broker, registry: registry, eventLoopGroup: eventLoopGroup, logger: logger,
                onServerRunning: { channel in
                    logger.notice("HTTP server ready", metadata: [
                        "address": "\(host):\(channel.localAddress?.port ?? port)",
                        "routes": "/health /metrics /mqtt (WebSocket)",
                    ])
                }))
        }
        // Last in the group, so first to shut down: clients are told before listeners close.
        services.append(BrokerService(broker: broker, logger: logger))
        self.services = services
    }

    /// Runs everything until SIGTERM or SIGINT, then shuts down gracefully.
    public func run() async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    static func makeStore(_ configuration: DroverConfiguration, logger: Logger) throws -> any BrokerStore {
        switch configuration.storageBackend {
        case "memory":
            logger.warning("storage.backend is memory: sessions, queued and retained messages are lost when the process stops")
            return InMemoryBrokerStore()
        default:
            let durability = SQLiteBrokerStore.Durability(configuration.storageDurability) ?? .fsync
            let path = (configuration.dataDir as NSString).appendingPathComponent("broker.sqlite")
            return try SQLiteBrokerStore(path: path, durability: durability, logger: logger)
        }
    }

    /// The data directory holds secrets later (the CA key), so it is private to its owner.
    static func prepareDataDirectory(_ path: String) throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw DroverConfiguration.Error(description: "data directory \(path) exists and is not a directory")
            }
            return
        }
        do {
            try manager.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw DroverConfiguration.Error(description: "cannot create data directory \(path): \(error.localizedDescription)")
        }
    }
}
