import ArgumentParser
import NIOCore
import NIOPosix
import NIOSSL

/// The entry point. Inside an async function `main()` resolves to `AsyncParsableCommand.main()`; called from
/// top-level code it would pick the synchronous `ParsableCommand.main()`, which refuses async subcommands.
func runDroverLoad() async {
    await DroverLoad.main()
}

struct DroverLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drover-load",
        abstract: "MQTT 3.1.1 load generator for Drover (and any other broker).",
        discussion: """
            Each scenario prints human-readable progress and ends with one line `RESULT {json}`. \
            It exits non-zero if a connection fails or the broker drops one.
            """,
        subcommands: [Fanin.self, Fanout.self, Latency.self, Idle.self, APILoad.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Broker address.")
    var host = "127.0.0.1"

    @Option(help: "Broker MQTT port.")
    var port = 1883

    @Option(help: "Seconds of load (the measured window).")
    var duration: Double = 10

    @Option(help: "Seconds to wait after the window for in-flight messages to arrive.")
    var drain: Double = 5

    @Option(help: "Event-loop threads per group, publishers' and subscribers' (default: the number of cores).")
    var threads: Int = System.coreCount

    @Option(help: "Publishers' socket send buffer in bytes (0: the kernel's default and autotuning).")
    var sendBuffer = 32_768

    func validate() throws {
        guard sendBuffer >= 0 else { throw ValidationError("--send-buffer must not be negative") }
        guard duration > 0 else { throw ValidationError("--duration must be positive") }
        guard drain >= 0 else { throw ValidationError("--drain must not be negative") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
    }

    var window: TimeAmount { .nanoseconds(Int64(duration * 1e9)) }
}

struct Fanin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "P publishers flood load/<i>; one subscriber on # counts the deliveries."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Number of publishers.")
    var publishers = 100

    @Option(help: "QoS of the PUBLISHes and the subscription (0 or 1).")
    var qos = 0

    @Option(help: "Payload bytes per message.")
    var payload = 64

    @Option(help: "QoS 1: maximum unacknowledged PUBLISHes per publisher.")
    var inflight = 64

    @Option(help: "QoS 0: PUBLISHes per write batch.")
    var batch = 64

    @Flag(help: "The subscriber has a persistent session (clean session 0), so a durable broker stores QoS 1.")
    var persistent = false

    @Flag(help: "QoS 1: stamp each PUBLISH and report end-to-end latency percentiles (payload >= 16 B).")
    var latency = false

    @Option(help: "Publishers connect over mutual TLS with the devices in this directory: N.pem, N.key and N.id (the client id) for N = 0..., and ca.pem.")
    var tlsDir: String?

    @Option(help: "The mutual-TLS port, with --tls-dir (the subscriber stays on --port).")
    var tlsPort = 8883

    func validate() throws {
        guard publishers > 0 else { throw ValidationError("--publishers must be positive") }
        guard !latency || (qos == 1 && payload >= LoadPayload.minimumForTimestamp) else {
            throw ValidationError("--latency needs --qos 1 and --payload of at least \(LoadPayload.minimumForTimestamp)")
        }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        guard (0...1_000_000).contains(payload) else { throw ValidationError("--payload must be in 0...1000000") }
        guard inflight > 0, batch > 0 else { throw ValidationError("--inflight and --batch must be positive") }
    }

    func run() async throws {
        let code = try await withEventLoopGroups(threads: common.threads) { groups in
            try await runFanin(groups: groups)
        }
        if code != 0 { throw ExitCode(code) }
    }

    private func runFanin(groups: LoadGroups) async throws -> Int32 {
        let group = groups.publishers
        let pid = processID()
        let tag = UInt64.random(in: 1...UInt64.max)
        let qos = UInt8(qos)
        let subscriberConnector = try Connector(
            group: groups.subscribers, host: common.host, port: common.port, role: .subscriber
        )
        let publisherConnector = try Connector(
            group: groups.publishers, host: common.host, port: tlsDir == nil ? common.port : tlsPort,
            role: .publisher(sendBuffer: common.sendBuffer)
        )
        let devices = try tlsDir.map { try TLSDevices(directory: $0, count: publishers) }
        if devices != nil { say("fanin: publishers over mutual TLS on port \(tlsPort), one certificate each") }
        say(
            "fanin: \(publishers) publishers -> 1 subscriber on #, QoS \(qos), \(payload) B payload, "
                + "\(common.duration) s against \(common.host):\(common.port)")

        var subscriberOptions = LoadConnection.Options(
            clientID: "load-fanin-sub-0-\(pid)-\(tag % 100_000)", subscribeFilter: "#", subscribeQoS: qos
        )
        subscriberOptions.cleanSession = !persistent
        let options = subscriberOptions
        let recordLatency = latency
        let expected = latency ? min(20_000_000, publishers * inflight * 4000) : 0
        let subscriber = try await subscriberConnector.connect {
            CountingSubscriber(options: options, tag: tag, recordLatency: recordLatency, expectedSamples: expected)
        }.get()
        if persistent { say("fanin: the subscriber has a persistent session") }
        let (payload, batch, inflight) = (self.payload, self.batch, self.inflight)
        let publisherClients = try await connectAll(
            count: publishers, on: group, closingOnFailure: [subscriber.channel]
        ) { index in
            publisherConnector.connect(tls: devices?.contexts[index]) {
                FloodPublisher(
                    options: .init(clientID: devices?.clientIds[index] ?? "load-fanin-pub-\(index)-\(pid)"),
                    topic: "load/\(index)", qos: qos, payloadSize: payload, tag: tag, batchSize: batch,
                    inflight: inflight, stamp: recordLatency
                )
            }
        }
        say("fanin: connected; publishing")

        let start = NIODeadline.now() + .milliseconds(50)
        let end = start + common.window
        try await subscriber.withHandler { $0.measureWindow(from: start, to: end) }.get()
        for client in publisherClients {
            _ = client.eventLoop.scheduleTask(deadline: start) { client.handler.value.start(until: end) }
        }
        try await sleep(until: end + .milliseconds(5), on: group)

        let published = try await sum(publisherClients, on: group) { $0.published }
        say("fanin: window over, \(published) published; draining")
        let drainEnd = NIODeadline.now() + .nanoseconds(Int64(common.drain * 1e9))
        var delivered = 0
        var acked = 0
        try await drainLoop("fanin", until: drainEnd, on: group) {
            delivered = try await subscriber.withHandler { $0.delivered }.get()
            acked = qos > 0 ? try await sum(publisherClients, on: group) { $0.acked } : published
            return delivered >= published && acked >= published ? nil : delivered + acked
        }
        let window = try await subscriber.withHandler { ($0.windowStart, $0.windowEnd) }.get()
        let (windowCount, windowSeconds) = measured(window)
        let rate = windowSeconds > 0 ? Double(windowCount) / windowSeconds : 0
        let foreign = try await sum([subscriber], on: group) { $0.foreign }
        let dropped = try await countDropped(publisherClients, on: group) + countDropped([subscriber], on: group)
        if foreign > 0 { say("note: ignored \(foreign) PUBLISHes not from this run (an earlier run's backlog?)") }
        let latencySamples = recordLatency ? try await subscriber.withHandler { $0.latenciesNanos }.get().sorted() : nil
        try await disconnectAll(publisherClients.map { $0.disconnect() } + [subscriber.disconnect()], on: group)

        let loss = lossPercent(sent: published, received: delivered)
        say(
            "fanin: published \(published) (\(fixed(Double(published) / common.duration, 0)) msg/s), "
                + "delivered \(delivered), in window \(windowCount) = \(fixed(rate, 0)) msg/s, loss \(fixed(loss, 3)) %"
        )
        if qos > 0 { say("fanin: PUBACKs received \(acked) of \(published)") }
        if dropped > 0 { warn("fanin: the broker closed \(dropped) connection(s) during the run") }
        var latencyMicros: (p50: Double, p99: Double)?
        if let samples = latencySamples {
            let micros = { (nanos: UInt64) in Double(nanos) / 1000 }
            latencyMicros = (micros(percentile(samples, 0.50)), micros(percentile(samples, 0.99)))
            say("fanin: end-to-end latency p50 \(fixed(latencyMicros!.p50, 1)) us, p99 \(fixed(latencyMicros!.p99, 1)) us "
                + "(\(samples.count) samples)")
        }

        var result = ResultLine(scenario: "fanin")
        result.add("qos", Int(qos))
        result.add("publishers", publishers)
        result.add("payload", payload)
        result.add("duration", common.duration)
        result.add("published", published)
        result.add("publish_rate", Double(published) / common.duration)
        result.add("delivered", delivered)
        result.add("delivered_in_window", windowCount)
        result.add("rate", rate)
        result.add("loss_pct", loss, decimals: 3)
        if qos > 0 { result.add("acked", acked) }
        result.add("persistent", persistent ? 1 : 0)
        if let latencyMicros {
            result.add("p50_us", latencyMicros.p50, decimals: 1)
            result.add("p99_us", latencyMicros.p99, decimals: 1)
        }
        result.add("foreign", foreign)
        result.add("dropped_connections", dropped)
        result.add("tls", devices == nil ? 0 : 1)
        result.emit()
        return dropped > 0 ? 1 : 0
    }
}

