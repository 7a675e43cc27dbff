import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import PostgresNIO

/// The control plane on PostgreSQL (`storage.backend: postgres`): the same records, audit log,
/// shadows and change feed as `drover.sqlite`, in tables of their own (`drover_*`), so that
/// several `drover serve` processes, on one machine or several, share one truth.
///
/// - A command is one transaction: records, audit entry and change rows, or nothing.
/// - The change table is the feed. Every writer that appends to it first takes one advisory
///   lock (``PostgresSession/lockFeed()``), so change numbers commit in order and a reader at
///   number N has seen everything before N.
/// - Each such transaction sends `NOTIFY drover_change`; a listening connection wakes the
///   followers at once (``onChange(_:)``). A lost notification costs only latency: the
///   followers also read the feed every `storage.follow_interval`.
/// - Migrations are versioned and append-only, run under an advisory lock, so that nodes that
///   start together migrate once.
public final class PostgresControlPlane: Sendable {
    /// The advisory lock of the change feed's writers, and the one of migrations.
    static let feedLock: Int64 = 0x6472_6f76_6572_0001
    static let migrationLock: Int64 = 0x6472_6f76_6572_0002
    static let channel = "drover_change"

    let pool: PostgresPool
    let node: String
    private let listener: ChangeListener
    public let registry: PostgresRegistryStore
    public let fleetConfig: PostgresFleetConfigStore
    public let shadows: PostgresShadowStore
    /// Where the database is, without the password, for logs.
    public let location: String

    /// Connects (at most `poolSize` connections, and one more that listens), migrates, and
    /// starts listening for other processes' changes.
    public init(url: String, password: String? = nil, poolSize: Int = 8, eventLoopGroup: any EventLoopGroup,
                logger: Logger) throws {
        let (configuration, location) = try Self.configuration(url: url, password: password)
        self.location = location
        pool = PostgresPool(configuration: configuration, size: poolSize, group: eventLoopGroup, logger: logger)
        node = UUID().uuidString
        do {
            try Self.migrate(pool, logger: logger)
        } catch {
            pool.close()
            throw PostgresStoreError("cannot use the PostgreSQL database at \(location): \(error)")
        }
        registry = PostgresRegistryStore(pool: pool, node: node)
        fleetConfig = PostgresFleetConfigStore(pool: pool, node: node)
        shadows = PostgresShadowStore(pool: pool, node: node)
        listener = ChangeListener(pool: pool, node: node, logger: logger)
        listener.start()
    }

    /// `wake` runs (on an event loop: it must only hand work on) soon after any process
    /// commits a change.
    public func onChange(_ wake: @escaping @Sendable () -> Void) { listener.add(wake) }

    /// Whether the broker's own database was made in this data directory on this host.
    public func brokerStoreCreated(dataDir: String) -> Bool {
        let key = Self.brokerKey(dataDir)
        return (try? pool.withConnection { session in
            try !session.query("SELECT 1 FROM drover_meta WHERE key = \(key)").isEmpty
        }) ?? false
    }

    public func markBrokerStoreCreated(dataDir: String) throws {
        let key = Self.brokerKey(dataDir)
        try pool.withConnection { session in
            try session.query("""
                INSERT INTO drover_meta (key, value) VALUES (\(key), 'created') ON CONFLICT (key) DO NOTHING
                """)
        }
    }

    static func brokerKey(_ dataDir: String) -> String {
        let path = URL(fileURLWithPath: dataDir).standardizedFileURL.resolvingSymlinksInPath().path
        return "broker-store " + ProcessInfo.processInfo.hostName + ":" + path
    }

    public func close() {
        listener.stop()
        pool.close()
    }

