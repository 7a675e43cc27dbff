import DroverJobs
import DroverPolicy
import DroverShadow
import DroverSigV4
import Foundation
import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded

/// Entry points for coverage-guided fuzzing (libFuzzer, through `drover-fuzz`) and for
/// replaying a corpus in tests. Each one takes arbitrary bytes and must return without
/// trapping, whatever they are: a trap here is a remote crash of the server.
///
/// Invariants checked beyond "no trap": a packet that decodes encodes to bytes that decode to
/// the same packet; a shadow update that is accepted yields a stored document that loads back.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// The MQTT decoder on a byte stream, then encode → decode of every packet it yields.
    case codec
    /// Whole sessions on an EmbeddedChannel: the bytes are what one client sends, in chunks,
    /// to the real connection state machine and broker (with a subscriber on `#`).
    case connection
    /// The shadow JSON parser, and update, get and delete on the document it makes.
    case shadow
    /// The policy parser, and evaluation of what parses against topics taken from the input.
    case policy
    /// SigV4 verification of a request built from the input (method, path, query, headers).
    case sigv4
    /// A jobs request as a device sends it, applied to a queued and to a started execution,
    /// and every reply written.
    case jobs

    public func run(_ data: [UInt8]) {
        switch self {
        case .codec: Self.codec(data)
        case .connection: Self.connection(data)
        case .shadow: Self.shadow(data)
        case .policy: Self.policy(data)
        case .sigv4: Self.sigv4(data)
        case .jobs: Self.jobs(data)
        }
    }

    // MARK: codec

    static func codec(_ data: [UInt8]) {
        guard let first = data.first else { return }
        // The first byte picks the decoder's starting state: a server (learns the version
        // from CONNECT), or a client of either version.
        let version: MQTTProtocolVersion? = switch first % 3 {
        case 0: nil
        case 1: .v311
        default: .v5
        }
        var decoder = MQTTPacketDecoder(protocolVersion: version, maximumPacketSize: 1 << 20)
        var buffer = ByteBuffer(bytes: data.dropFirst())
        var count = 0
        while count < 1000 {
            guard let packet = try? decoder.decode(buffer: &buffer) else { return }
            count += 1
            let packetVersion = decoder.protocolVersion ?? .v5
            var encoded = ByteBuffer()
            packet.encode(version: packetVersion, into: &encoded)
            var again = MQTTPacketDecoder(protocolVersion: packetVersion, maximumPacketSize: Int.max)
            if case .connect = packet { again = MQTTPacketDecoder(protocolVersion: nil, maximumPacketSize: Int.max) }
            guard let decoded = try? again.decode(buffer: &encoded) else {
                fatalError("a decoded \(packet.type) does not decode after encoding")
            }
            guard decoded == packet else { fatalError("\(packet.type) changed in an encode/decode round trip") }
        }
    }

    // MARK: connection

    static func connection(_ data: [UInt8]) {
        guard let first = data.first else { return }
        let loop = EmbeddedEventLoop()
        var configuration = BrokerConfiguration()
        configuration.maxPacketSize = 1 << 20
        configuration.receiveMaximum = 8
        configuration.maxQueuedMessages = 16
        configuration.maxInflightOutbound = 4
        guard let broker = try? Broker(configuration: configuration, timerLoop: loop) else { return }
        let listener = ListenerInfo(name: "mqtt", isLoopback: true, allowAnonymous: true, anonymousFromAnyAddress: true)
        // A subscriber on everything, so that what the client publishes is delivered too.
        let watcher = EmbeddedChannel(handler: MQTTChannelHandler(broker: broker, listener: listener), loop: loop)
        _ = try? watcher.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var hello = ByteBuffer()
        MQTTPacket.connect(ConnectPacket(protocolVersion: .v5, clientId: "watcher", cleanStart: true, keepAlive: 0)).encode(version: .v5, into: &hello)
        MQTTPacket.subscribe(SubscribePacket(packetId: 1, subscriptions: [.init(filter: "#", options: .init(qos: .exactlyOnce))]))
            .encode(version: .v5, into: &hello)
        _ = try? watcher.writeInbound(hello)

        let channel = EmbeddedChannel(handler: MQTTChannelHandler(broker: broker, listener: listener), loop: loop)
        _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        // The first byte sets the chunk size, so reads split packets in many places; at most 256
        // reads per input, each with its own turn of the loop and 250 ms of time, keep a run fast.
        let chunk = max(Int(first % 64) + 1, data.count / 256 + 1)
        var offset = 1
        while offset < data.count, channel.isActive {
            let end = min(data.count, offset + chunk)
            _ = try? channel.writeInbound(ByteBuffer(bytes: data[offset..<end]))
            offset = end
            loop.run()
            // Drain what the broker wrote, as a client reads it; and let time pass.
            while (try? channel.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
            while (try? watcher.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
            loop.advanceTime(by: .milliseconds(250))
        }
        _ = try? channel.close().wait()
        _ = try? watcher.close().wait()
        loop.run()
        _ = broker.shutdown()
        loop.run()
        try? loop.syncShutdownGracefully()
    }

    // MARK: shadow

    static func shadow(_ data: [UInt8]) {
        let now: Int64 = 1_700_000_000
        let limits = ShadowLimits()
        _ = JSONValue.parse(data, limits: JSONParseLimits(maximumBytes: 1 << 20, maximumDepth: 64))
        // Two updates in a row: the second one merges into what the first one made.
        var document: ShadowDocument?
        for step in 0..<2 {
            switch Shadow.update(document, request: data, now: now + Int64(step), limits: limits) {
            case .accepted(let update):
                guard let loaded = ShadowDocument(storageBytes: update.document.storageBytes) else {
                    fatalError("an accepted shadow does not load back from storage")
                }
                document = loaded
            case .rejected:
                break
            }
        }
        _ = Shadow.get(document, shadowName: "fuzz", clientToken: nil, now: now)
        if case .success(let options) = ShadowRequestOptions.parse(data, limits: limits, now: now) {
            _ = Shadow.delete(document, shadowName: "fuzz", clientToken: options.clientToken, version: options.version, now: now)
        }
    }

    // MARK: jobs

    static func jobs(_ data: [UInt8]) {
        let now: Int64 = 1_700_000_000
        let queued = JobExecution(jobId: "fuzz", thingName: "thing", queuedAt: now - 60)
        let request: JobsRequest
        switch JobsRequest.parse(data) {
        case .success(let parsed): request = parsed
        case .failure(let refusal):
            _ = JobsReply.rejected(refusal, now: now)
            return
        }
        let started = try? queued.started(now: now - 30, statusDetails: request.statusDetails,
                                          stepTimeoutInMinutes: request.stepTimeoutInMinutes, inProgressTimeoutMinutes: 60)
        let update = JobExecutionUpdate(status: request.status ?? .inProgress, statusDetails: request.statusDetails,
                                        expectedVersion: request.expectedVersion, executionNumber: request.executionNumber,
                                        stepTimeoutInMinutes: request.stepTimeoutInMinutes)
        for execution in [queued, started].compactMap({ $0 }) {
            do {
                let next = try execution.updated(by: update, now: now, inProgressTimeoutMinutes: 60)
                guard next.versionNumber == execution.versionNumber + 1, next.lastUpdatedAt == now else {
                    fatalError("an accepted job update did not move the version and time on by one step")
                }
                _ = JobsReply.updated(next, includeState: request.includeJobExecutionState ?? false, document: #"{"a":1}"#,
                                      clientToken: request.clientToken, now: now)
                _ = JobsReply.described(next, document: nil, clientToken: request.clientToken, now: now)
                _ = next.timedOut(now: now + 7 * 86_400 + 60)
            } catch {
                _ = JobsReply.rejected(error, now: now)
            }
        }
    }

    // MARK: policy

    static func policy(_ data: [UInt8]) {
        // The policy is the input up to the first NUL; what follows names topics to check.
        let split = data.firstIndex(of: 0) ?? data.endIndex
        let text = String(decoding: data[..<split], as: UTF8.self)
        guard case .success(let document) = PolicyDocument.parse(text) else { return }
        let rest = split < data.endIndex ? data[(split + 1)...] : []
        let topic = String(decoding: rest.prefix(512), as: UTF8.self)
        let context = PolicyContext(
            clientId: topic.isEmpty ? "client" : topic, thingName: "thing", thingAttributes: ["a": topic],
            isAttached: true, region: "us-east-1", account: "123456789012")
        let policies = [NamedPolicy(name: "fuzz", document: document)]
        for request in [
            PolicyRequest.connect(clientId: topic, in: context), .publish(topic: topic, in: context),
            .subscribe(topicFilter: topic, in: context), .receive(topic: topic, in: context),
            .retainPublish(topic: topic, in: context),
        ] {
            _ = evaluate(policies, request, context: context)
        }
    }

    // MARK: sigv4

    static func sigv4(_ data: [UInt8]) {
        // Lines: method, path, query, then "name: value" headers, then an empty line and the body.
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", maxSplits: 64, omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3 else { return }
        let method = lines.removeFirst(), path = lines.removeFirst(), query = lines.removeFirst()
        var headers: [(String, String)] = []
        var body: [UInt8] = []
        while !lines.isEmpty {
            let line = lines.removeFirst()
            if line.isEmpty {
                body = Array(lines.joined(separator: "\n").utf8)
                break
            }
            if let colon = line.firstIndex(of: ":") {
                headers.append((line[..<colon].lowercased(), String(line[line.index(after: colon)...])))
            }
        }
        let request = SigV4Verifier.Request(method: method, rawPath: path, rawQuery: query, headers: headers, body: body)
        _ = SigV4Verifier().verify(request, now: Date(timeIntervalSince1970: 1_440_938_160)) { key in
            key == "AKIDEXAMPLE" ? "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" : nil
        }
    }
}
