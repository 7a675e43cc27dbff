@testable import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded
import Testing

@Suite("Delivery")
struct DeliveryTests {
    @Test("QoS 1: delivered with a packet id, PUBACK to the publisher")
    func qos1() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        #expect(try sub.subscribe("a/+", qos: .atLeastOnce)?.reasonCodes == [.grantedQoS1])
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("a/b", "hello", qos: .atLeastOnce, id: 5)
        #expect(try pub.received() == [.puback(PublishAckPacket(packetId: 5))])
        let delivered = try sub.publishes()
        #expect(delivered.count == 1)
        #expect(delivered.first?.qos == .atLeastOnce)
        #expect(delivered.first?.text == "hello")
    }

    @Test("[MQTT-3.4.2.1] PUBACK 0x10 when no one subscribes")
    func noMatchingSubscribers() throws {
        let loop = EmbeddedEventLoop()
        let pub = try TestClient(broker: try makeBroker(loop), loop: loop)
        try pub.connect("pub")
        try pub.publish("nobody", "x", qos: .atLeastOnce, id: 1)
        #expect(try pub.received() == [.puback(PublishAckPacket(packetId: 1, reasonCode: .noMatchingSubscribers))])
    }

    @Test("[MQTT-4.3.3] QoS 2 inbound: a resent PUBLISH before PUBREL is delivered once")
    func qos2ExactlyOnce() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("q2", qos: .exactlyOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("q2", "once", qos: .exactlyOnce, id: 9)
        try pub.publish("q2", "once", qos: .exactlyOnce, id: 9, dup: true)
        #expect(try pub.received() == [.pubrec(PublishAckPacket(packetId: 9)), .pubrec(PublishAckPacket(packetId: 9))])
        try pub.send(.pubrel(PublishAckPacket(packetId: 9)))
        #expect(try pub.received() == [.pubcomp(PublishAckPacket(packetId: 9))])
        let delivered = try sub.publishes()
        #expect(delivered.count == 1)
        // Outbound QoS 2: PUBREC from the subscriber gets PUBREL, PUBCOMP completes.
        let id = try #require(delivered.first?.packetId)
        try sub.send(.pubrec(PublishAckPacket(packetId: id)))
        #expect(try sub.received() == [.pubrel(PublishAckPacket(packetId: id))])
        try sub.send(.pubcomp(PublishAckPacket(packetId: id)))
        #expect(broker.sessionInflightCount("sub") == 0)
    }

    @Test("[MQTT-3.3.5-1] overlapping subscriptions: one delivery at the highest QoS with every subscription identifier")
    func overlapping() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("a/+", qos: .atMostOnce, id: 1, identifier: 1)
        _ = try sub.subscribe("a/#", qos: .exactlyOnce, id: 2, identifier: 2)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("a/b", "x", qos: .exactlyOnce, id: 1)
        let delivered = try sub.publishes()
        #expect(delivered.count == 1)
        #expect(delivered.first?.qos == .exactlyOnce)
        #expect(Set(delivered.first?.properties.subscriptionIdentifiers ?? []) == [1, 2])
    }

    @Test("the subscription QoS caps delivery")
    func qosCap() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("t", qos: .atMostOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("t", "x", qos: .exactlyOnce, id: 1)
        #expect(try sub.publishes().map(\.qos) == [.atMostOnce])
    }

    @Test("[MQTT-3.8.3-3] No Local: a client does not get its own messages")
    func noLocal() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("me")
        _ = try client.subscribe("t", options: .init(qos: .atMostOnce, noLocal: true))
        try client.publish("t", "mine")
        #expect(try client.publishes().isEmpty)
        let other = try TestClient(broker: broker, loop: loop)
        try other.connect("other")
        try other.publish("t", "theirs")
        #expect(try client.publishes().map(\.text) == ["theirs"])
    }

    @Test("[MQTT-4.8.2] shared subscriptions spread messages across the members")
    func shared() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let members = try (0..<3).map { index in
            let member = try TestClient(broker: broker, loop: loop)
            try member.connect("m\(index)")
            _ = try member.subscribe("$share/g/jobs/+", qos: .atMostOnce)
            return member
        }
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for index in 0..<30 { try pub.publish("jobs/x", "\(index)") }
        let counts = try members.map { try $0.publishes().count }
        #expect(counts.reduce(0, +) == 30)
        #expect(counts.allSatisfy { $0 == 10 })
    }

    @Test("[MQTT-3.3.2-3] Message Expiry: an expired queued message is not sent; the rest carry the time left")
    func messageExpiry() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        try sub.send(.disconnect(DisconnectPacket()))
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        var short = MQTTProperties()
        short.messageExpiryInterval = 5
        var long = MQTTProperties()
        long.messageExpiryInterval = 100
        try pub.publish("t", "short", qos: .atLeastOnce, id: 1, properties: short)
        try pub.publish("t", "long", qos: .atLeastOnce, id: 2, properties: long)
        loop.advanceTime(by: .seconds(10))
        let back = try TestClient(broker: broker, loop: loop)
        #expect(try back.connect("sub", cleanStart: false, properties: properties)?.sessionPresent == true)
        let delivered = try back.publishes()
        #expect(delivered.map(\.text) == ["long"])
        #expect(delivered.first?.properties.messageExpiryInterval == 90)
    }

    @Test("[MQTT-4.4.0-1] unacknowledged messages are sent again with DUP when the session resumes")
    func redelivery() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("t", "m1", qos: .atLeastOnce, id: 1)
        let first = try sub.publishes()
        #expect(first.map(\.dup) == [false])
        try sub.channel.close().wait()
        let back = try TestClient(broker: broker, loop: loop)
        try back.connect("sub", cleanStart: false, properties: properties)
        let again = try back.publishes()
        #expect(again.map(\.text) == ["m1"])
        #expect(again.map(\.dup) == [true])
        #expect(again.first?.packetId == first.first?.packetId)
    }

    @Test("Receive Maximum of the client bounds the messages in flight")
    func clientReceiveMaximum() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        var properties = MQTTProperties()
        properties.receiveMaximum = 2
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...5 { try pub.publish("t", "\(id)", qos: .atLeastOnce, id: UInt16(id)) }
        let batch = try sub.publishes()
        #expect(batch.map(\.text) == ["1", "2"])
        try sub.send(.puback(PublishAckPacket(packetId: batch[0].packetId!)))
        #expect(try sub.publishes().map(\.text) == ["3"])
    }

    @Test("a client that exceeds our Receive Maximum is disconnected with 0x93")
    func receiveMaximumExceeded() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.receiveMaximum = 2 }
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...3 { try pub.publish("t", "x", qos: .exactlyOnce, id: UInt16(id)) }
        guard case .disconnect(let disconnect) = try pub.received().last else { Issue.record("no DISCONNECT"); return }
        #expect(disconnect.reasonCode == .receiveMaximumExceeded)
    }

    @Test("topic aliases: inbound aliases resolve, an alias over our maximum gets 0x94")
    func inboundAliases() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.topicAliasMaximum = 4 }
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("long/topic/name", qos: .atMostOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        var alias = MQTTProperties()
        alias.topicAlias = 3
        try pub.publish("long/topic/name", "1", properties: alias)
        try pub.publish("", "2", properties: alias)
        #expect(try sub.publishes().map { "\($0.topic) \($0.text)" } == ["long/topic/name 1", "long/topic/name 2"])
        alias.topicAlias = 5
        try pub.publish("x", "3", properties: alias)
        guard case .disconnect(let disconnect) = try pub.received().last else { Issue.record("no DISCONNECT"); return }
        #expect(disconnect.reasonCode == .topicAliasInvalid)
    }

    @Test("topic aliases outbound: never more than the client allows")
    func outboundAliases() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        var properties = MQTTProperties()
        properties.topicAliasMaximum = 1
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("#", qos: .atMostOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("a", "1")
        try pub.publish("a", "2")
        try pub.publish("b", "3")
        let delivered = try sub.publishes()
        #expect(delivered.map(\.topic) == ["a", "", "b"])
        #expect(delivered.map(\.properties.topicAlias) == [1, 1, nil])
    }

    @Test("[MQTT-3.1.2-25] a message larger than the client's Maximum Packet Size is dropped, not sent")
    func clientMaximumPacketSize() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        var properties = MQTTProperties()
        properties.maximumPacketSize = 64
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("t", String(repeating: "x", count: 100), qos: .atLeastOnce, id: 1)
        try pub.publish("t", "small", qos: .atLeastOnce, id: 2)
        #expect(try sub.publishes().map(\.text) == ["small"])
    }

    @Test("QoS 1 into a full queue: kept in the overflow allowance (no loss), and the publisher stops reading")
    func qos1Backpressure() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxQueuedMessages = 10 }
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        sub.channel.isWritable = false
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...15 { try pub.publish("t", "\(id)", qos: .atLeastOnce, id: UInt16(id)) }
        #expect(broker.sessionQueueCount("sub") == 15)
        #expect(pub.autoRead == false)
        sub.channel.isWritable = true
        sub.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try sub.publishes().count == 15)
        #expect(pub.autoRead == true)
    }

    @Test("the overflow allowance is bounded: past it, QoS 1 is refused with 0x97 even for a connected subscriber")
    func overflowBound() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) {
            $0.maxQueuedMessages = 10
            $0.maxQueuedOverflow = 3
        }
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        sub.channel.isWritable = false
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...20 { try pub.publish("t", "\(id)", qos: .atLeastOnce, id: UInt16(id)) }
        #expect(broker.sessionQueueCount("sub") == 13)
        let codes = try pub.acks().map(\.reasonCode)
        #expect(codes == Array(repeating: .success, count: 13) + Array(repeating: .quotaExceeded, count: 7))
    }

    @Test("an offline session's queue holds at most the limit; QoS 1 beyond it is refused with 0x97")
    func offlineQueueBound() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxQueuedMessages = 10 }
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 300
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        try sub.send(.disconnect(DisconnectPacket()))
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for id in 1...25 { try pub.publish("t", "\(id)", qos: .atLeastOnce, id: UInt16(id)) }
        #expect(broker.sessionQueueCount("sub") == 10)
        let codes = try pub.acks().map(\.reasonCode)
        #expect(codes == Array(repeating: .success, count: 10) + Array(repeating: .quotaExceeded, count: 15))
        #expect(pub.autoRead != false, "an offline subscriber must not pause publishers")
    }

    @Test("a PUBLISH read together with a later SUBSCRIBE is routed before the subscription exists")
    func publishThenSubscribeInOneRead() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop)
        try client.connect("c")
        var bytes = ByteBuffer()
        MQTTPacket.publish(PublishPacket(topic: "t", payload: ByteBuffer(string: "before"))).encode(version: .v5, into: &bytes)
        MQTTPacket.subscribe(SubscribePacket(packetId: 1, subscriptions: [.init(filter: "t", options: .init(qos: .atMostOnce))]))
            .encode(version: .v5, into: &bytes)
        try client.sendRaw(bytes)
        #expect(try client.publishes().isEmpty)
    }

    @Test("a slow subscriber: the queue stays bounded and QoS 0 is dropped first")
    func slowSubscriber() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxQueuedMessages = 10 }
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        sub.channel.isWritable = false
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        for index in 0..<100 { try pub.publish("t", "q0-\(index)") }
        #expect(broker.sessionQueueCount("sub") == 10)
        // A QoS 1 message pushes out the oldest QoS 0 one.
        try pub.publish("t", "important", qos: .atLeastOnce, id: 1)
        #expect(broker.sessionQueueCount("sub") == 10)
        sub.channel.isWritable = true
        sub.channel.pipeline.fireChannelWritabilityChanged()
        let delivered = try sub.publishes()
        #expect(delivered.count == 10)
        #expect(delivered.last?.text == "important")
        #expect(delivered.first?.text == "q0-1")
    }
}

extension Broker {
    func session(_ clientId: String) -> Session? {
        openSessions().first { $0.clientId == clientId }
    }

    func sessionQueueCount(_ clientId: String) -> Int? {
        session(clientId).map { session in session.lock.withLock { session.queue.count } }
    }

    func sessionInflightCount(_ clientId: String) -> Int? {
        session(clientId).map { session in session.lock.withLock { session.inflight.count } }
    }
}
