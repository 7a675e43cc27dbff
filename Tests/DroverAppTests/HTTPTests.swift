import DroverApp
@testable import DroverHTTP
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

    @Test(
        "the HTTP guard reads each request's framing: one length, or chunked alone, within the body limit",
        arguments: [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "body 0"),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n", "body 12"),
            ("POST / HTTP/1.1\r\ncontent-length: 7, 7\r\n\r\n", "body 7"),
            ("POST / HTTP/1.1\r\ncontent-length: 7,  7\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", "body 7"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "pass"),
            ("POST / HTTP/1.1\r\nTRANSFER-ENCODING:\tChunked \r\n\r\n", "pass"),
            ("POST / HTTP/1.1\r\nCONTENT-LENGTH:\t9\t\r\n\r\n", "body 9"),
            ("POST / HTTP/1.1\r\nContent-Length: 7\nX: y\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: ٧\r\n\r\n", "400 Bad Request"),
            ("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", "upgrade"),
            ("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: +7\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length : 7\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nno colon here\r\n\r\n", "400 Bad Request"),
            ("POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", "413 Content Too Large"),
        ])
    func guardFraming(head: String, expected: String) {
        #expect(HTTPGuardHandler.framingForTesting(head, maxBody: 1024) == expected)
    }

    /// The guard's framing as it was read from a String of the head (before it read bytes):
    /// the oracle for ASCII heads.
    static func framingFromText(_ head: String, maxBody: Int) -> String {
        var lengths: [Substring] = []
        var transferEncodings: [String] = []
        var upgrade = false
        for line in head.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return line.isEmpty ? "body 0" : "400 Bad Request" }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name.last == " " || name.last == "\t" { return "400 Bad Request" }
            switch name {
            case "content-length": lengths.append(contentsOf: value.split(separator: ",").map { $0.trimmingPrefix(" ") })
            case "transfer-encoding": transferEncodings.append(value.lowercased())
            case "upgrade": upgrade = true
            default: break
            }
        }
        if !transferEncodings.isEmpty {
            guard lengths.isEmpty, transferEncodings == ["chunked"] else { return "400 Bad Request" }
            return "pass"
        }
        if upgrade { return "upgrade" }
        guard let first = lengths.first else { return "body 0" }
        guard lengths.allSatisfy({ $0 == first }), first.allSatisfy({ $0.isASCII && $0.isNumber }), first.count <= 18,
              let length = Int(first)
        else { return "400 Bad Request" }
        return length <= maxBody ? "body \(length)" : "413 Content Too Large"
    }

    @Test("the byte-level framing agrees with the text-level rules on 30 000 heads made of the pieces that matter, and never traps")
    func guardFramingAgainstTheOracle() {
        // Heads of a few lines, each a name (or not), a colon (or not) and a value of small pieces.
        let names = ["Content-Length", "content-length", "CONTENT-LENGTH", "Transfer-Encoding", "transfer-encoding", "Upgrade",
                     "Host", "X", "Content-Length ", "Content-Length\t", ""]
        let values = ["chunked", "Chunked", "identity", " ", "\t", ",", ", ", "0", "7", "12", "1025", "99999999999999999999", "+7",
                      "-1", "x", ":"]
        let ends = ["\r\n", "\r\n", "\r\n", "\n", "\r", ""]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<30_000 {
            var head = "POST / HTTP/1.1\r\n"
            for _ in 0..<Int.random(in: 0...4, using: &generator) {
                head += names.randomElement(using: &generator)!
                if Int.random(in: 0..<8, using: &generator) > 0 { head += ":" }
                for _ in 0..<Int.random(in: 0...5, using: &generator) { head += values.randomElement(using: &generator)! }
                head += ends.randomElement(using: &generator)!
            }
            head += "\r\n\r\n"
            let expected = Self.framingFromText(head, maxBody: 1024)
            #expect(HTTPGuardHandler.framingForTesting(head, maxBody: 1024) == expected, "\(head.debugDescription)")
        }
        // Non-ASCII bytes (not valid UTF-8 either) are refused or ignored, never a trap.
        for _ in 0..<5_000 {
            let bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let outcome = HTTPGuardHandler.framingForTesting("POST / HTTP/1.1\r\nContent-Length: " + String(decoding: bytes, as: UTF8.self)
                                                             + "\r\n\r\n", maxBody: 1024)
            #expect(["400 Bad Request", "413 Content Too Large", "pass", "upgrade"].contains(outcome) || outcome.hasPrefix("body "))
        }
    }
}
