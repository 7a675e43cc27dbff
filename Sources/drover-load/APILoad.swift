import ArgumentParser
import DroverHTTPClient
import DroverSigV4
import Foundation
import NIOPosix
import NIOSSL

/// Control-plane load: signed requests (SigV4, as boto3 signs them) from a number of concurrent
/// callers; reports requests per second and the latency percentiles.
struct APILoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api", abstract: "Signed AWS IoT API calls (create-thing, create-keys-and-certificate, describe-thing).")

    @Option(help: "The server's API: http://127.0.0.1:8080, or https://localhost:8443 with --ca-file.")
    var endpoint = "http://127.0.0.1:8080"

    @Option(help: "An AWS shared-credentials file (Drover writes DATA_DIR/admin-credentials).")
    var credentials: String

    @Option(help: "create-thing, create-keys-and-certificate or describe-thing.")
    var operation = "create-thing"

    @Option(help: "Requests in all.")
    var count = 2000

    @Option(help: "Requests in flight at once.")
    var concurrency = 16

    func validate() throws {
        guard ["create-thing", "create-keys-and-certificate", "describe-thing"].contains(operation) else {
            throw ValidationError("--operation must be create-thing, create-keys-and-certificate or describe-thing")
        }
        guard count > 0, concurrency > 0 else { throw ValidationError("--count and --concurrency must be positive") }
    }

    @Option(help: "The CA certificate (PEM) that signed the server's, for an https:// endpoint (DATA_DIR/ca.pem).")
    var caFile: String?

    func run() async throws {
        guard let text = try? String(contentsOfFile: credentials, encoding: .utf8) else {
            throw ValidationError("cannot read \(credentials)")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"],
              let base = URL(string: endpoint), let host = base.host, let scheme = base.scheme
        else { throw ValidationError("bad credentials file or endpoint") }
        let secure = scheme == "https"
        let port = base.port ?? (secure ? 443 : 80)
        var tls: NIOSSLContext?
        if secure {
            tls = try NIOHTTPConnection.tlsContext(caFile: caFile)
        }
        let signer = SigV4Signer(accessKeyId: id, secretAccessKey: secret)
        let hostHeader = base.port.map { "\(host):\($0)" } ?? host
        let run = UInt64.random(in: 0..<UInt64.max) % 1_000_000_000
        let operation = self.operation
        let group = MultiThreadedEventLoopGroup.singleton
        // One kept-alive connection per caller, made before the clock starts.
        var connections: [NIOHTTPConnection] = []
        for _ in 0..<concurrency {
            connections.append(try await NIOHTTPConnection.connect(
                host: host, port: port, tls: tls, serverName: secure && !host.allSatisfy({ $0.isNumber || $0 == "." }) ? host : nil,
                group: group))
        }
        func send(_ connection: NIOHTTPConnection, _ method: String, _ path: String, _ body: String) async throws -> Bool {
            let bytes = Array(body.utf8)
            var headers = [("Host", hostHeader)]
            if !bytes.isEmpty { headers.append(("Content-Type", "application/json")) }
            for (name, value) in signer.headers(method: method, host: hostHeader, path: path, query: "", body: bytes) {
                headers.append((name, value))
            }
            return try await connection.send(method: method, path: path, headers: headers, body: bytes).status == 200
        }

        if operation == "describe-thing" {
            _ = try await send(connections[0], "POST", "/things/load_\(run)_target", "{}")
        }
        say("api: \(operation), \(count) requests, \(concurrency) at once, against \(endpoint)\(secure ? " (TLS)" : "")")
        let start = Date()
        let perWorker = (count + concurrency - 1) / concurrency
        let total = count
        let results = try await withThrowingTaskGroup(of: ([Double], Int).self) { group in
            for (worker, connection) in connections.enumerated() {
                group.addTask {
                    var latencies: [Double] = []
                    var errors = 0
                    for index in 0..<perWorker where worker * perWorker + index < total {
                        let n = worker * perWorker + index
                        let (method, path, body): (String, String, String) = switch operation {
                        case "create-thing": ("POST", "/things/load_\(run)_\(n)", #"{"attributePayload":{"attributes":{"load":"yes"}}}"#)
                        case "create-keys-and-certificate": ("POST", "/keys-and-certificate", "")
                        default: ("GET", "/things/load_\(run)_target", "")
                        }
                        let t0 = Date()
                        let ok = (try? await send(connection, method, path, body)) ?? false
                        latencies.append(Date().timeIntervalSince(t0))
                        if !ok { errors += 1 }
                    }
                    return (latencies, errors)
                }
            }
            var all: [Double] = []
            var errors = 0
            for try await (latencies, failed) in group {
                all += latencies
                errors += failed
            }
            return (all, errors)
        }
        let elapsed = Date().timeIntervalSince(start)
        for connection in connections { await connection.close() }
        let sorted = results.0.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        let rate = Double(sorted.count - results.1) / elapsed
        say("api: \(sorted.count) requests in \(fixed(elapsed, 2)) s = \(fixed(rate, 0)) ok/s, \(results.1) errors, "
            + "p50 \(fixed(percentile(0.5), 1)) ms, p99 \(fixed(percentile(0.99), 1)) ms")
        var line = ResultLine(scenario: "api")
        line.add("operation", string: operation)
        line.add("tls", secure ? 1 : 0)
        line.add("requests", sorted.count)
        line.add("errors", results.1)
        line.add("rate", rate)
        line.add("p50_ms", percentile(0.5))
        line.add("p99_ms", percentile(0.99))
        line.emit()
        if results.1 > 0 { throw ExitCode(1) }
    }
}