    // MARK: Configuration

    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?sslmode=...&sslrootcert=...`, or
    /// `?host=/run/postgresql` for a Unix socket. `sslmode` is `disable`, or `require`
    /// (TLS 1.2 or later, the server's certificate verified against `sslrootcert` or the
    /// system's roots, and its name); the default is `disable` on loopback and sockets and
    /// `require` everywhere else. `password` (from `storage.password_file`) wins over the URL's.
    public static func configuration(url text: String, password: String? = nil) throws
        -> (PostgresConnection.Configuration, location: String) {
        func fail(_ why: String) -> PostgresStoreError {
            PostgresStoreError("storage.url must be postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE: \(why)")
        }
        guard let components = URLComponents(string: text),
              components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw fail("it does not start with postgres://")
        }
        guard let user = components.user, !user.isEmpty else { throw fail("it names no user") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty else { throw fail("it names no database") }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let known: Set = ["sslmode", "sslrootcert", "host", "application_name", "connect_timeout"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail("'\(unknown)' is not a parameter Drover knows (\(known.sorted().joined(separator: ", ")))")
        }
        let secret = password ?? components.password.map { $0.removingPercentEncoding ?? $0 }
        var configuration: PostgresConnection.Configuration
        let location: String
        if let socket = query["host"], socket.hasPrefix("/") {
            let path = (socket as NSString).appendingPathComponent(".s.PGSQL.\(components.port ?? 5432)")
            configuration = .init(unixSocketPath: path, username: user, password: secret, database: database)
            location = "postgres://\(user)@[\(path)]/\(database)"
        } else {
            guard let host = components.host, !host.isEmpty else { throw fail("it names no host") }
            let port = components.port ?? 5432
            let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
            let mode = query["sslmode"] ?? (loopback ? "disable" : "require")
            let tls: PostgresConnection.Configuration.TLS
            switch mode {
            case "disable":
                tls = .disable
            case "require", "verify-full":
                var settings = TLSConfiguration.makeClientConfiguration()
                settings.minimumTLSVersion = .tlsv12
                if let root = query["sslrootcert"] {
                    guard let certificates = try? NIOSSLCertificate.fromPEMFile(root), !certificates.isEmpty else {
                        throw fail("sslrootcert \(root) holds no PEM certificate")
                    }
                    settings.trustRoots = .certificates(certificates)
                }
                do {
                    tls = .require(try NIOSSLContext(configuration: settings))
                } catch {
                    throw fail("TLS cannot be set up: \(error)")
                }
            default:
                throw fail("sslmode must be disable or require, not '\(mode)'")
            }
            configuration = .init(host: host, port: port, username: user, password: secret, database: database, tls: tls)
            location = "postgres://\(user)@\(host):\(port)/\(database)"
        }
        var seconds: Int64 = 10
        if let text = query["connect_timeout"] {
            guard let value = Int64(text), (1...300).contains(value) else { throw fail("connect_timeout must be 1 to 300 seconds") }
            seconds = value
        }
        configuration.options.connectTimeout = .seconds(seconds)
        configuration.options.additionalStartupParameters = [("application_name", query["application_name"] ?? "drover")]
        return (configuration, location)
    }

    // MARK: Migrations

    /// Append-only: a shipped migration is never edited. The tables are those of
    /// `drover.sqlite`; text keys sort by byte (COLLATE "C"), as SQLite's do.
    static let migrations: [(name: String, sql: [String])] = [
        ("v1", [
            """
            CREATE TABLE drover_record (kind TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
                PRIMARY KEY (kind, key))
            """,
            """
            CREATE TABLE drover_audit (id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, principal TEXT NOT NULL,
                operation TEXT NOT NULL, resource TEXT NOT NULL, outcome TEXT NOT NULL, message TEXT)
            """,
            "CREATE INDEX drover_audit_time ON drover_audit (time)",
            "CREATE INDEX drover_audit_principal ON drover_audit (principal)",
            "CREATE INDEX drover_audit_resource ON drover_audit (resource)",
            """
            CREATE TABLE drover_config_record (kind TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, value BYTEA NOT NULL,
                PRIMARY KEY (kind, key))
            """,
            """
            CREATE TABLE drover_shadow (thing TEXT NOT NULL, name TEXT NOT NULL, document BYTEA, version BIGINT NOT NULL,
                PRIMARY KEY (thing, name))
            """,
            """
            CREATE TABLE drover_change (seq BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, feature TEXT NOT NULL,
                kind TEXT NOT NULL, key TEXT NOT NULL, node TEXT, payload BYTEA)
            """,
            "CREATE INDEX drover_change_by_feature ON drover_change (feature, seq)",
            "CREATE TABLE drover_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]),
    ]

    static func migrate(_ pool: PostgresPool, logger: Logger) throws {
        try pool.transaction { session in
            try session.query("SELECT pg_advisory_xact_lock(\(migrationLock))", doing: "the migration lock")
            try session.execute("CREATE TABLE IF NOT EXISTS drover_migration (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            let applied = Set(try session.query("SELECT name FROM drover_migration").map { try $0.column(0, String.self) })
            if let unknown = applied.subtracting(migrations.map(\.name)).sorted().first {
                throw PostgresStoreError("the database has migration \(unknown), which this Drover does not know: it was made by a newer version")
            }
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.sql { try session.execute(statement) }
                let now = Date().timeIntervalSince1970
                try session.query("INSERT INTO drover_migration (name, applied_at) VALUES (\(migration.name), \(now))")
                logger.notice("PostgreSQL migration applied", metadata: ["migration": "\(migration.name)"])
            }
        }
    }
}

/// The change feed's rows, shared by the stores (the same rules as drover.sqlite's).
enum PostgresChangeFeed {
    static let retained: Int64 = 100_000

    /// Appends one row per (kind, key), in order, and returns the last number.
    static func append(_ session: PostgresSession, feature: String, kinds: [String], keys: [String], time: Double,
                       node: String) throws -> Int64? {
        guard !kinds.isEmpty else { return nil }
        let keys = keys.map(\.storable)
        let rows = try session.query("""
            INSERT INTO drover_change (time, feature, kind, key, node)
            SELECT \(time), \(feature), kind, key, \(node) FROM unnest(\(kinds)::text[], \(keys)::text[]) WITH ORDINALITY AS t(kind, key, n)
            ORDER BY n RETURNING seq
            """, doing: "a change row")
        return try rows.map { try $0.column(0, Int64.self) }.max()
    }

    /// Each time the numbers pass a multiple of 4096, the rows before the retained window go.
    static func prune(_ session: PostgresSession, last: Int64, added: Int) throws {
        guard added > 0, last / 4096 != (last - Int64(added)) / 4096 else { return }
        try session.query("DELETE FROM drover_change WHERE seq <= \(last - retained)", doing: "pruning the change feed")
    }

    static func last(_ session: PostgresSession) throws -> Int64 {
        try session.query("SELECT COALESCE(MAX(seq), 0) FROM drover_change").first?.column(0, Int64.self) ?? 0
    }

    /// Delivered at commit, to every listening process; the payload is the writer's node, so
    /// that the writer does not wake itself.
    static func notify(_ session: PostgresSession, node: String) throws {
        try session.query("SELECT pg_notify(\(PostgresControlPlane.channel), \(node))")
    }
}

/// The connection that LISTENs, and wakes the followers, a few at a time: a burst of commits
/// costs each follower one read, not one per commit. It reconnects after a failure.
final class ChangeListener: @unchecked Sendable {
    // `@unchecked Sendable`: the mutable state is in `state`.
    private struct State {
        var wakes: [@Sendable () -> Void] = []
        var connection: PostgresConnection?
        var scheduled = false
        var stopped = false
    }
    private let state = NIOLockedValueBox(State())
    private let pool: PostgresPool
    private let node: String
    private let logger: Logger

    init(pool: PostgresPool, node: String, logger: Logger) {
        self.pool = pool
        self.node = node
        self.logger = logger
    }

    func add(_ wake: @escaping @Sendable () -> Void) { state.withLockedValue { $0.wakes.append(wake) } }

    func start() {
        pool.connect().flatMap { connection -> EventLoopFuture<PostgresConnection> in
            let loop = connection.eventLoop
            let node = self.node
            connection.addListener(channel: PostgresControlPlane.channel) { [weak self] _, notification in
                // This process's own commits: it knows of them already.
                if notification.payload != node { self?.heard(on: loop) }
            }
            return connection.query("LISTEN \(unescaped: PostgresControlPlane.channel)", logger: self.logger).map { _ in connection }
        }.whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let connection):
                let stopped = state.withLockedValue { state in
                    state.connection = connection
                    return state.stopped
                }
                if stopped { connection.closeSoon(); return }
                // Whatever was committed while no one listened is read now.
                heard(on: connection.eventLoop)
                connection.closeFuture.whenComplete { [weak self] _ in self?.retry() }
            case .failure(let error):
                logger.warning("cannot listen for PostgreSQL notifications; the feed is still read every follow interval",
                               metadata: ["error": "\(PostgresStoreError.from(error, doing: "LISTEN"))"])
                retry()
            }
        }
    }

    private func retry() {
        let stopped = state.withLockedValue { state in
            state.connection = nil
            return state.stopped
        }
        guard !stopped else { return }
        pool.group.next().scheduleTask(in: .seconds(1)) { [weak self] in self?.start() }
    }

    private func heard(on loop: any EventLoop) {
        let first = state.withLockedValue { state in
            defer { state.scheduled = true }
            return !state.scheduled
        }
        guard first else { return }
        loop.scheduleTask(in: .milliseconds(2)) { [weak self] in
            guard let self else { return }
            let wakes = state.withLockedValue { state in
                state.scheduled = false
                return state.wakes
            }
            for wake in wakes { wake() }
        }
    }

    deinit { state.withLockedValue { $0.connection }?.closeSoon() }

    func stop() {
        let connection = state.withLockedValue { state in
            state.stopped = true
            return state.connection
        }
        try? connection?.closeFuture().wait()
    }
}
