import DroverFleetConfig
import DroverHTTP
import DroverIdentity
import DroverListeners
import DroverPolicy
import DroverPostgres
import DroverRegistry
import DroverShadow
import DroverShadowService
import DroverSQLite
import Foundation
import Logging
import MQTTBroker
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// The database behind the control plane's stores, which other processes may share.
protocol ControlPlaneDatabase: Sendable {
    /// Whether the broker's own database was made in this data directory, so that a missing
    /// `broker.sqlite` is an error, not an empty broker.
    func brokerStoreCreated(dataDir: String) -> Bool
    func markBrokerStoreCreated(dataDir: String) throws
    /// `wake` runs soon after any process commits a change, where the database can say so;
    /// the followers read the feed every follow interval in any case.
    func onChange(_ wake: @escaping @Sendable () -> Void)
    func close()
}

extension SQLiteControlPlane: ControlPlaneDatabase {
    /// SQLite has no notifications: the followers' timers are the only wake-up.
    func onChange(_ wake: @escaping @Sendable () -> Void) {}
}

extension PostgresControlPlane: ControlPlaneDatabase {}

/// The control plane's storage ports, and the database behind them.
struct ControlPlaneStores: Sendable {
    var registry: any RegistryStore
    var shadows: any ShadowStore
    var fleetConfig: any FleetConfigStore
    /// `drover.sqlite` or PostgreSQL; nil on the memory backend.
    var database: (any ControlPlaneDatabase)?

    func close() { database?.close() }
}

/// The composition root: builds every part from the configuration into one ServiceGroup.
public struct DroverApplication: Sendable {
    public let configuration: DroverConfiguration
    public let broker: Broker
    public let registry: PrometheusCollectorRegistry
    public let deviceRegistry: Registry
    public let shadows: ShadowService
    public let fleetConfig: FleetConfigService
    let stores: ControlPlaneStores
    let services: [any Service]
    let logger: Logger

