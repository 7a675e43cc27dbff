@testable import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded
import Testing

@Suite("Retained messages and wills")
struct RetainedAndWillTests {
    @Test("[MQTT-3.3.1-5] [MQTT-3.3.1-6] retained: stored, replaced, cleared by an empty payload")
    func retained() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("r/1", "first", retain: true)
        try pub.publish("r/1", "second", retain: true)
        try pub.publish("r/2", "other", retain: true)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("r/1", qos: .atMostOnce)
        let got = try sub.publishes()
        #expect(got.map(\.text) == ["second"])
        #expect(got.first?.retain == true)
        try pub.publish("r/1", "", retain: true)
        #expect(broker.retainedCount == 1)
        let late = try TestClient(broker: broker, loop: loop)
        try late.connect("late")
        _ = try late.subscribe("r/1", qos: .atMostOnce)
        #expect(try late.publishes().isEmpty)
    }

    @Test("[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling 0, 1 and 2")
    func retainHandling() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("r", "kept", retain: true)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("r", id: 1, options: .init(qos: .atMostOnce, retainHandling: .doNotSend))
        #expect(try sub.publishes().isEmpty)
        _ = try sub.subscribe("r", id: 2, options: .init(qos: .atMostOnce, retainHandling: .sendOnNewSubscribe))
        #expect(try sub.publishes().isEmpty, "the subscription existed already")
        _ = try sub.subscribe("r", id: 3, options: .init(qos: .atMostOnce, retainHandling: .sendOnSubscribe))
        #expect(try sub.publishes().map(\.text) == ["kept"])
    }

    @Test("[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps the RETAIN flag on live messages")
    func retainAsPublished() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub")
        _ = try sub.subscribe("a", id: 1, options: .init(qos: .atMostOnce, retainAsPublished: true))
        _ = try sub.subscribe("b", id: 2, options: .init(qos: .atMostOnce))
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("a", "x", retain: true)
        try pub.publish("b", "y", retain: true)
        #expect(try sub.publishes().map(\.retain) == [true, false])
    }

    @Test("[MQTT-3.1.2-8] the will is published on an unclean disconnect")
    func willOnUncleanClose() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let watcher = try TestClient(broker: broker, loop: loop)
        try watcher.connect("watcher")
        _ = try watcher.subscribe("w", qos: .atMostOnce)
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c", will: .init(topic: "w", payload: ByteBuffer(string: "bye"), qos: .atMostOnce, retain: false))
        try client.channel.close().wait()
        #expect(try watcher.publishes().map(\.text) == ["bye"])
    }

    @Test("[MQTT-3.14.4-3] a normal DISCONNECT discards the will; 0x04 publishes it")
    func willOnDisconnect() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let watcher = try TestClient(broker: broker, loop: loop)
        try watcher.connect("watcher")
        _ = try watcher.subscribe("w", qos: .atMostOnce)
        let will = ConnectPacket.Will(topic: "w", payload: ByteBuffer(string: "bye"), qos: .atMostOnce, retain: false)
        let polite = try TestClient(broker: broker, loop: loop)
        try polite.connect("polite", will: will)
        try polite.send(.disconnect(DisconnectPacket()))
        #expect(try watcher.publishes().isEmpty)
        let withWill = try TestClient(broker: broker, loop: loop)
        try withWill.connect("withWill", will: will)
        try withWill.send(.disconnect(DisconnectPacket(reasonCode: .disconnectWithWill)))
        #expect(try watcher.publishes().map(\.text) == ["bye"])
    }

    @Test("[MQTT-3.1.3-9] Will Delay: published after the delay, cancelled by a reconnection in time")
    func willDelay() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let watcher = try TestClient(broker: broker, loop: loop)
        try watcher.connect("watcher")
        _ = try watcher.subscribe("w", qos: .atMostOnce)
        var willProperties = MQTTProperties()
        willProperties.willDelayInterval = 5
        let will = ConnectPacket.Will(topic: "w", payload: ByteBuffer(string: "late"), qos: .atMostOnce, retain: false, properties: willProperties)
        var session = MQTTProperties()
        session.sessionExpiryInterval = 60

        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c", will: will, properties: session)
        try client.channel.close().wait()
        loop.advanceTime(by: .seconds(4))
        #expect(try watcher.publishes().isEmpty)
        loop.advanceTime(by: .seconds(2))
        #expect(try watcher.publishes().map(\.text) == ["late"])

        let again = try TestClient(broker: broker, loop: loop)
        try again.connect("c", cleanStart: false, will: will, properties: session)
        try again.channel.close().wait()
        loop.advanceTime(by: .seconds(3))
        let back = try TestClient(broker: broker, loop: loop)
        try back.connect("c", cleanStart: false, properties: session)
        loop.advanceTime(by: .seconds(10))
        #expect(try watcher.publishes().isEmpty)
    }

    @Test("[MQTT-3.1.2-23] session expiry: a session is gone once its interval has passed")
    func sessionExpiry() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 10
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c", properties: properties)
        _ = try client.subscribe("t")
        try client.channel.close().wait()
        loop.advanceTime(by: .seconds(5))
        let back = try TestClient(broker: broker, loop: loop)
        #expect(try back.connect("c", cleanStart: false, properties: properties)?.sessionPresent == true)
        try back.channel.close().wait()
        loop.advanceTime(by: .seconds(11))
        #expect(broker.sessionCount == 0)
        let late = try TestClient(broker: broker, loop: loop)
        #expect(try late.connect("c", cleanStart: false, properties: properties)?.sessionPresent == false)
    }

    @Test("a broker rebuilt on the same store has the retained messages, sessions and queued messages")
    func recovery() throws {
        let loop = EmbeddedEventLoop()
        let store = InMemoryBrokerStore()
        let broker = try makeBroker(loop, store: store)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 600
        let sub = try TestClient(broker: broker, loop: loop)
        try sub.connect("sub", properties: properties)
        _ = try sub.subscribe("t", qos: .atLeastOnce)
        try sub.send(.disconnect(DisconnectPacket()))
        let pub = try TestClient(broker: broker, loop: loop)
        try pub.connect("pub")
        try pub.publish("t", "queued", qos: .atLeastOnce, id: 1)
        try pub.publish("keep", "retained", retain: true)

        let rebuilt = try makeBroker(loop, store: store)
        #expect(rebuilt.retainedCount == 1)
        let back = try TestClient(broker: rebuilt, loop: loop)
        #expect(try back.connect("sub", cleanStart: false, properties: properties)?.sessionPresent == true)
        #expect(try back.publishes().map(\.text) == ["queued"])
    }
}
