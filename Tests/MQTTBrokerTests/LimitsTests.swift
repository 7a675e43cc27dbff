@testable import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded
import Testing

@Suite("Queue limits and purge")
struct LimitsTests {
    /// A persistent subscriber to `t` that has gone offline.
    private func offlineSubscriber(_ broker: Broker, _ loop: EmbeddedEventLoop, _ clientId: String, qos: MQTTQoS = .atLeastOnce) throws {
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect(clientId, properties: properties)
        _ = try sub.subscribe("t", qos: qos)
        try sub.send(.disconnect(DisconnectPacket()))
    }

    @Test("the byte limit per session: queued QoS 0 is dropped first, then QoS 1 is refused with 0x97")
    func sessionBytes() throws {
        let loop = EmbeddedEventLoop()
        let store = InMemoryBrokerStore()
        // Topic "t" (1 byte) + payload: each 40-byte payload counts 41 bytes.
        let broker = try makeBroker(loop, configure: { $0.maxQueuedBytes = 100 }, store: store)
        try offlineSubscriber(broker, loop, "sub")
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        let forty = String(repeating: "x", count: 40)
        try pub.publish("t", forty)
        try pub.publish("t", forty)
        #expect(broker.sessionQueueBytes("sub") == 82)
        // 82 + 41 > 100: one QoS 0 makes room.
        try pub.publish("t", forty, qos: .atLeastOnce, id: 1)
        #expect(try pub.acks().map(\.reasonCode) == [.success])
        #expect(broker.sessionQueueBytes("sub") == 82)
        // The other QoS 0 goes as well, and then there is room for nothing more.
        try pub.publish("t", forty, qos: .atLeastOnce, id: 2)
        try pub.publish("t", forty, qos: .atLeastOnce, id: 3)
        let acks = try pub.acks()
        #expect(acks.map(\.reasonCode) == [.success, .quotaExceeded])
        #expect(acks.last?.properties.reasonString?.contains("queue is full") == true)
        #expect(broker.sessionQueueBytes("sub") == 82)
        #expect(broker.queueTotals.bytes.load(ordering: .relaxed) == 82)
        #expect(try store.recover().queues["sub"]?.count == 2, "the refused message is not stored")
    }

    @Test("the broker-wide message limit: a publish that does not fit every persistent session is refused")
    func totalMessages() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxTotalQueuedMessages = 5 }
        try offlineSubscriber(broker, loop, "a")
        try offlineSubscriber(broker, loop, "b")
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...3 { try pub.publish("t", "m\(id)", qos: .atLeastOnce, id: UInt16(id)) }
        #expect(try pub.acks().map(\.reasonCode) == [.success, .success, .quotaExceeded])
        #expect(broker.queueTotals.messages.load(ordering: .relaxed) == 5)
    }

    @Test("the broker-wide byte limit is freed as queues drain")
    func totalBytesFreedByDrain() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxTotalQueuedBytes = 1024 }
        try offlineSubscriber(broker, loop, "sub")
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        let big = String(repeating: "y", count: 600)
        try pub.publish("t", big, qos: .atLeastOnce, id: 1)
        try pub.publish("t", big, qos: .atLeastOnce, id: 2)
        #expect(try pub.acks().map(\.reasonCode) == [.success, .quotaExceeded])
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", cleanStart: false, properties: properties)
        #expect(try sub.publishes().count == 1)
        #expect(broker.queueTotals.bytes.load(ordering: .relaxed) == 0)
        try pub.publish("t", big, qos: .atLeastOnce, id: 3)
        #expect(try pub.acks().map(\.reasonCode) == [.success])
    }

    @Test("a refused QoS 2 publish is forgotten: the client's resend is routed, not taken as a duplicate")
    func refusedQoS2Forgotten() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxQueuedMessages = 1 }
        try offlineSubscriber(broker, loop, "sub", qos: .exactlyOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("t", "first", qos: .exactlyOnce, id: 1)
        try pub.publish("t", "second", qos: .exactlyOnce, id: 2)
        #expect(try pub.acks().map(\.reasonCode) == [.success, .quotaExceeded])
        #expect(broker.session("pub").map { s in s.lock.withLock { s.inboundQoS2 } } == [1])
        // The subscriber takes its message; the resend of id 2 now goes through.
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", cleanStart: false, properties: properties)
        #expect(try sub.publishes().map(\.text) == ["first"])
        try pub.publish("t", "second", qos: .exactlyOnce, id: 2)
        #expect(try pub.acks().map(\.reasonCode) == [.success])
        #expect(try sub.publishes().map(\.text) == ["second"])
    }

    @Test("MQTT 3.1.1 has no negative PUBACK: a refused publish closes the connection unacknowledged")
    func refusedV311() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxQueuedMessages = 1 }
        try offlineSubscriber(broker, loop, "sub")
        let pub = try TestClient(broker: broker, loop: loop, version: .v311)
        try pub.connect("pub")
        try pub.publish("t", "one", qos: .atLeastOnce, id: 1)
        #expect(try pub.acks().map(\.packetId) == [1])
        try pub.publish("t", "two", qos: .atLeastOnce, id: 2)
        #expect(try pub.acks().isEmpty)
        #expect(!pub.isOpen)
    }

    @Test("the background purge drops expired messages from offline sessions and from the store")
    func purgeExpired() throws {
        let loop = EmbeddedEventLoop()
        let store = InMemoryBrokerStore()
        let broker = try makeBroker(loop, configure: { $0.purgeInterval = 5 }, store: store)
        try offlineSubscriber(broker, loop, "sub")
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        var expiring = MQTTProperties()
        expiring.messageExpiryInterval = 2
        try pub.publish("t", "short", qos: .atLeastOnce, id: 1, properties: expiring)
        try pub.publish("t", "long", qos: .atLeastOnce, id: 2)
        #expect(broker.sessionQueueCount("sub") == 2)
        loop.advanceTime(by: .seconds(4))
        #expect(broker.sessionQueueCount("sub") == 2, "not yet: the purge runs every 5 s")
        loop.advanceTime(by: .seconds(1))
        #expect(broker.sessionQueueCount("sub") == 1)
        #expect(try store.recover().queues["sub"]?.map(\.message.topic).count == 1)
        #expect(broker.queueTotals.messages.load(ordering: .relaxed) == 1)
    }
}

extension Broker {
    func sessionQueueBytes(_ clientId: String) -> Int? {
        session(clientId).map { session in session.lock.withLock { session.queuedBytes } }
    }
}