/// Provisioned devices for mutual TLS: a client context per device, and its client id.
struct TLSDevices {
    let contexts: [NIOSSLContext]
    let clientIds: [String]

    init(directory: String, count: Int) throws {
        var contexts: [NIOSSLContext] = []
        var ids: [String] = []
        let ca = try NIOSSLCertificate.fromPEMFile(directory + "/ca.pem")
        for index in 0..<count {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            configuration.trustRoots = .certificates(ca)
            configuration.certificateVerification = .noHostnameVerification
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile("\(directory)/\(index).pem").map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: "\(directory)/\(index).key", format: .pem))
            contexts.append(try NIOSSLContext(configuration: configuration))
            let id = try String(contentsOfFile: "\(directory)/\(index).id", encoding: .utf8)
            ids.append(id.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        self.contexts = contexts
        self.clientIds = ids
    }
}

struct Fanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One publisher floods fan/topic; S subscribers each receive every message."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Number of subscribers.")
    var subscribers = 100

    @Option(help: "QoS of the PUBLISHes and the subscriptions (0 or 1).")
    var qos = 0

    @Option(help: "Payload bytes per message.")
    var payload = 64

    @Option(help: "QoS 1: maximum unacknowledged PUBLISHes.")
    var inflight = 64

    @Option(help: "QoS 0: PUBLISHes per write batch.")
    var batch = 64

    func validate() throws {
        guard subscribers > 0 else { throw ValidationError("--subscribers must be positive") }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        guard (0...1_000_000).contains(payload) else { throw ValidationError("--payload must be in 0...1000000") }
        guard inflight > 0, batch > 0 else { throw ValidationError("--inflight and --batch must be positive") }
    }

    func run() async throws {
        let code = try await withEventLoopGroups(threads: common.threads) { groups in
            try await runFanout(groups: groups)
        }
        if code != 0 { throw ExitCode(code) }
    }

    private func runFanout(groups: LoadGroups) async throws -> Int32 {
        let group = groups.publishers
        let pid = processID()
        let tag = UInt64.random(in: 1...UInt64.max)
        let qos = UInt8(qos)
        let topic = "fan/topic"
        let subscriberConnector = try Connector(
            group: groups.subscribers, host: common.host, port: common.port, role: .subscriber
        )
        let publisherConnector = try Connector(
            group: groups.publishers, host: common.host, port: common.port,
            role: .publisher(sendBuffer: common.sendBuffer)
        )
        say(
            "fanout: 1 publisher -> \(subscribers) subscribers on \(topic), QoS \(qos), \(payload) B payload, "
                + "\(common.duration) s against \(common.host):\(common.port)")

        let subscriberClients = try await connectAll(count: subscribers, on: group) { index in
            subscriberConnector.connect {
                CountingSubscriber(
                    options: .init(
                        clientID: "load-fanout-sub-\(index)-\(pid)", subscribeFilter: topic, subscribeQoS: qos
                    ),
                    tag: tag
                )
            }
        }
        let (payload, batch, inflight) = (self.payload, self.batch, self.inflight)
        let publisher = try await connectAll(
            count: 1, on: group, closingOnFailure: subscriberClients.map { $0.channel }
        ) { index in
            publisherConnector.connect {
                FloodPublisher(
                    options: .init(clientID: "load-fanout-pub-\(index)-\(pid)"),
                    topic: topic, qos: qos, payloadSize: payload, tag: tag, batchSize: batch, inflight: inflight
                )
            }
        }[0]
        say("fanout: connected; publishing")

        let start = NIODeadline.now() + .milliseconds(50)
        let end = start + common.window
        for client in subscriberClients {
            try await client.withHandler { $0.measureWindow(from: start, to: end) }.get()
        }
        _ = publisher.eventLoop.scheduleTask(deadline: start) { publisher.handler.value.start(until: end) }
        try await sleep(until: end + .milliseconds(5), on: group)

        let published = try await publisher.withHandler { $0.published }.get()
        let expected = published * subscribers
        say("fanout: window over, \(published) published; draining")
        let drainEnd = NIODeadline.now() + .nanoseconds(Int64(common.drain * 1e9))
        var delivered = 0
        try await drainLoop("fanout", until: drainEnd, on: group) {
            delivered = try await sum(subscriberClients, on: group) { $0.delivered }
            return delivered >= expected ? nil : delivered
        }
        var windowCount = 0
        var windowSeconds = 0.0
        for client in subscriberClients {
            let window = try await client.withHandler { ($0.windowStart, $0.windowEnd) }.get()
            let (count, seconds) = measured(window)
            windowCount += count
            windowSeconds = max(windowSeconds, seconds)
        }
        let rate = windowSeconds > 0 ? Double(windowCount) / windowSeconds : 0
        let foreign = try await sum(subscriberClients, on: group) { $0.foreign }
        let dropped = try await countDropped(subscriberClients, on: group) + countDropped([publisher], on: group)
        if foreign > 0 { say("note: ignored \(foreign) PUBLISHes not from this run (an earlier run's backlog?)") }
        try await disconnectAll(subscriberClients.map { $0.disconnect() } + [publisher.disconnect()], on: group)

        let loss = lossPercent(sent: expected, received: delivered)
        let publishRate = Double(published) / common.duration
        say(
            "fanout: published \(published) (\(fixed(publishRate, 0)) msg/s), deliveries \(delivered) of "
                + "\(expected), in window \(windowCount) = \(fixed(rate, 0)) deliveries/s, loss \(fixed(loss, 3)) %")
        if dropped > 0 { warn("fanout: the broker closed \(dropped) connection(s) during the run") }

        var result = ResultLine(scenario: "fanout")
        result.add("qos", Int(qos))
        result.add("subscribers", subscribers)
        result.add("payload", payload)
        result.add("duration", common.duration)
        result.add("published", published)
        result.add("publish_rate", publishRate)
        result.add("expected", expected)
        result.add("delivered", delivered)
        result.add("delivered_in_window", windowCount)
        result.add("rate", rate)
        result.add("loss_pct", loss, decimals: 3)
        result.add("foreign", foreign)
        result.add("dropped_connections", dropped)
        result.emit()
        return dropped > 0 ? 1 : 0
    }
}

