import Foundation
import DroverHTTP
import DroverIdentity
import DroverShadow
import MQTTBroker
import Yams

/// Drover's configuration: defaults, then the config file (YAML), then `DROVER_*` environment
/// variables, then command-line flags. Every key of the file has an environment variable:
/// `limits.max_packet_size` is `DROVER_LIMITS_MAX_PACKET_SIZE`.
public struct DroverConfiguration: Sendable, Hashable {
    public struct Listener: Sendable, Hashable {
        public var bind: String
        /// 0 turns the listener off.
        public var port: Int
        /// nil: allowed only when bound to loopback.
        public var allowAnonymous: Bool?
    }

    public var dataDir = "./drover-data"
    public var logLevel = "info"
    public var mqtt = Listener(bind: "127.0.0.1", port: 1883, allowAnonymous: nil)
    public var mqtts = Listener(bind: "0.0.0.0", port: 8883, allowAnonymous: false)
    /// Plain HTTP, for local tools: loopback unless configured otherwise.
    public var http = Listener(bind: "127.0.0.1", port: 8080, allowAnonymous: nil)
    /// HTTPS: the API, metrics and MQTT over secure WebSocket, for everyone else.
    public var https = Listener(bind: "0.0.0.0", port: 8443, allowAnonymous: false)
    /// The credentials provider (mutual TLS): devices trade their certificate for temporary keys.
    public var credentials = Listener(bind: "0.0.0.0", port: 8444, allowAnonymous: false)
    /// The HTTPS server's certificate chain and key (PEM files); nil: issued by the CA at start.
    public var httpsCertificateFile: String?
    public var httpsPrivateKeyFile: String?
    /// Bounds of both HTTP listeners: header deadline, idle timeout, connections, sizes.
    public var httpLimits = HTTPLimits()
    /// Browser origins allowed to open MQTT over WebSocket; others are refused.
    public var httpAllowedOrigins: [String] = []
    /// `/health` and `/metrics` on the HTTPS listener: open, signed or off (plain HTTP, for local
    /// tools, stays open).
    public var publicMonitoring = MonitoringAccess.open
    public var limits = BrokerConfiguration()
    /// `sqlite` (durable, the default), `postgres` (the control plane in PostgreSQL at
    /// `storageURL`, shared by every process that names it; the broker's own state stays in
    /// `DATA_DIR/broker.sqlite`), or `memory` (state is lost when the process stops).
    public var storageBackend = "sqlite"
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require&sslrootcert=FILE]`.
    public var storageURL: String?
    /// A file (mode 0600) with the PostgreSQL password, so that it need not be in the URL.
    public var storagePasswordFile: String?
    /// PostgreSQL connections per process (besides the one that listens for notifications).
    public var storagePoolSize = 8
    /// `fsync`: every group commit reaches the disk before acknowledgements go out. `normal`: the
    /// OS decides when; a process crash loses nothing, a power cut can lose the last commits.
    public var storageDurability = "fsync"
    /// The control-plane database; nil: `DATA_DIR/drover.sqlite`. Several `drover serve`
    /// processes, each with its own data directory (for the broker's sessions), can name one
    /// file here and share the registry, shadows and configuration.
    public var storageDatabase: String?
    /// How often the control plane reads the changes other processes made to the database.
    public var storageFollowInterval = 0.25
    /// The largest shadow document (and update request), in bytes. AWS allows 8 KB.
    public var shadowMaxDocumentSize = 65_536
    /// The largest shadow with its metadata, in bytes; nil: four times `shadowMaxDocumentSize`.
    public var shadowMaxStoredSize: Int?
    /// Requests for one shadow waiting to be answered; beyond it, 429.
    public var shadowMaxInFlight = 100
    /// The most named shadows of one thing.
    public var shadowMaxNamedShadows = 100
    /// Whether shadows exist only for things in the registry (404 otherwise).
    public var shadowRequireRegisteredThing = true
    /// An AWS IoT policy document (a file) that applies to anonymous clients; nil: they may do
    /// anything on the reserved-topic rules' terms.
    public var anonymousPolicyFile: String?
    /// Seconds between retries of configuration writes that a member's shadow refused.
    public var configRetryInterval = 30
    /// The account id in ARNs.
    public var accountId = "123456789012"
    /// The region in the ARNs that device policies are checked against (the API takes the
    /// region of each request's signature).
    public var region = "us-east-1"
    /// The regions an API signature may name; nil: only `region`.
    public var regions: [String]?
    /// The names a signed API request's Host may carry; nil: localhost, 127.0.0.1, ::1, the
    /// machine's host name, the endpoint address and the MQTT server's names.
    public var apiHostNames: [String]?
    /// What DescribeEndpoint answers; nil: the machine's host name.
    public var endpointAddress: String?
    /// An access key for automation, whose secret is read from a file (mode 0600).
    public var accessKeyId: String?
    public var secretAccessKeyFile: String?
    /// A bring-your-own CA (PEM files) in place of the one Drover generates.
    public var caCertificateFile: String?
    public var caPrivateKeyFile: String?
    /// Subject and validity of the device certificates Drover issues.
    public var deviceCertificateOrganization = "Drover"
    public var deviceCertificateCommonName = "Drover device"
    public var deviceCertificateValidityDays = 3650
    /// The key CreateKeysAndCertificate makes when the request names none (`ca.default_key_algorithm`).
    public var defaultKeyAlgorithm: DeviceKeyPair.Algorithm = .rsa2048
    /// The names in the MQTT server's TLS certificate; nil: localhost, 127.0.0.1 and the host name.
    public var serverHostNames: [String]?

    public init() {}

    /// The names in the TLS servers' certificates (MQTT and HTTPS).
    public var serverNames: [String] {
        serverHostNames ?? ["localhost", "127.0.0.1", ProcessInfo.processInfo.hostName]
    }

    /// The regions an API signature may name.
    public var allowedRegions: Set<String> {
        Set(regions ?? [region]).union([region])
    }

    /// The host names a signed API request may be addressed to.
    public var allowedAPIHostNames: Set<String> {
        if let apiHostNames { return Set(apiHostNames) }
        var names: Set<String> = ["localhost", "127.0.0.1", "::1", ProcessInfo.processInfo.hostName.lowercased()]
        if let endpointAddress { names.insert(endpointAddress.lowercased()) }
        for name in serverHostNames ?? [] { names.insert(name.lowercased()) }
        return names
    }

    /// The bounds of shadow requests and documents, from the `shadows.` keys.
    public var shadowLimits: ShadowLimits {
        ShadowLimits(
            maximumRequestSize: shadowMaxDocumentSize, maximumDocumentSize: shadowMaxDocumentSize,
            maximumStoredSize: shadowMaxStoredSize)
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    /// Every key, as `section.key`, with the function that applies a value to it.
    nonisolated(unsafe) private static let keys: [String: (inout DroverConfiguration, String) throws -> Void] = [
        "data_dir": { $0.dataDir = $1 },
        "log_level": { config, value in
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(value) else {
                throw Error(description: "log_level must be one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = value
        },
        "storage.backend": { config, value in
            guard ["sqlite", "postgres", "memory"].contains(value) else {
                throw Error(description: "storage.backend must be sqlite, postgres or memory, not '\(value)'")
            }
            config.storageBackend = value
        },
        "storage.url": { config, value in
            guard value.hasPrefix("postgres://") || value.hasPrefix("postgresql://") else {
                throw Error(description: "storage.url must be a postgres:// URL")
            }
            config.storageURL = value
        },
        "storage.password_file": { config, value in
            guard !value.isEmpty else { throw Error(description: "storage.password_file must be a file path") }
            config.storagePasswordFile = value
        },
        "storage.pool_size": { config, value in
            guard let size = Int(value), (1...256).contains(size) else {
                throw Error(description: "storage.pool_size must be a number of connections from 1 to 256, not '\(value)'")
            }
            config.storagePoolSize = size
        },
        "storage.durability": { config, value in
            guard ["fsync", "normal"].contains(value) else {
                throw Error(description: "storage.durability must be fsync or normal, not '\(value)'")
            }
            config.storageDurability = value
        },
        "storage.database": { config, value in
            guard !value.isEmpty else { throw Error(description: "storage.database must be a file path") }
            config.storageDatabase = value
        },
        "storage.follow_interval": { config, value in
            guard let seconds = Double(value), seconds >= 0.01, seconds <= 60 else {
                throw Error(description: "storage.follow_interval must be a number of seconds from 0.01 to 60, not '\(value)'")
            }
            config.storageFollowInterval = seconds
        },
        "api.account_id": { config, value in
            guard value.count == 12, value.allSatisfy(\.isNumber) else {
                throw Error(description: "api.account_id must be 12 digits, not '\(value)'")
            }
            config.accountId = value
        },
        "api.endpoint_address": { $0.endpointAddress = $1 },
        "shadows.max_in_flight": { $0.shadowMaxInFlight = try int($1, "shadows.max_in_flight", 1...100_000) },
        "shadows.max_named_shadows": { $0.shadowMaxNamedShadows = try int($1, "shadows.max_named_shadows", 0...10_000) },
        "shadows.require_registered_thing": {
            $0.shadowRequireRegisteredThing = try bool($1, "shadows.require_registered_thing")
        },
        "mqtt.anonymous_policy": { $0.anonymousPolicyFile = $1 },
        "config.retry_interval": { $0.configRetryInterval = try int($1, "config.retry_interval", 1...86_400) },
        "shadows.max_document_size": { $0.shadowMaxDocumentSize = try int($1, "shadows.max_document_size", 1024...16 << 20) },
        "shadows.max_stored_size": { $0.shadowMaxStoredSize = try int($1, "shadows.max_stored_size", 1024...64 << 20) },
        "api.region": { config, value in
            guard !value.isEmpty, value.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) else {
                throw Error(description: "api.region must look like us-east-1, not '\(value)'")
            }
            config.region = value
        },
        "api.regions": { config, value in
            let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty, names.allSatisfy({ $0.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" } }) else {
                throw Error(description: "api.regions must be a comma-separated list like us-east-1,eu-west-1, not '\(value)'")
            }
            config.regions = names
        },
        "api.host_names": { config, value in
            let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw Error(description: "api.host_names must name at least one host") }
            config.apiHostNames = names
        },
        "api.access_key_id": { config, value in
            guard (16...128).contains(value.count), value.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw Error(description: "api.access_key_id must be 16 to 128 letters and digits")
            }
            config.accessKeyId = value
        },
        "api.secret_access_key_file": { $0.secretAccessKeyFile = $1 },
        "ca.certificate_file": { $0.caCertificateFile = $1 },
        "ca.private_key_file": { $0.caPrivateKeyFile = $1 },
        "ca.device_organization": { $0.deviceCertificateOrganization = $1 },
        "ca.device_common_name": { $0.deviceCertificateCommonName = $1 },
        "ca.device_validity_days": { $0.deviceCertificateValidityDays = try int($1, "ca.device_validity_days", 1...36500) },
        "ca.default_key_algorithm": { config, value in
            guard let algorithm = DeviceKeyPair.Algorithm(awsName: value) else {
                let names = DeviceKeyPair.Algorithm.all.map(\.awsName).joined(separator: " or ")
                throw Error(description: "ca.default_key_algorithm must be \(names), not '\(value)'")
            }
            config.defaultKeyAlgorithm = algorithm
        },
        "mqtts.host_names": { config, value in
            let names = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !names.isEmpty else { throw Error(description: "mqtts.host_names must name at least one host") }
            config.serverHostNames = names
        },
        "mqtt.bind": { $0.mqtt.bind = $1 },
        "mqtt.port": { $0.mqtt.port = try port($1, "mqtt.port") },
        "mqtt.allow_anonymous": { $0.mqtt.allowAnonymous = try bool($1, "mqtt.allow_anonymous") },
        "mqtts.bind": { $0.mqtts.bind = $1 },
        "mqtts.port": { $0.mqtts.port = try port($1, "mqtts.port") },
        "https.bind": { $0.https.bind = $1 },
        "https.port": { $0.https.port = try port($1, "https.port") },
        "credentials.bind": { $0.credentials.bind = $1 },
        "credentials.port": { $0.credentials.port = try port($1, "credentials.port") },
        "https.certificate_file": { $0.httpsCertificateFile = $1 },
        "https.private_key_file": { $0.httpsPrivateKeyFile = $1 },
        "http.header_timeout": { $0.httpLimits.headerTimeout = .seconds(Int64(try int($1, "http.header_timeout", 1...3600))) },
        "http.body_timeout": { $0.httpLimits.bodyTimeout = .seconds(Int64(try int($1, "http.body_timeout", 1...3600))) },
        "http.idle_timeout": { $0.httpLimits.idleTimeout = .seconds(Int64(try int($1, "http.idle_timeout", 1...86_400))) },
        "http.max_connections": { $0.httpLimits.maxConnections = try int($1, "http.max_connections", 1...1_000_000) },
        "http.max_header_size": { $0.httpLimits.maxHeaderSize = try int($1, "http.max_header_size", 1024...1 << 20) },
        "http.max_body_size": { $0.httpLimits.maxBodySize = try int($1, "http.max_body_size", 1024...64 << 20) },
        "http.public_monitoring": { config, value in
            guard let access = MonitoringAccess(rawValue: value) else {
                throw Error(description: "http.public_monitoring must be open, signed or off, not '\(value)'")
            }
            config.publicMonitoring = access
        },
        "http.allowed_origins": { config, value in
            config.httpAllowedOrigins = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        },
        "http.bind": { $0.http.bind = $1 },
        "http.port": { $0.http.port = try port($1, "http.port") },
        "http.allow_anonymous_websocket": { $0.http.allowAnonymous = try bool($1, "http.allow_anonymous_websocket") },
        "limits.max_packet_size": { $0.limits.maxPacketSize = try int($1, "limits.max_packet_size", 64...268_435_455) },
        "limits.max_queued_messages": { $0.limits.maxQueuedMessages = try int($1, "limits.max_queued_messages", 1...10_000_000) },
        "limits.max_queued_overflow": { $0.limits.maxQueuedOverflow = try int($1, "limits.max_queued_overflow", 0...10_000_000) },
        "limits.max_queued_bytes": { $0.limits.maxQueuedBytes = try int($1, "limits.max_queued_bytes", 1024...Int(Int32.max)) },
        "limits.max_total_queued_messages": {
            $0.limits.maxTotalQueuedMessages = try int($1, "limits.max_total_queued_messages", 1...1_000_000_000)
        },
        "limits.max_total_queued_bytes": {
            $0.limits.maxTotalQueuedBytes = try int($1, "limits.max_total_queued_bytes", 1024...(1 << 50))
        },
        "limits.purge_interval": { $0.limits.purgeInterval = try double($1, "limits.purge_interval") },
        "limits.receive_maximum": { $0.limits.receiveMaximum = UInt16(try int($1, "limits.receive_maximum", 1...65_535)) },
        "limits.topic_alias_maximum": { $0.limits.topicAliasMaximum = UInt16(try int($1, "limits.topic_alias_maximum", 0...65_535)) },
        "limits.max_keep_alive": { $0.limits.maxKeepAlive = UInt16(try int($1, "limits.max_keep_alive", 1...65_535)) },
        "limits.connect_timeout": { $0.limits.connectTimeout = try double($1, "limits.connect_timeout") },
        "limits.max_connections": { $0.limits.maxConnections = try int($1, "limits.max_connections", 1...10_000_000) },
        "limits.max_session_expiry": { $0.limits.maxSessionExpiry = UInt32(try int($1, "limits.max_session_expiry", 0...Int(UInt32.max))) },
        "limits.shutdown_grace_period": { $0.limits.shutdownGracePeriod = try double($1, "limits.shutdown_grace_period") },
        // The MQTT spec's own minimums bound these from below: 23-byte client ids, one
        // subscription, a reason string may be cut to nothing.
        "limits.max_client_id_length": { $0.limits.maxClientIdLength = try int($1, "limits.max_client_id_length", 23...65_535) },
        "limits.max_topic_length": { $0.limits.maxTopicLength = try int($1, "limits.max_topic_length", 1...65_535) },
        "limits.max_topic_levels": { $0.limits.maxTopicLevels = try int($1, "limits.max_topic_levels", 1...32_768) },
        "limits.max_filters_per_subscribe": {
            $0.limits.maxFiltersPerSubscribe = try int($1, "limits.max_filters_per_subscribe", 1...65_535)
        },
        "limits.max_subscriptions_per_client": {
            $0.limits.maxSubscriptionsPerClient = try int($1, "limits.max_subscriptions_per_client", 1...1_000_000)
        },
        "limits.max_inflight_outbound": { $0.limits.maxInflightOutbound = try int($1, "limits.max_inflight_outbound", 1...65_535) },
        "limits.max_outbound_topic_aliases": {
            $0.limits.maxOutboundTopicAliases = try int($1, "limits.max_outbound_topic_aliases", 0...65_535)
        },
        "limits.max_reason_string_length": {
            $0.limits.maxReasonStringLength = try int($1, "limits.max_reason_string_length", 0...65_535)
        },
        "limits.max_user_properties": { $0.limits.maxUserProperties = try int($1, "limits.max_user_properties", 0...65_535) },
        "limits.max_connect_packet_size": {
            $0.limits.maxConnectPacketSize = try int($1, "limits.max_connect_packet_size", 64...268_435_460)
        },
        "limits.max_pending_connections": {
            $0.limits.maxPendingConnections = try int($1, "limits.max_pending_connections", 1...10_000_000)
        },
        "limits.max_retained_messages": {
            $0.limits.maxRetainedMessages = try int($1, "limits.max_retained_messages", 0...100_000_000)
        },
        "limits.max_retained_per_client": {
            $0.limits.maxRetainedPerClient = try int($1, "limits.max_retained_per_client", 0...100_000_000)
        },
        "limits.max_unreleased_qos2": { $0.limits.maxUnreleasedQoS2 = try int($1, "limits.max_unreleased_qos2", 1...65_535) },
    ]

    public static var allKeys: [String] { keys.keys.sorted() }

    public static func environmentName(of key: String) -> String {
        "DROVER_" + key.replacingOccurrences(of: ".", with: "_").uppercased()
    }

    /// Loads the configuration: defaults, the file if given (or `./drover.yaml` if present), then
    /// the environment.
    public static func load(file: String?, environment: [String: String]) throws -> DroverConfiguration {
        var config = DroverConfiguration()
        var path = file
        if path == nil, FileManager.default.fileExists(atPath: "drover.yaml") { path = "drover.yaml" }
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw Error(description: "cannot read config file \(path)")
            }
            let yaml: Any?
            do {
                yaml = try Yams.load(yaml: text)
            } catch {
                throw Error(description: "config file \(path) is not valid YAML: \(error)")
            }
            if let yaml {
                guard let root = yaml as? [String: Any] else {
                    throw Error(description: "config file \(path) must be a mapping of keys to values")
                }
                for (key, value) in flatten(root, prefix: "") {
                    try config.set(key, value, source: path)
                }
            }
        }
        for key in keys.keys.sorted() {
            if let value = environment[environmentName(of: key)] {
                try config.set(key, value, source: environmentName(of: key))
            }
        }
        return config
    }

    public mutating func set(_ key: String, _ value: String, source: String) throws {
        guard let apply = Self.keys[key] else {
            throw Error(description: "\(source): unknown configuration key '\(key)' (known: \(Self.allKeys.joined(separator: ", ")))")
        }
        do {
            try apply(&self, value)
        } catch let error as Error {
            throw Error(description: "\(source): \(error.description)")
        }
    }

    private static func flatten(_ map: [String: Any], prefix: String) -> [(String, String)] {
        var result: [(String, String)] = []
        for (key, value) in map {
            let full = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let nested = value as? [String: Any] {
                result += flatten(nested, prefix: full)
            } else {
                result.append((full, "\(value)"))
            }
        }
        return result
    }

    private static func int(_ value: String, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let number = Int(value.trimmingCharacters(in: .whitespaces)), range.contains(number) else {
            throw Error(description: "\(key) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(value)'")
        }
        return number
    }

    private static func port(_ value: String, _ key: String) throws -> Int { try int(value, key, 0...65_535) }

    private static func double(_ value: String, _ key: String) throws -> Double {
        guard let number = Double(value.trimmingCharacters(in: .whitespaces)), number >= 0, number <= 1_000_000 else {
            throw Error(description: "\(key) must be a number of seconds, not '\(value)'")
        }
        return number
    }

    private static func bool(_ value: String, _ key: String) throws -> Bool {
        switch value.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw Error(description: "\(key) must be true or false, not '\(value)'")
        }
    }
}
