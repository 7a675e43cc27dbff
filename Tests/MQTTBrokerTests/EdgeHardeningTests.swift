@testable import MQTTBroker
import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

/// Authenticates by user name: the user name is the principal (a certificate id, in Drover).
private struct PrincipalByUserName: MQTTAuthenticator {
    func authenticate(_ request: AuthenticationRequest, on eventLoop: any EventLoop) -> EventLoopFuture<AuthenticationResult> {
        eventLoop.makeSucceededFuture(.allow(principal: request.username, attributes: [:]))
    }
}

/// The user name is the principal, and the client id the thing (an identity attribute).
private struct PrincipalAndThing: MQTTAuthenticator {
    func authenticate(_ request: AuthenticationRequest, on eventLoop: any EventLoop) -> EventLoopFuture<AuthenticationResult> {
        eventLoop.makeSucceededFuture(.allow(principal: request.username, attributes: ["thing": request.clientId]))
    }
}

/// Denies what `denied` says, for one principal or all.
private final class DenyList: MQTTAuthorizer, @unchecked Sendable {
    // `@unchecked Sendable`: `rules` is guarded by its lock.
    let rules = NIOLockedValueBox<[(String?, MQTTAction)]>([])

    func deny(_ action: MQTTAction, for principal: String? = nil) { rules.withLockedValue { $0.append((principal, action)) } }

    func authorize(_ identity: ClientIdentity, _ action: MQTTAction) -> Bool {
        !rules.withLockedValue { $0.contains { ($0.0 == nil || $0.0 == identity.principal) && $0.1 == action } }
    }
}

private func broker(
    _ loop: EmbeddedEventLoop, authorizer: any MQTTAuthorizer = AllowAllAuthorizer(),
    store: any BrokerStore = InMemoryBrokerStore(), configure: (inout BrokerConfiguration) -> Void = { _ in }
) throws -> Broker {
    var configuration = BrokerConfiguration()
    configure(&configuration)
    return try Broker(configuration: configuration, authenticator: PrincipalByUserName(), authorizer: authorizer,
                      store: store, timerLoop: loop)
}

/// An in-memory store that, once `holding` is set, answers commits only when `release()` is
/// called, as a slow disk would.
private final class SlowStore: BrokerStore, @unchecked Sendable {
    // `@unchecked Sendable`: `state` is guarded by its lock.
    private let inner = InMemoryBrokerStore()
    private let state = NIOLockedValueBox<(holding: Bool, held: [@Sendable () -> Void])>((false, []))

    func hold() { state.withLockedValue { $0.holding = true } }

    func recover() throws -> RecoveredBrokerState { try inner.recover() }

    func commit(_ changes: [BrokerStoreChange], completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let inner = inner
        let now: Bool = state.withLockedValue { state in
            guard state.holding else { return true }
            state.held.append { inner.commit(changes, completion: completion) }
            return false
        }
        if now { inner.commit(changes, completion: completion) }
    }

    /// Answers the commits held so far, in order; returns how many there were.
    @discardableResult
    func release() -> Int {
        let held = state.withLockedValue { state in
            defer { state.held = [] }
            return state.held
        }
        for commit in held { commit() }
        return held.count
    }
}

private extension TestClient {
    @discardableResult
    func connect(_ clientId: String, as principal: String, cleanStart: Bool = false, will: ConnectPacket.Will? = nil)
        throws -> ConnAckPacket?
    {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 3600
        return try connect(clientId, cleanStart: cleanStart, will: will, properties: properties, username: principal)
    }
}

