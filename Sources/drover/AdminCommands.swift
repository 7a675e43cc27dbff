import ArgumentParser
import DroverApp
import DroverHTTP
import DroverHTTPClient
import DroverSigV4
import Foundation
import NIOPosix

/// Where the running server is, and the key to sign with (by default the admin key that the
/// server wrote to its data directory).
struct APIOptions: ParsableArguments {
    @Option(name: .long, help: "The server's API: http://127.0.0.1:8080 (loopback), or https://HOST:8443.")
    var endpoint = "http://127.0.0.1:8080"
    @Option(name: .long, help: "The CA (PEM) that the HTTPS server's certificate is checked against. Default: DATA_DIR/ca.pem")
    var caFile: String?

    @Option(name: .long, help: "Data directory, for its admin-credentials file.")
    var dataDir = "./drover-data"

    @Option(name: .long, help: "An AWS shared-credentials file. Default: DATA_DIR/admin-credentials")
    var credentials: String?

    @Option(name: .long, help: "The region to sign for (it appears in ARNs).")
    var region = "us-east-1"

    func signer() throws -> SigV4Signer {
        let path = credentials ?? (dataDir as NSString).appendingPathComponent("admin-credentials")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the credentials file \(path); give --credentials or --data-dir")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
            throw ValidationError("\(path) has no aws_access_key_id and aws_secret_access_key")
        }
        return SigV4Signer(accessKeyId: id, secretAccessKey: secret, region: region)
    }

    /// Sends a signed request; returns the JSON answer, or throws the server's message.
    func call(_ method: String, _ path: String, query: [(String, String)] = [], body: [String: Any]? = nil,
              document: Data? = nil, headers extra: [String: String] = [:]) async throws -> Any {
        guard let base = URL(string: endpoint), let host = base.host else { throw ValidationError("bad --endpoint \(endpoint)") }
        let hostHeader = base.port.map { "\(host):\($0)" } ?? host
        let encodedQuery = query.map { "\(SigV4Query.encode($0.0))=\(SigV4Query.encode($0.1))" }.joined(separator: "&")
        let encodedPath = path.split(separator: "/", omittingEmptySubsequences: false).map { SigV4Query.encode(String($0)) }.joined(separator: "/")
        var bytes = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        if let document {
            // The document goes as written, so its numbers keep their form.
            let rest = bytes.count > 2 ? "," + String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self) : ""
            bytes = Data(("{\"document\":" + String(decoding: document, as: UTF8.self) + rest + "}").utf8)
        }
        guard URL(string: endpoint + encodedPath + (encodedQuery.isEmpty ? "" : "?" + encodedQuery)) != nil else {
            throw ValidationError("bad request path \(path)")
        }
        var headers: [(String, String)] = [("Host", hostHeader)]
        if body != nil || document != nil { headers.append(("Content-Type", "application/json")) }
        for (name, value) in extra { headers.append((name, value)) }
        for (name, value) in try signer().headers(method: method, host: hostHeader, path: encodedPath, query: encodedQuery,
                                                   body: Array(bytes)) {
            headers.append((name, value))
        }
        // HTTPS is checked against the server's own CA, which URLSession on Linux cannot be given.
        let secure = base.scheme == "https"
        let tls = secure ? try NIOHTTPConnection.tlsContext(caFile: caFile ?? DroverApplication.caCertificatePath(dataDir)) : nil
        let isAddress = host.allSatisfy { $0.isHexDigit || $0 == "." || $0 == ":" }
        let connection = try await NIOHTTPConnection.connect(
            host: host, port: base.port ?? (secure ? 443 : 80), tls: tls, serverName: isAddress ? nil : host,
            group: MultiThreadedEventLoopGroup.singleton)
        let target = (encodedPath.isEmpty ? "/" : encodedPath) + (encodedQuery.isEmpty ? "" : "?" + encodedQuery)
        let response: NIOHTTPConnection.Response
        do {
            response = try await connection.send(method: method, path: target, headers: headers, body: Array(bytes))
        } catch {
            await connection.close()
            throw ValidationError("cannot reach \(endpoint): \(error)")
        }
        await connection.close()
        let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) ?? [:]
        guard response.status == 200 else {
            let type = response.headers.first(name: "x-amzn-ErrorType") ?? "error"
            let message = (json as? [String: Any])?["message"] as? String ?? String(decoding: response.body, as: UTF8.self)
            throw ValidationError("\(type): \(message)")
        }
        return json
    }
}