struct Latency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One publisher at a fixed rate, one subscriber; end-to-end latency percentiles."
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Messages per second.")
    var rate = 10_000

    @Option(help: "QoS of the PUBLISHes and the subscription (0 or 1).")
    var qos = 0

    @Option(help: "Payload bytes per message (at least 16: the run tag and the send timestamp).")
    var payload = 64

    func validate() throws {
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
        guard payload <= 1_000_000 else { throw ValidationError("--payload must be at most 1000000") }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
    }

    func run() async throws {
        let code = try await withEventLoopGroups(threads: common.threads) { groups in
            try await runLatency(groups: groups)
        }
        if code != 0 { throw ExitCode(code) }
    }

    private func runLatency(groups: LoadGroups) async throws -> Int32 {
        let group = groups.publishers
        let pid = processID()
        let tag = UInt64.random(in: 1...UInt64.max)
        let qos = UInt8(qos)
        let topic = "lat/topic"
        let (rate, payload) = (self.rate, max(LoadPayload.minimumForTimestamp, self.payload))
        let subscriberConnector = try Connector(
            group: groups.subscribers, host: common.host, port: common.port, role: .subscriber
        )
        let publisherConnector = try Connector(
            group: groups.publishers, host: common.host, port: common.port,
            role: .publisher(sendBuffer: common.sendBuffer)
        )
        say(
            "latency: \(rate) msg/s for \(common.duration) s, QoS \(qos), \(payload) B payload, "
                + "against \(common.host):\(common.port)")

        let expectedSamples = Int(Double(rate) * common.duration) + 16
        let subscriber = try await subscriberConnector.connect {
            CountingSubscriber(
                options: .init(clientID: "load-latency-sub-0-\(pid)", subscribeFilter: topic, subscribeQoS: qos),
                tag: tag,
                recordLatency: true,
                expectedSamples: expectedSamples
            )
        }.get()
        let publisher = try await connectAll(count: 1, on: group, closingOnFailure: [subscriber.channel]) { index in
            publisherConnector.connect {
                PacedPublisher(
                    options: .init(clientID: "load-latency-pub-\(index)-\(pid)"),
                    topic: topic, qos: qos, payloadSize: payload, tag: tag, rate: rate
                )
            }
        }[0]

        let start = NIODeadline.now() + .milliseconds(50)
        let end = start + common.window
        let window = common.window
        try await publisher.withHandler { $0.start(at: start, duration: window) }.get()
        try await sleep(until: end + .milliseconds(5), on: group)

        let published = try await publisher.withHandler { $0.published }.get()
        let drainEnd = NIODeadline.now() + .nanoseconds(Int64(common.drain * 1e9))
        var received = 0
        try await drainLoop("latency", until: drainEnd, on: group) {
            received = try await subscriber.withHandler { $0.delivered }.get()
            return received >= published ? nil : received
        }
        let samples = try await subscriber.withHandler { $0.latenciesNanos }.get().sorted()
        let foreign = try await sum([subscriber], on: group) { $0.foreign }
        let dropped = try await countDropped([subscriber], on: group) + countDropped([publisher], on: group)
        if foreign > 0 { say("note: ignored \(foreign) PUBLISHes not from this run (an earlier run's backlog?)") }
        try await disconnectAll([subscriber.disconnect(), publisher.disconnect()], on: group)

        func micros(_ nanos: UInt64) -> Double { Double(nanos) / 1000 }
        let p50 = micros(percentile(samples, 0.50))
        let p90 = micros(percentile(samples, 0.90))
        let p99 = micros(percentile(samples, 0.99))
        let p999 = micros(percentile(samples, 0.999))
        let maximum = micros(samples.last ?? 0)
        let achieved = Double(published) / common.duration
        let loss = lossPercent(sent: published, received: received)
        say("latency: sent \(published) (\(fixed(achieved, 0)) msg/s), received \(received), loss \(fixed(loss, 3)) %")
        say(
            "latency: p50 \(fixed(p50, 1)) us, p90 \(fixed(p90, 1)) us, p99 \(fixed(p99, 1)) us, "
                + "p99.9 \(fixed(p999, 1)) us, max \(fixed(maximum, 1)) us")
        if dropped > 0 { warn("latency: the broker closed \(dropped) connection(s) during the run") }

        var result = ResultLine(scenario: "latency")
        result.add("qos", Int(qos))
        result.add("payload", payload)
        result.add("duration", common.duration)
        result.add("target_rate", rate)
        result.add("rate", achieved)
        result.add("sent", published)
        result.add("received", received)
        result.add("loss_pct", loss, decimals: 3)
        result.add("p50_us", p50, decimals: 1)
        result.add("p90_us", p90, decimals: 1)
        result.add("p99_us", p99, decimals: 1)
        result.add("p999_us", p999, decimals: 1)
        result.add("max_us", maximum, decimals: 1)
        result.add("foreign", foreign)
        result.add("dropped_connections", dropped)
        result.emit()
        return dropped > 0 ? 1 : 0
    }
}

