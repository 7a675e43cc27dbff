import ArgumentParser
import DroverSigV4
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Control-plane load: signed requests (SigV4, as boto3 signs them) from a number of concurrent
/// callers; reports requests per second and the latency percentiles.
struct APILoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api", abstract: "Signed AWS IoT API calls (create-thing, create-keys-and-certificate, describe-thing).")

    @Option(help: "The server's HTTP API.")
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
              let base = URL(string: endpoint), let host = base.host
        else { throw ValidationError("bad credentials file or endpoint") }
        let signer = SigV4Signer(accessKeyId: id, secretAccessKey: secret)
        let hostHeader = base.port.map { "\(host):\($0)" } ?? host
        let session = URLSession(configuration: .ephemeral)
        let run = UInt64.random(in: 0..<UInt64.max) % 1_000_000_000
        let operation = self.operation
        let endpoint = self.endpoint

        if operation == "describe-thing" {
            _ = try await Self.send(session, signer, endpoint, hostHeader, "POST", "/things/load_\(run)_target", "{}")
        }
        say("api: \(operation), \(count) requests, \(concurrency) at once, against \(endpoint)")
        let start = Date()
        let perWorker = (count + concurrency - 1) / concurrency
        let results = try await withThrowingTaskGroup(of: ([Double], Int).self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var latencies: [Double] = []
                    var errors = 0
                    for index in 0..<perWorker where worker * perWorker + index < self.count {
                        let n = worker * perWorker + index
                        let (method, path, body): (String, String, String) = switch operation {
                        case "create-thing": ("POST", "/things/load_\(run)_\(n)", #"{"attributePayload":{"attributes":{"load":"yes"}}}"#)
                        case "create-keys-and-certificate": ("POST", "/keys-and-certificate", "")
                        default: ("GET", "/things/load_\(run)_target", "")
                        }
                        let t0 = Date()
                        let ok = (try? await Self.send(session, signer, endpoint, hostHeader, method, path, body)) ?? false
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
        let sorted = results.0.sorted()
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        let rate = Double(sorted.count - results.1) / elapsed
        say("api: \(sorted.count) requests in \(fixed(elapsed, 2)) s = \(fixed(rate, 0)) ok/s, \(results.1) errors, "
            + "p50 \(fixed(percentile(0.5), 1)) ms, p99 \(fixed(percentile(0.99), 1)) ms")
        var line = ResultLine(scenario: "api")
        line.add("operation", string: operation)
        line.add("requests", sorted.count)
        line.add("errors", results.1)
        line.add("rate", rate)
        line.add("p50_ms", percentile(0.5))
        line.add("p99_ms", percentile(0.99))
        line.emit()
        if results.1 > 0 { throw ExitCode(1) }
    }

    static func send(_ session: URLSession, _ signer: SigV4Signer, _ endpoint: String, _ host: String, _ method: String,
                     _ path: String, _ body: String) async throws -> Bool {
        guard let url = URL(string: endpoint + path) else { return false }
        var request = URLRequest(url: url)
        request.httpMethod = method
        let bytes = Array(body.utf8)
        if !bytes.isEmpty {
            request.httpBody = Data(bytes)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in signer.headers(method: method, host: host, path: path, query: "", body: bytes) {
            request.setValue(value, forHTTPHeaderField: name)
        }
        let (_, response) = try await session.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode == 200
    }
}