enum SigV4Query {
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")) ?? text
    }
}

func printJSON(_ value: Any) {
    if let data = try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "The certificate authority.", subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the CA certificate (PEM) that devices trust, as they trust Amazon's root CA on AWS.")

        @Option(name: .long, help: "Data directory.")
        var dataDir = "./drover-data"

        func run() throws {
            let path = DroverApplication.caCertificatePath(dataDir)
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("no CA certificate at \(path): start `drover serve` once, or give --data-dir")
            }
            print(pem, terminator: pem.hasSuffix("\n") ? "" : "\n")
        }
    }
}

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "API access keys.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an access key; its secret is shown once.")
        @OptionGroup var api: APIOptions
        @Option(name: .long, help: "A name to recognise it by.")
        var name = ""
        @Option(name: .long, help: "A ready-made policy: admin, operator, provisioner or read-only.")
        var role: String?
        @Option(name: .long, help: "A file with an IAM-style policy document (Effect, Action, Resource).")
        var policy: String?

        func validate() throws {
            guard (role == nil) != (policy == nil) else { throw ValidationError("give --role or --policy (one of them)") }
        }

        func run() async throws {
            var body: [String: Any] = ["name": name]
            if let role { body["role"] = role }
            if let policy {
                guard let text = try? String(contentsOfFile: policy, encoding: .utf8) else {
                    throw ValidationError("cannot read the policy file \(policy)")
                }
                body["policy"] = text
            }
            printJSON(try await api.call("POST", "/drover/access-keys", body: body))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the access keys (without secrets).")
        @OptionGroup var api: APIOptions

        func run() async throws { printJSON(try await api.call("GET", "/drover/access-keys")) }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an access key at once.")
        @OptionGroup var api: APIOptions
        @Argument(help: "The access key id.")
        var accessKeyId: String

        func run() async throws {
            _ = try await api.call("DELETE", "/drover/access-keys/\(accessKeyId)")
            print("revoked \(accessKeyId)")
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Query the audit log of control-plane changes, newest first.")
    @OptionGroup var api: APIOptions
    @Option(name: .long, help: "From this time (epoch seconds or ISO 8601).")
    var from: String?
    @Option(name: .long, help: "Up to this time (epoch seconds or ISO 8601).")
    var to: String?
    @Option(name: .long, help: "Only this resource (a thing name, cert/ID, policy/NAME, ...).")
    var resource: String?
    @Option(name: .long, help: "Only requests signed with this access key id.")
    var principal: String?
    @Option(name: .long, help: "Only this operation, e.g. CreateThing.")
    var operation: String?
    @Option(name: .long, help: "At most this many entries (1 to 1000).")
    var limit = 100

    func run() async throws {
        var query: [(String, String)] = [("maxResults", "\(limit)")]
        for (name, value) in [("from", from), ("to", to), ("resource", resource), ("principal", principal), ("operation", operation)] {
            if let value { query.append((name, value)) }
        }
        let answer = try await api.call("GET", "/drover/audit", query: query)
        let formatter = ISO8601DateFormatter()
        for entry in (answer as? [String: Any])?["entries"] as? [[String: Any]] ?? [] {
            let time = formatter.string(from: Date(timeIntervalSince1970: entry["time"] as? Double ?? 0))
            let fields = ["principal", "operation", "resource", "outcome"].map { entry[$0] as? String ?? "-" }
            let message = (entry["message"] as? String).map { "  \($0)" } ?? ""
            print("\(time)  \(fields.joined(separator: "  "))\(message)")
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Policies.", subcommands: [Explain.self])

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Say whether a thing's certificate may do something, and which statement decided.")
        @OptionGroup var api: APIOptions
        @Option(name: .long, help: "The thing; its attached certificate is the principal.")
        var thing: String
        @Option(name: .long, help: "iot:Connect, iot:Publish, iot:Subscribe or iot:Receive.")
        var action: String
        @Option(name: .long, help: "The topic (publish, receive) or topic filter (subscribe).")
        var topic: String?
        @Option(name: .long, help: "The client id. Default: the thing name.")
        var clientId: String?
        @Option(name: .long, help: "The account id in ARNs.")
        var account = "123456789012"

        func run() async throws {
            let types = ["iot:Connect": "CONNECT", "iot:Publish": "PUBLISH", "iot:Subscribe": "SUBSCRIBE", "iot:Receive": "RECEIVE"]
            guard let type = types[action] else { throw ValidationError("--action must be one of \(types.keys.sorted().joined(separator: ", "))") }
            let client = clientId ?? thing
            let resource: String
            switch type {
            case "CONNECT": resource = "client/\(client)"
            case "SUBSCRIBE": resource = "topicfilter/" + (try topicValue())
            default: resource = "topic/" + (try topicValue())
            }
            let principals = try await api.call("GET", "/things/\(thing)/principals") as? [String: Any]
            guard let principal = (principals?["principals"] as? [String])?.first else {
                throw ValidationError("thing \(thing) has no certificate attached")
            }
            let answer = try await api.call(
                "POST", "/test-authorization", query: [("clientId", client)],
                body: ["principal": principal, "authInfos": [["actionType": type, "resources": ["arn:aws:iot:\(api.region):\(account):\(resource)"]]]])
            guard let result = ((answer as? [String: Any])?["authResults"] as? [[String: Any]])?.first else {
                throw ValidationError("no answer")
            }
            print(result["authDecision"] as? String ?? "?")
            print(result["explanation"] as? String ?? "")
            if (result["authDecision"] as? String) != "ALLOWED" { throw ExitCode(1) }
        }

        func topicValue() throws -> String {
            guard let topic else { throw ValidationError("--topic is required for \(action)") }
            return topic
        }
    }
}

struct CertificatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certificates", abstract: "Device certificates.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a key pair and a certificate for a device (CreateKeysAndCertificate), with the key type you choose.",
            discussion: """
                The certificate goes to PREFIX.cert.pem and the private key to PREFIX.private.key (mode 0600); \
                the key is not kept by the server, so this is its only copy.
                """)
        @OptionGroup var api: APIOptions
        @Option(name: .long, help: "RSA_2048 (AWS's key, the server's default) or EC_prime256v1. Default: the server's ca.default_key_algorithm.")
        var keyAlgorithm: String?
        @Flag(name: .long, help: "Make the certificate ACTIVE at once.")
        var setAsActive = false
        @Option(name: .long, help: "Where the files go: PREFIX.cert.pem and PREFIX.private.key.")
        var out: String

        func validate() throws {
            if let keyAlgorithm, !["RSA_2048", "EC_prime256v1"].contains(keyAlgorithm) {
                throw ValidationError("--key-algorithm must be RSA_2048 or EC_prime256v1")
            }
        }

        func run() async throws {
            let certificatePath = out + ".cert.pem", keyPath = out + ".private.key"
            for path in [certificatePath, keyPath] where FileManager.default.fileExists(atPath: path) {
                throw ValidationError("\(path) exists; choose another --out")
            }
            var query: [(String, String)] = [("setAsActive", setAsActive ? "true" : "false")]
            if let keyAlgorithm { query.append(("keyAlgorithm", keyAlgorithm)) }
            guard let answer = try await api.call("POST", "/keys-and-certificate", query: query) as? [String: Any],
                  let pem = answer["certificatePem"] as? String,
                  let keys = answer["keyPair"] as? [String: Any], let privateKey = keys["PrivateKey"] as? String
            else { throw ValidationError("the server's answer has no certificate and key") }
            guard DroverApplication.writeSecretFile(keyPath, privateKey) else { throw ValidationError("cannot write \(keyPath)") }
            do {
                try pem.write(toFile: certificatePath, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write \(certificatePath): \(error)")
            }
            printJSON([
                "certificateId": answer["certificateId"] ?? "", "certificateArn": answer["certificateArn"] ?? "",
                "certificateFile": certificatePath, "privateKeyFile": keyPath,
            ])
        }
    }
}