struct Idle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open N idle connections, hold them, close them (the script measures the broker's memory)."
    )

    @Option(help: "Broker address.")
    var host = "127.0.0.1"

    @Option(help: "Broker MQTT port.")
    var port = 1883

    @Option(help: "Number of connections.")
    var connections = 10_000

    @Option(help: "Connections opened concurrently.")
    var batch = 500

    @Option(help: "Seconds to hold the connections once all are connected.")
    var hold: Double = 5

    @Option(help: "Keep-alive seconds sent in CONNECT.")
    var keepAlive = 600

    @Option(help: "Event-loop threads (default: the number of cores).")
    var threads: Int = System.coreCount

    func validate() throws {
        guard connections > 0, batch > 0 else { throw ValidationError("--connections and --batch must be positive") }
        guard hold >= 0 else { throw ValidationError("--hold must not be negative") }
        guard (0...65535).contains(keepAlive) else { throw ValidationError("--keep-alive must be in 0...65535") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
    }

    func run() async throws {
        let code = try await withEventLoopGroups(threads: threads, separateSubscribers: false) { groups in
            try await runIdle(group: groups.publishers)
        }
        if code != 0 { throw ExitCode(code) }
    }

    private func runIdle(group: MultiThreadedEventLoopGroup) async throws -> Int32 {
        let pid = processID()
        let keepAlive = UInt16(keepAlive)
        let connector = try Connector(group: group, host: host, port: port, role: .idle)
        let limit = openFileLimit()
        say(
            "idle: \(connections) connections in batches of \(batch), keep-alive \(keepAlive) s, "
                + "against \(host):\(port) (open-file limit \(limit))")
        if limit < connections + 64 {
            warn("idle: the open-file limit \(limit) is below the \(connections) connections asked for")
        }

        let started = NIODeadline.now()
        var clients: [LoadClient<IdleConnection>] = []
        clients.reserveCapacity(connections)
        var failed = 0
        var firstError: (any Error)?
        var reported = 0
        for first in stride(from: 0, to: connections, by: batch) {
            let futures = (first..<min(connections, first + batch)).map { index in
                connector.connect {
                    IdleConnection(options: .init(clientID: "load-idle-conn-\(index)-\(pid)", keepAlive: keepAlive))
                }
            }
            for result in try await EventLoopFuture.whenAllComplete(futures, on: group.next()).get() {
                switch result {
                case .success(let client): clients.append(client)
                case .failure(let error):
                    failed += 1
                    if firstError == nil { firstError = error }
                }
            }
            if clients.count + failed - reported >= 2000 {
                reported = clients.count + failed
                say("idle: \(clients.count) connected, \(failed) failed")
            }
        }
        let connectSeconds = Double((NIODeadline.now() - started).nanoseconds) / 1e9
        if let firstError { warn("idle: \(failed) connection(s) failed; first error: \(firstError)") }
        say("idle: all handshakes done in \(fixed(connectSeconds, 2)) s; holding for \(hold) s")
        say("CONNECTED \(clients.count)")

        if !clients.isEmpty {
            try await sleep(until: NIODeadline.now() + .nanoseconds(Int64(hold * 1e9)), on: group)
        }
        let dropped = try await countDropped(clients, on: group)
        try await disconnectAll(clients.map { $0.disconnect() }, on: group)
        say("idle: closed; \(clients.count - dropped) connections were still open at the end of the hold")
        if dropped > 0 { warn("idle: the broker closed \(dropped) connection(s) during the hold") }

        var result = ResultLine(scenario: "idle")
        result.add("requested", connections)
        result.add("connected", clients.count)
        result.add("failed", failed)
        result.add("connect_seconds", connectSeconds)
        result.add("hold", hold)
        result.add("dropped_connections", dropped)
        result.emit()
        return failed > 0 || dropped > 0 ? 1 : 0
    }
}

