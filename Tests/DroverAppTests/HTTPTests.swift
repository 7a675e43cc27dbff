import DroverApp
import DroverHTTP
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MQTTBroker
import NIOPosix
import Prometheus
import Testing

@Suite("HTTP")
struct HTTPTests {
    @Test("/health answers 200 with the connection and session counts")
    func health() async throws {
        let broker = try Broker(timerLoop: MultiThreadedEventLoopGroup.singleton.next())
        let app = Application(router: DroverHTTPServer.buildRouter(broker: broker, registry: PrometheusCollectorRegistry()))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "{\"status\":\"ok\",\"connections\":0,\"sessions\":0}")
            }
        }
    }

    @Test("/metrics is Prometheus text with the broker's metrics")
    func metrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let broker = try Broker(
            metrics: BrokerMetrics(factory: PrometheusMetricsFactory(registry: registry)),
            timerLoop: MultiThreadedEventLoopGroup.singleton.next())
        let app = Application(router: DroverHTTPServer.buildRouter(broker: broker, registry: registry))
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                for name in [
                    "drover_mqtt_connections{listener=\"mqtt\"}", "drover_mqtt_messages_received_total{qos=\"1\"}",
                    "drover_mqtt_messages_sent_total{qos=\"2\"}", "drover_mqtt_bytes_received_total",
                    "drover_mqtt_bytes_sent_total", "drover_mqtt_payload_bytes_received_total{qos=\"0\"}",
                    "drover_mqtt_payload_bytes_sent_total{qos=\"1\"}", "drover_mqtt_messages_dropped_total{reason=\"queue_full\"}",
                    "drover_mqtt_sessions", "drover_mqtt_subscriptions", "drover_mqtt_retained_messages",
                ] {
                    #expect(text.contains(name), "missing \(name)")
                }
            }
        }
    }

    @Test("the data directory is created private to its owner (0700)")
    func dataDirectory() throws {
        var configuration = DroverConfiguration()
        configuration.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("drover-\(UUID().uuidString)").path
        _ = try DroverApplication(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                  logger: Logger(label: "test"))
        let attributes = try FileManager.default.attributesOfItem(atPath: configuration.dataDir)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
    }
}