    /// `mqtt.anonymous_policy`: an AWS IoT policy document in a file, checked as the API checks
    /// policies; a wrong one stops the start with the parser's message.
    static func loadAnonymousPolicy(_ path: String?) throws -> PolicyDocument? {
        guard let path else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DroverConfiguration.Error(description: "mqtt.anonymous_policy: cannot read \(path)")
        }
        switch PolicyDocument.parse(text) {
        case .success(let document): return document
        case .failure(let error):
            throw DroverConfiguration.Error(description: "mqtt.anonymous_policy: \(path) is not a valid policy: \(error)")
        }
    }

    public init(configuration: DroverConfiguration, eventLoopGroup: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        try Self.prepareDataDirectory(configuration.dataDir)
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let metrics = BrokerMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let stores = try Self.makeControlPlaneStores(configuration, eventLoopGroup: eventLoopGroup, logger: logger)
        self.stores = stores
        let deviceRegistry = try Registry(
            configuration: .init(account: configuration.accountId), store: stores.registry, logger: logger)
        self.deviceRegistry = deviceRegistry
        try Self.installAccessKeys(configuration, deviceRegistry, logger: logger)
        let authority = try Self.loadAuthority(configuration, logger: logger)
        let authorityInfo = CertificateInfo(certificate: authority.certificate)
        try deviceRegistry.installBuiltInCA(ControlPlane.facts(authorityInfo))
        let access = RegistryAccessControl(
            registry: deviceRegistry, region: configuration.region,
            anonymousPolicy: try Self.loadAnonymousPolicy(configuration.anonymousPolicyFile))

        let store = try Self.makeStore(configuration, stores, logger: logger)
        let started = ContinuousClock.now
        let broker = try Broker(
            configuration: configuration.limits, authenticator: access, authorizer: access, store: store, metrics: metrics,
            timerLoop: eventLoopGroup.next(), indexedAttributes: [RegistryAccessControl.thingAttribute], logger: logger)
        logger.notice("broker state loaded", metadata: [
            "storage": "\(configuration.storageBackend)", "sessions": "\(broker.sessionCount)",
            "retained": "\(broker.retainedCount)", "seconds": "\((ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 3))))",
        ])
        self.broker = broker
        var thingExists: (@Sendable (String) -> Bool)?
        if configuration.shadowRequireRegisteredThing {
            thingExists = { [weak deviceRegistry] (thing: String) -> Bool in deviceRegistry?.snapshot.things[thing] != nil }
        }
        let shadows = ShadowService(
            broker: broker, store: stores.shadows,
            configuration: .init(limits: configuration.shadowLimits,
                                 maxInFlightPerShadow: configuration.shadowMaxInFlight,
                                 maxNamedShadowsPerThing: configuration.shadowMaxNamedShadows,
                                 thingExists: thingExists),
            eventLoop: eventLoopGroup.next(), logger: logger)
        try shadows.start().wait()
        self.shadows = shadows
        var fleetConfiguration = FleetConfigService.Configuration(
            limits: configuration.shadowLimits)
        fleetConfiguration.retryInterval = .seconds(configuration.configRetryInterval)
        if stores.database != nil { fleetConfiguration.followInterval = .milliseconds(Int(configuration.storageFollowInterval * 1000)) }
        let fleetConfig = try FleetConfigService(
            registry: deviceRegistry, shadows: shadows, store: stores.fleetConfig, configuration: fleetConfiguration, logger: logger)
        self.fleetConfig = fleetConfig
        // A change to the registry applies at once: cached decisions go, and clients whose
        // certificate or thing is no longer valid are disconnected.
        deviceRegistry.onChange { [weak broker, weak access, weak shadows, weak fleetConfig] update in
            guard let broker, let access else { return }
            let state = update.state, changes = update.changes
            access.registryChanged(update)
            // Things that join a group or take a type get its configuration.
            fleetConfig?.registryChanged(changes)
            // Deleting a thing deletes its shadows.
            for change in changes where change.kind == Registry.Kind.thing && change.value == nil {
                shadows?.deleteAll(thing: change.key)
            }
            // Only changes that revoke are checked against the connections (each check visits
            // every connection of this node), so creating, activating and attaching cost the
            // connections nothing.
            let revoked = RegistryAccessControl.revocations(in: update)
            guard !revoked.isEmpty else { return }
            let affectedCertificates = revoked.principals, affectedCAs = revoked.cas, affectedThings = revoked.things
            let reason = "the client's certificate or thing is no longer authorized"
            let check: @Sendable (ClientIdentity) -> Bool = { identity in
                guard let id = identity.principal else { return false }
                let affected = affectedCertificates.contains(id)
                    || identity.attributes[RegistryAccessControl.thingAttribute].map(affectedThings.contains) == true
                    || state.certificates[id]?.caCertificateId.map(affectedCAs.contains) == true
                return affected && RegistryAccessControl.isRevoked(identity, in: state)
            }
            if affectedCAs.isEmpty {
                // Only the connections of those certificates, keys and things are visited.
                broker.disconnectClients(.notAuthorized, reason: reason, principals: affectedCertificates,
                                         attributes: [RegistryAccessControl.thingAttribute: affectedThings], where: check)
            } else {
                // A CA taken away reaches every certificate it signed: every connection is checked.
                broker.disconnectClients(.notAuthorized, reason: reason, where: check)
            }
        }
        // Other processes on the same database: their registry changes are taken in (and heard
        // by the listeners above) within the follow interval.
        if let database = stores.database {
            let interval = DispatchTimeInterval.milliseconds(Int(configuration.storageFollowInterval * 1000))
            deviceRegistry.follow(every: interval)
            try shadows.follow(every: interval)
            // PostgreSQL's notifications wake them at once.
            database.onChange { [weak deviceRegistry, weak shadows] in
                deviceRegistry?.catchUp()
                shadows?.wake()
            }
        }
        let issuing = ControlPlane.Issuing(
            authority: authority, authorityId: authorityInfo.certificateId,
            subject: CertificateSubject(commonName: configuration.deviceCertificateCommonName,
                                        organization: configuration.deviceCertificateOrganization),
            validityDays: configuration.deviceCertificateValidityDays, defaultKeyAlgorithm: configuration.defaultKeyAlgorithm)
        var controlPlaneConfiguration = ControlPlane.Configuration(
            endpointAddress: configuration.endpointAddress ?? "localhost", issuing: issuing, shadows: shadows,
            fleetConfig: fleetConfig)
        controlPlaneConfiguration.maxBodySize = configuration.httpLimits.maxBodySize
        controlPlaneConfiguration.regions = configuration.allowedRegions
        controlPlaneConfiguration.hostNames = configuration.allowedAPIHostNames
        let controlPlane = ControlPlane(registry: deviceRegistry, configuration: controlPlaneConfiguration, logger: logger)
        var services: [any Service] = [fleetConfig]
        if configuration.mqtt.port != 0 {
            services.append(MQTTListener(
                broker: broker,
                configuration: .init(name: "mqtt", host: configuration.mqtt.bind, port: configuration.mqtt.port,
                                     allowAnonymous: configuration.mqtt.allowAnonymous),
                group: eventLoopGroup, logger: logger))
        }
        if configuration.mqtts.port != 0 {
            let hostNames = configuration.serverNames
            let tls = try Self.serverTLS(authority: authority, hostNames: hostNames) { leaf, _ in
                access.verifyClientCertificate(leaf)
            }
            services.append(MQTTListener(
                broker: broker,
                configuration: .init(name: "mqtts", host: configuration.mqtts.bind, port: configuration.mqtts.port,
                                     allowAnonymous: false),
                group: eventLoopGroup, logger: logger, tls: tls))
        }
        if configuration.credentials.port != 0 {
            let tls = try Self.serverTLS(authority: authority, hostNames: configuration.serverNames) { leaf, _ in
                access.verifyClientCertificate(leaf)
            }
            services.append(CredentialsListener(
                host: configuration.credentials.bind, port: configuration.credentials.port, tls: tls, group: eventLoopGroup,
                logger: logger
            ) { certificate, path, thingName in
                await controlPlane.credentials(certificateDER: certificate, path: path, thingName: thingName)
            })
        }
        // One cap on connections for both HTTP listeners.
        let httpGate = HTTPConnectionGate(limit: configuration.httpLimits.maxConnections)
        // Plain HTTP (loopback, for local tools) and HTTPS serve the same routes, under one cap.
        func httpServer(_ listener: DroverConfiguration.Listener, tls: HTTPServerConfiguration.TLS?,
                        monitoring: MonitoringAccess) throws -> any Service {
            let (host, port, name) = (listener.bind, listener.port, tls == nil ? "HTTP" : "HTTPS")
            var server = HTTPServerConfiguration(host: host, port: port, allowAnonymousWebSocket: listener.allowAnonymous, tls: tls)
            server.allowedOrigins = Set(configuration.httpAllowedOrigins)
            server.monitoring = monitoring
            return try DroverHTTPServer.buildApplication(
                configuration: server,
                broker: broker, registry: registry, controlPlane: controlPlane, limits: configuration.httpLimits, gate: httpGate,
                eventLoopGroup: eventLoopGroup, logger: logger,
                onServerRunning: { channel in
                    logger.notice("\(name) server ready", metadata: [
                        "address": "\(host):\(channel.localAddress?.port ?? port)",
                        "routes": "/health /metrics /mqtt (WebSocket), AWS IoT control plane (SigV4)",
                    ])
                })
        }
        if configuration.http.port != 0 {
            services.append(try httpServer(configuration.http, tls: nil, monitoring: .open))
        }
        if configuration.https.port != 0 {
            let tls = try Self.httpsTLS(configuration, authority: authority)
            services.append(try httpServer(configuration.https, tls: tls, monitoring: configuration.publicMonitoring))
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
        defer {
            // Everything has stopped: the stores write what is pending and close cleanly.
            broker.store.close()
            deviceRegistry.close()
            shadows.close()
            stores.close()
        }
        try await group.run()
    }

    static func makeStore(_ configuration: DroverConfiguration, _ stores: ControlPlaneStores, logger: Logger) throws -> any BrokerStore {
        switch configuration.storageBackend {
        case "memory":
            logger.warning("storage.backend is memory: sessions, queued and retained messages are lost when the process stops")
            return InMemoryBrokerStore()
        default:
            let durability = SQLiteBrokerStore.Durability(configuration.storageDurability) ?? .fsync
            let path = (configuration.dataDir as NSString).appendingPathComponent("broker.sqlite")
            let store = try SQLiteBrokerStore(path: path, durability: durability, logger: logger,
                                              mustExist: stores.database?.brokerStoreCreated(dataDir: configuration.dataDir) ?? false)
            try stores.database?.markBrokerStoreCreated(dataDir: configuration.dataDir)
            return store
        }
    }

    /// Drover's CA: the configured one, or the one in the data directory, made on the first
    /// start (ECDSA P-256, 10 years; the key file is 0600).
    static func loadAuthority(_ configuration: DroverConfiguration, logger: Logger) throws -> CertificateAuthority {
        func read(_ path: String) throws -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw DroverConfiguration.Error(description: "cannot read \(path)")
            }
            return text
        }
        func load(_ certificatePath: String, _ keyPath: String) throws -> CertificateAuthority {
            try checkPrivate(keyPath)
            let (certificate, key) = (try read(certificatePath), try read(keyPath))
            do {
                return try CertificateAuthority(certificatePEM: certificate, privateKeyPEM: key)
            } catch {
                throw DroverConfiguration.Error(description: "the CA in \(certificatePath) and \(keyPath) cannot be used: \(error)")
            }
        }
        if let certificateFile = configuration.caCertificateFile {
            guard let keyFile = configuration.caPrivateKeyFile else {
                throw DroverConfiguration.Error(description: "ca.certificate_file needs ca.private_key_file")
            }
            return try load(certificateFile, keyFile)
        }
        let certificatePath = caCertificatePath(configuration.dataDir)
        let keyPath = (configuration.dataDir as NSString).appendingPathComponent("ca.key")
        let manager = FileManager.default
        if manager.fileExists(atPath: certificatePath) || manager.fileExists(atPath: keyPath) {
            return try load(certificatePath, keyPath)
        }
        let authority = try CertificateAuthority.generate(now: Date())
        guard writeSecretFile(keyPath, authority.privateKeyPEM),
              manager.createFile(atPath: certificatePath, contents: Data(authority.certificatePEM.utf8), attributes: [.posixPermissions: 0o644])
        else { throw DroverConfiguration.Error(description: "cannot write the CA to \(configuration.dataDir)") }
        logger.notice("created the certificate authority", metadata: ["certificate": "\(certificatePath)", "key": "\(keyPath)"])
        return authority
    }

    public static func caCertificatePath(_ dataDir: String) -> String {
        (dataDir as NSString).appendingPathComponent("ca.pem")
    }

    /// The MQTT server's certificate, issued by the CA at every start for `hostNames`.
    static func serverTLS(
        authority: CertificateAuthority, hostNames: [String], verify: @escaping @Sendable ([UInt8], [[UInt8]]) -> Bool
    ) throws -> MQTTTLSSetup {
        let ips = hostNames.filter { $0.contains(":") || $0.allSatisfy { $0.isNumber || $0 == "." } }
        let names = hostNames.filter { !ips.contains($0) }
        let keys = try DeviceKeyPair.generate(.ecdsaP256)
        let certificate = try authority.issueServerCertificate(
            publicKey: keys.publicKey, hostNames: names.isEmpty ? ["localhost"] : names, ipAddresses: ips, validityDays: 397,
            now: Date())
        return MQTTTLSSetup(certificateChainPEM: pem(of: certificate), privateKeyPEM: keys.privateKeyPEM, verifyClient: verify)
    }

    /// The HTTPS server's certificate: the operator's files, or one the CA issues at every start
    /// for the server's names (as for MQTT), so clients verify it with `ca.pem`.
    static func httpsTLS(_ configuration: DroverConfiguration, authority: CertificateAuthority) throws -> HTTPServerConfiguration.TLS {
        if let certificateFile = configuration.httpsCertificateFile {
            guard let keyFile = configuration.httpsPrivateKeyFile else {
                throw DroverConfiguration.Error(description: "https.certificate_file needs https.private_key_file")
            }
            try checkPrivate(keyFile)
            guard let chain = try? String(contentsOfFile: certificateFile, encoding: .utf8),
                  let key = try? String(contentsOfFile: keyFile, encoding: .utf8)
            else { throw DroverConfiguration.Error(description: "cannot read \(certificateFile) or \(keyFile)") }
            return HTTPServerConfiguration.TLS(certificateChainPEM: chain, privateKeyPEM: key)
        }
        if configuration.httpsPrivateKeyFile != nil {
            throw DroverConfiguration.Error(description: "https.private_key_file needs https.certificate_file")
        }
        let server = try serverTLS(authority: authority, hostNames: configuration.serverNames) { _, _ in false }
        return HTTPServerConfiguration.TLS(certificateChainPEM: server.certificateChainPEM, privateKeyPEM: server.privateKeyPEM)
    }

    /// The control plane's stores: all in `drover.sqlite`, in PostgreSQL, or in memory.
    static func makeControlPlaneStores(_ configuration: DroverConfiguration, eventLoopGroup: any EventLoopGroup,
                                       logger: Logger) throws -> ControlPlaneStores {
        switch configuration.storageBackend {
        case "memory":
            let registry = InMemoryRegistryStore()
            return ControlPlaneStores(registry: registry, shadows: InMemoryShadowStore(),
                                      fleetConfig: InMemoryFleetConfigStore(auditLog: registry), database: nil)
        case "postgres":
            guard let url = configuration.storageURL else {
                throw DroverConfiguration.Error(description: "storage.backend postgres needs storage.url (postgres://USER@HOST:PORT/DATABASE)")
            }
            var password: String?
            if let file = configuration.storagePasswordFile {
                try checkPrivate(file)
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw DroverConfiguration.Error(description: "storage.password_file: cannot read \(file)")
                }
                password = text.trimmingCharacters(in: .newlines)
            }
            let database: PostgresControlPlane
            do {
                database = try PostgresControlPlane(url: url, password: password, poolSize: configuration.storagePoolSize,
                                                    eventLoopGroup: eventLoopGroup, logger: logger)
            } catch {
                throw DroverConfiguration.Error(description: "\(error)")
            }
            logger.notice("control plane on PostgreSQL", metadata: ["database": "\(database.location)"])
            return ControlPlaneStores(registry: database.registry, shadows: database.shadows, fleetConfig: database.fleetConfig,
                                      database: database)
        default:
            let durability = SQLiteBrokerStore.Durability(configuration.storageDurability) ?? .fsync
            let database = try SQLiteControlPlane(dataDir: configuration.dataDir, path: configuration.storageDatabase,
                                                  durability: durability, logger: logger)
            return ControlPlaneStores(registry: database.registry, shadows: database.shadows, fleetConfig: database.fleetConfig,
                                      database: database)
        }
    }

    /// On the first start (no keys at all) an admin key is made and written, in the AWS shared
    /// credentials format, to `data_dir/admin-credentials` (0600). A key named in the
    /// configuration is installed at every start.
    static func installAccessKeys(_ configuration: DroverConfiguration, _ registry: Registry, logger: Logger) throws {
        if let id = configuration.accessKeyId {
            guard let file = configuration.secretAccessKeyFile else {
                throw DroverConfiguration.Error(description: "api.access_key_id needs api.secret_access_key_file")
            }
            try checkPrivate(file)
            guard let secret = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
                  secret.count >= 16 else {
                throw DroverConfiguration.Error(description: "api.secret_access_key_file \(file) must hold a secret of at least 16 characters")
            }
            let key = AccessKey(id: id, secret: secret, name: "configured", createdAt: Date().timeIntervalSince1970)
            var existing = registry.snapshot.accessKeys[id]
            existing?.createdAt = key.createdAt
            if existing != key { _ = try registry.installAccessKey(key) }
        }
        let path = (configuration.dataDir as NSString).appendingPathComponent("admin-credentials")
        let hasAdmin = registry.snapshot.accessKeys.values.contains { $0.name == "admin" }
        guard !hasAdmin else { return }
        let key = AccessKey.generate(name: "admin", policy: APIRole.admin.document, role: APIRole.admin.rawValue)
        let text = """
            # Drover's admin access key, made on the first start. boto3 and the AWS CLI read it with
            # AWS_SHARED_CREDENTIALS_FILE=\(path)
            [default]
            aws_access_key_id = \(key.id)
            aws_secret_access_key = \(key.secret)

            """
        guard writeSecretFile(path, text) else {
            throw DroverConfiguration.Error(description: "cannot write \(path)")
        }
        _ = try registry.installAccessKey(key)
        logger.notice("created the admin access key", metadata: ["accessKeyId": "\(key.id)", "credentials": "\(path)"])
    }

    /// Creates `path` with mode 0600 from its first byte (open with O_CREAT|O_EXCL and the mode,
    /// not a write then a chmod); false if it exists or cannot be written.
    public static func writeSecretFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else { return false }
            bytes = bytes.dropFirst(written)
        }
        return fsync(fd) == 0
    }

    /// A secret file readable by others is refused: it would not be a secret.
    static func checkPrivate(_ path: String) throws {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let mode = attributes[.posixPermissions] as? Int else {
            throw DroverConfiguration.Error(description: "cannot read \(path)")
        }
        if mode & 0o077 != 0 {
            throw DroverConfiguration.Error(description: "\(path) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
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