// MARK: - Orchestration helpers

/// The event loops of a run. Subscribers get loops of their own, so that they keep reading at full speed while
/// the publishers' loops are busy flooding; otherwise the tool, not the broker, would limit the deliveries.
struct LoadGroups: Sendable {
    let publishers: MultiThreadedEventLoopGroup
    let subscribers: MultiThreadedEventLoopGroup
}

/// Runs `body` with fresh event-loop groups, shutting them down afterwards whether `body` threw or not.
func withEventLoopGroups<T: Sendable>(
    threads: Int,
    separateSubscribers: Bool = true,
    _ body: (LoadGroups) async throws -> T
) async throws -> T {
    let publishers = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    let subscribers = separateSubscribers ? MultiThreadedEventLoopGroup(numberOfThreads: threads) : publishers
    let groups = LoadGroups(publishers: publishers, subscribers: subscribers)
    func shutdown() async {
        try? await publishers.shutdownGracefully()
        if separateSubscribers { try? await subscribers.shutdownGracefully() }
    }
    do {
        let value = try await body(groups)
        await shutdown()
        return value
    } catch {
        await shutdown()
        throw error
    }
}

/// Connects `count` clients, at most 500 at a time. On any failure it closes the ones that did connect and the
/// channels in `closingOnFailure`, and rethrows, so that the command exits non-zero.
func connectAll<H: LoadConnection>(
    count: Int,
    on group: any EventLoopGroup,
    closingOnFailure others: [any Channel] = [],
    _ connect: (Int) -> EventLoopFuture<LoadClient<H>>
) async throws -> [LoadClient<H>] {
    var clients: [LoadClient<H>] = []
    var failure: (any Error)?
    for first in stride(from: 0, to: count, by: 500) {
        let futures = (first..<min(count, first + 500)).map(connect)
        for result in try await EventLoopFuture.whenAllComplete(futures, on: group.next()).get() {
            switch result {
            case .success(let client): clients.append(client)
            case .failure(let error): failure = failure ?? error
            }
        }
        if failure != nil { break }
    }
    if let failure {
        warn("connection failed: \(failure)")
        try? await disconnectAll(clients.map { $0.disconnect() } + others.map { $0.close() }, on: group)
        throw failure
    }
    return clients
}