@Suite("The device edge: reserved ids, owners, wills, limits")
struct EdgeHardeningTests {
    @Test("a network CONNECT with a reserved client id gets 0x85, in both versions")
    func reservedClientId() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let v5 = try TestClient(broker: broker, loop: loop)
        #expect(try v5.connect("$drover/shadows")?.reasonCode == .clientIdentifierNotValid)
        let v311 = try TestClient(broker: broker, loop: loop, version: .v311)
        #expect(try v311.connect("$drover/x")?.reasonCode == ReasonCode(0x02))
    }

    @Test("an in-process client whose connection is closed comes back by itself and subscribes again")
    func internalClientReconnects() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let received = NIOLockedValueBox<[String]>([])
        let service = InProcessClient(broker: broker, clientId: "$drover/svc", eventLoop: loop) { publish in
            received.withLockedValue { $0.append(publish.topic) }
        }
        let connected = service.connect()
        loop.run()
        try connected.wait()
        let subscribed = service.subscribe(["req/+"])
        loop.run()
        try subscribed.wait()
        broker.disconnectClients(.administrativeAction, reason: "test") { $0.isInternal }
        loop.run()
        loop.advanceTime(by: .seconds(1))
        let device = try TestClient(broker: broker, loop: loop)
        try device.connect("device")
        try device.publish("req/1", "hello", qos: .atLeastOnce, id: 7)
        loop.run()
        #expect(received.withLockedValue { $0 } == ["req/1"])
    }

    @Test("revocation by principal or indexed attribute visits only those connections; a closed one is unfiled; an unindexed attribute visits all")
    func revocationIndex() throws {
        let loop = EmbeddedEventLoop()
        let broker = try Broker(authenticator: PrincipalAndThing(), timerLoop: loop, indexedAttributes: ["thing"])
        var clients: [String: TestClient] = [:]
        for name in ["a", "b", "c", "d"] {
            let client = try TestClient(broker: broker, loop: loop)
            #expect(try client.connect("dev-\(name)", as: "cert-\(name)")?.reasonCode == .success)
            clients[name] = client
        }
        #expect(broker.filedConnections("principal:cert-a") == 1 && broker.filedConnections("thing=dev-b") == 1)
        let visited = NIOLockedValueBox<[String]>([])
        broker.disconnectClients(.notAuthorized, reason: "revoked", principals: ["cert-a", "cert-none"],
                                 attributes: ["thing": ["dev-b"]]) { identity in
            visited.withLockedValue { $0.append(identity.clientId) }
            return identity.clientId != "dev-b"
        }
        loop.run()
        #expect(visited.withLockedValue { $0 }.sorted() == ["dev-a", "dev-b"])
        #expect(clients["a"]?.isOpen == false && clients["b"]?.isOpen == true && clients["c"]?.isOpen == true)
        #expect(broker.filedConnections("principal:cert-a") == 0 && broker.filedConnections("thing=dev-a") == 0)
        #expect(broker.filedConnections("principal:cert-b") == 1)
        // An attribute that is not indexed cannot be looked up: every connection is visited.
        visited.withLockedValue { $0 = [] }
        broker.disconnectClients(.notAuthorized, reason: "revoked", principals: [], attributes: ["model": ["x"]]) { identity in
            visited.withLockedValue { $0.append(identity.clientId) }
            return false
        }
        loop.run()
        #expect(visited.withLockedValue { $0 }.sorted() == ["dev-b", "dev-c", "dev-d"])
        // A client that leaves is unfiled too.
        try clients["d"]?.send(.disconnect(DisconnectPacket()))
        loop.run()
        #expect(broker.filedConnections("principal:cert-d") == 0 && broker.filedConnections("thing=dev-d") == 0)
        #expect(broker.connectionCount == 2)
    }

    @Test("a session belongs to its principal: another one naming the client id starts afresh")
    func sessionOwner() throws {
        let loop = EmbeddedEventLoop()
        let broker = try broker(loop)
        let owner = try TestClient(broker: broker, loop: loop)
        #expect(try owner.connect("dev1", as: "cert-a")?.reasonCode == .success)
        _ = try owner.subscribe("things/dev1/#")
        try owner.send(.disconnect(DisconnectPacket()))
        let publisher = try TestClient(broker: broker, loop: loop)
        try publisher.connect("pub")
        try publisher.publish("things/dev1/cmd", "private", qos: .atLeastOnce, id: 1)
        #expect(broker.sessionQueueCount("dev1") == 1)

        let intruder = try TestClient(broker: broker, loop: loop)
        let ack = try intruder.connect("dev1", as: "cert-b")
        #expect(ack?.reasonCode == .success && ack?.sessionPresent == false)
        #expect(try intruder.publishes().isEmpty)
        try intruder.send(.disconnect(DisconnectPacket()))
        // The owner's own session is gone with it: it was ended, not handed over.
        let back = try TestClient(broker: broker, loop: loop)
        #expect(try back.connect("dev1", as: "cert-a")?.sessionPresent == false)
    }

    @Test("a connection that ends while its CONNACK waits for the store sends the CONNACK first, then the rest")
    func endingKeepsOutputOrder() throws {
        let loop = EmbeddedEventLoop()
        let store = SlowStore()
        let broker = try broker(loop, store: store)
        let device = try TestClient(broker: broker, loop: loop)
        try device.connect("dev1", as: "cert-a")
        _ = try device.subscribe("t/#")
        let publisher = try TestClient(broker: broker, loop: loop)
        try publisher.connect("pub")
        try publisher.publish("t/1", "unacked", qos: .atLeastOnce, id: 1)
        #expect(try device.publishes().map(\.topic) == ["t/1"])
        try device.send(.disconnect(DisconnectPacket()))

        // The resumed session's resend goes out only once the store has its earlier states; the
        // client pipelines PINGREQ and DISCONNECT behind its CONNECT and does not wait.
        store.hold()
        let resumed = try TestClient(broker: broker, loop: loop)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 3600
        var bytes = ByteBuffer()
        MQTTPacket.connect(ConnectPacket(protocolVersion: .v5, clientId: "dev1", cleanStart: false, username: "cert-a",
                                         properties: properties)).encode(version: .v5, into: &bytes)
        MQTTPacket.pingreq.encode(version: .v5, into: &bytes)
        MQTTPacket.disconnect(DisconnectPacket()).encode(version: .v5, into: &bytes)
        try resumed.sendRaw(bytes)
        #expect(try resumed.received().isEmpty, "nothing may overtake the CONNACK that waits for the store")
        #expect(store.release() > 0)
        let packets = try resumed.received()
        #expect(packets.map(\.type) == [.connack, .publish, .pingresp])
        #expect(!resumed.isOpen)
    }

    @Test("a recovered session keeps its principal and is checked for iot:Receive on delivery")
    func recoveredSessionKeepsPrincipal() throws {
        let loop = EmbeddedEventLoop()
        let store = InMemoryBrokerStore()
        let deny = DenyList()
        deny.deny(.receive(topic: "things/dev1/secret"), for: "cert-a")
        do {
            let first = try broker(loop, authorizer: deny, store: store)
            let device = try TestClient(broker: first, loop: loop)
            try device.connect("dev1", as: "cert-a")
            _ = try device.subscribe("things/dev1/#")
            try device.send(.disconnect(DisconnectPacket()))
        }
        let second = try broker(loop, authorizer: deny, store: store)
        let publisher = try TestClient(broker: second, loop: loop)
        try publisher.connect("pub")
        try publisher.publish("things/dev1/secret", "s", qos: .atLeastOnce, id: 1)
        try publisher.publish("things/dev1/ok", "o", qos: .atLeastOnce, id: 2)
        let device = try TestClient(broker: second, loop: loop)
        let ack = try device.connect("dev1", as: "cert-a")
        #expect(ack?.sessionPresent == true)
        #expect(try device.publishes().map(\.topic) == ["things/dev1/ok"])
    }

    @Test("a message queued before a policy change is withheld when it is delivered")
    func receiveCheckedOnDelivery() throws {
        let loop = EmbeddedEventLoop()
        let deny = DenyList()
        let broker = try broker(loop, authorizer: deny)
        let device = try TestClient(broker: broker, loop: loop)
        try device.connect("dev1", as: "cert-a")
        _ = try device.subscribe("t/#")
        try device.send(.disconnect(DisconnectPacket()))
        let publisher = try TestClient(broker: broker, loop: loop)
        try publisher.connect("pub")
        try publisher.publish("t/x", "queued", qos: .atLeastOnce, id: 1)
        #expect(broker.sessionQueueCount("dev1") == 1)
        deny.deny(.receive(topic: "t/x"), for: "cert-a")
        let back = try TestClient(broker: broker, loop: loop)
        #expect(try back.connect("dev1", as: "cert-a")?.sessionPresent == true)
        #expect(try back.publishes().isEmpty)
    }

    @Test("a will the client may not publish refuses the connection with 0x87; checked again when it fires")
    func wills() throws {
        let loop = EmbeddedEventLoop()
        let deny = DenyList()
        deny.deny(.publish(topic: "other/status", retain: false))
        deny.deny(.publish(topic: "mine/status", retain: true))
        let broker = try broker(loop, authorizer: deny)
        let watcher = try TestClient(broker: broker, loop: loop)
        try watcher.connect("watcher", as: "w", cleanStart: true)
        _ = try watcher.subscribe("#")
        for will in [ConnectPacket.Will(topic: "other/status", payload: ByteBuffer(string: "x"), qos: .atMostOnce, retain: false),
                     ConnectPacket.Will(topic: "mine/status", payload: ByteBuffer(string: "x"), qos: .atMostOnce, retain: true)] {
            let client = try TestClient(broker: broker, loop: loop)
            #expect(try client.connect("dev", as: "cert-a", cleanStart: true, will: will)?.reasonCode == .notAuthorized)
        }
        let client = try TestClient(broker: broker, loop: loop)
        let will = ConnectPacket.Will(topic: "mine/status", payload: ByteBuffer(string: "gone"), qos: .atMostOnce, retain: false)
        #expect(try client.connect("dev", as: "cert-a", cleanStart: true, will: will)?.reasonCode == .success)
        deny.deny(.publish(topic: "mine/status", retain: false))
        try client.channel.close().wait()
        loop.run()
        #expect(try watcher.publishes().isEmpty, "the will went out after its permission was taken away")
    }

    @Test("limits: filters per SUBSCRIBE and subscriptions per client get 0x97; long filters 0x8F")
    func subscribeLimits() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) {
            $0.maxFiltersPerSubscribe = 2
            $0.maxSubscriptionsPerClient = 3
            $0.maxTopicLength = 8
            $0.maxTopicLevels = 3
        }
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c")
        try client.send(.subscribe(SubscribePacket(packetId: 1, subscriptions: ["a", "b", "c"].map {
            .init(filter: $0, options: .init(qos: .atLeastOnce))
        })))
        let subacks: [[ReasonCode]] = try client.received().compactMap { packet -> [ReasonCode]? in
            if case .suback(let ack) = packet { return ack.reasonCodes }
            return nil
        }
        #expect(subacks == [[.grantedQoS1, .grantedQoS1, .quotaExceeded]])
        #expect(try client.subscribe("c")?.reasonCodes == [.grantedQoS1])
        #expect(try client.subscribe("d", id: 2)?.reasonCodes == [.quotaExceeded], "a fourth subscription")
        #expect(try client.subscribe("a", id: 3)?.reasonCodes == [.grantedQoS1], "replacing one is free")
        #expect(try client.subscribe("123456789", id: 4)?.reasonCodes == [.topicFilterInvalid])
        #expect(try client.subscribe("a/b/c/d", id: 5)?.reasonCodes == [.topicFilterInvalid])
    }

    @Test("limits: a topic too long gets 0x90, too many user properties 0x97, retained beyond the limit 0x97")
    func publishLimits() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) {
            $0.maxTopicLength = 8
            $0.maxUserProperties = 1
            $0.maxRetainedPerClient = 1
        }
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c")
        try client.publish("123456789", "x", qos: .atLeastOnce, id: 1)
        var two = MQTTProperties()
        two.userProperties = [.init(name: "a", value: "1"), .init(name: "b", value: "2")]
        try client.publish("t", "x", qos: .atLeastOnce, id: 2, properties: two)
        try client.publish("r/1", "x", qos: .atLeastOnce, id: 3, retain: true)
        try client.publish("r/2", "x", qos: .atLeastOnce, id: 4, retain: true)
        try client.publish("r/1", "y", qos: .atLeastOnce, id: 5, retain: true)
        try client.publish("r/1", "", qos: .atLeastOnce, id: 6, retain: true)
        try client.publish("r/2", "x", qos: .atLeastOnce, id: 7, retain: true)
        #expect(try client.acks().map(\.reasonCode) == [
            .topicNameInvalid, .quotaExceeded, .noMatchingSubscribers, .quotaExceeded, .noMatchingSubscribers,
            .noMatchingSubscribers, .noMatchingSubscribers,
        ])
        #expect(broker.retainedCount == 1)
    }

    @Test("Server Keep Alive is in every MQTT 5 CONNACK; a keep-alive of 0 gets the maximum")
    func serverKeepAlive() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxKeepAlive = 120 }
        for (asked, told) in [(UInt16(0), UInt16(120)), (30, 30), (500, 120)] {
            let client = try TestClient(broker: broker, loop: loop)
            #expect(try client.connect("k\(asked)", keepAlive: asked)?.properties.serverKeepAlive == told)
        }
    }

    @Test("a reason string that quotes a long client id is cut to the limit")
    func reasonStringsAreCut() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxClientIdLength = 65_535 }
        let long = String(repeating: "é", count: 30_000)  // 60 000 bytes, two per character
        let first = try TestClient(broker: broker, loop: loop)
        try first.connect(long)
        let second = try TestClient(broker: broker, loop: loop)
        try second.connect(long)
        let reasons: [String] = try first.received().compactMap { packet -> String? in
            if case .disconnect(let disconnect) = packet { return disconnect.properties.reasonString }
            return nil
        }
        #expect(reasons.count == 1)
        #expect((reasons.first?.utf8.count ?? 1000) <= 128)
    }

    @Test("connections waiting for CONNECT are bounded", arguments: [2])
    func pendingConnections(limit: Int) throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxPendingConnections = limit }
        let waiting = try (0..<limit).map { _ in try TestClient(broker: broker, loop: loop) }
        #expect(waiting.allSatisfy { $0.isOpen })
        let extra = try TestClient(broker: broker, loop: loop)
        loop.run()
        #expect(!extra.isOpen)
        // One that connects frees its place.
        try waiting[0].connect("w0")
        let next = try TestClient(broker: broker, loop: loop)
        #expect(next.isOpen)
    }

    @Test("loopback peers", arguments: [
        ("127.0.0.1:5000", true), ("127.10.2.3:1", true), ("::1:443", true), ("[::1]:443", true),
        ("::ffff:127.0.0.1:80", true), ("10.0.0.1:80", false), ("::102:304:80", false), ("1127.0.0.1:80", false),
        ("127.0.0.1.evil:80", false), ("in-process", true),
    ])
    func loopbackPeers(address: String, loopback: Bool) {
        #expect(LoopbackAnonymousAuthenticator.isLoopbackPeer(address) == loopback)
    }
}
