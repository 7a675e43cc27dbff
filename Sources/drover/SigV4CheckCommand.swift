import ArgumentParser
import DroverSigV4
import Foundation

/// `drover sigv4-check`: runs Drover's SigV4 verifier on requests read from standard input, one
/// JSON object per line, and prints one outcome per line. It lets the tests check the verifier
/// against botocore's own signer over thousands of generated requests, and lets an operator see
/// why a client's signature is refused. Hidden from the help: it is a tool, not an operation.
///
/// Input: `{"method", "path", "query", "headers": [[name, value], ...], "body": base64, "now":
/// epoch seconds, "secret", "services": [...], "regions": [...], "hosts": [...]}`; output:
/// `{"outcome": "verified"}` or `{"outcome": "refused", "code": ..., "message": ...}`.
struct SigV4CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sigv4-check", abstract: "Check SigV4 signatures of requests read as JSON lines.", shouldDisplay: false)

    func run() throws {
        while let line = readLine(strippingNewline: true) {
            guard !line.isEmpty else { continue }
            print(Self.check(line))
        }
    }

    static func check(_ line: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let method = object["method"] as? String, let path = object["path"] as? String,
              let query = object["query"] as? String, let pairs = object["headers"] as? [[String]],
              let now = object["now"] as? Double, let secret = object["secret"] as? String
        else { return #"{"outcome":"input","message":"not a request object"}"# }
        let body = (object["body"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
        let headers = pairs.compactMap { $0.count == 2 ? ($0[0].lowercased(), $0[1]) : nil }
        let scope = SigV4Verifier.Scope(
            services: Set(object["services"] as? [String] ?? []), regions: Set(object["regions"] as? [String] ?? []),
            hosts: Set(object["hosts"] as? [String] ?? []))
        let outcome = SigV4Verifier(scope: scope).verify(
            .init(method: method, rawPath: path, rawQuery: query, headers: headers, body: body),
            now: Date(timeIntervalSince1970: now)
        ) { _ in secret }
        let result: [String: String] = switch outcome {
        case .verified: ["outcome": "verified"]
        case .refused(let code, let message): ["outcome": "refused", "code": code, "message": message]
        }
        let data = (try? JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