/// Waits for the given DISCONNECT-and-close futures, at most 10 s, so that the tool always ends.
func disconnectAll(_ closing: [EventLoopFuture<Void>], on group: any EventLoopGroup) async throws {
    let loop = group.next()
    let done = loop.makePromise(of: Void.self)
    EventLoopFuture.andAllComplete(closing, on: loop).cascade(to: done)
    let timeout = loop.scheduleTask(in: .seconds(10)) { done.succeed() }
    try await done.futureResult.get()
    timeout.cancel()
}

func sleep(until deadline: NIODeadline, on group: any EventLoopGroup) async throws {
    try await group.next().scheduleTask(deadline: deadline) {}.futureResult.get()
}

/// Polls `progress` every 50 ms until it returns nil (done), the deadline passes, or it has not changed for a
/// second (nothing more is coming). Prints how the drain ended.
func drainLoop(
    _ label: String,
    until deadline: NIODeadline,
    on group: any EventLoopGroup,
    _ progress: () async throws -> Int?
) async throws {
    let started = NIODeadline.now()
    var last = -1
    var lastChange = started
    func report(_ how: String) {
        say("\(label): drain \(how) after \(fixed(Double((NIODeadline.now() - started).nanoseconds) / 1e9, 2)) s")
    }
    while true {
        guard let value = try await progress() else { return report("complete") }
        let now = NIODeadline.now()
        if value != last {
            last = value
            lastChange = now
        } else if now - lastChange >= .seconds(1) {
            return report("stalled (no progress for 1 s)")
        }
        if now >= deadline { return report("timed out") }
        try await sleep(until: now + .milliseconds(50), on: group)
    }
}

/// Sums a per-connection counter, asking all connections at once.
func sum<H: LoadConnection>(
    _ clients: [LoadClient<H>],
    on group: any EventLoopGroup,
    _ value: @escaping @Sendable (H) -> Int
) async throws -> Int {
    let values = try await EventLoopFuture.whenAllSucceed(clients.map { $0.withHandler(value) }, on: group.next())
        .get()
    return values.reduce(0, +)
}

/// Connections that the broker closed (rather than we).
func countDropped<H: LoadConnection>(_ clients: [LoadClient<H>], on group: any EventLoopGroup) async throws -> Int {
    try await sum(clients, on: group) { $0.closedByPeer ? 1 : 0 }
}

/// Deliveries counted between the two window snapshots, and the seconds between them.
func measured(_ window: ((count: Int, nanos: UInt64)?, (count: Int, nanos: UInt64)?)) -> (Int, Double) {
    guard let start = window.0, let end = window.1, end.nanos > start.nanos else { return (0, 0) }
    return (end.count - start.count, Double(end.nanos - start.nanos) / 1e9)
}
