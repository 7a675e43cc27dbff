@testable import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded
import Testing

@Suite("Connecting")
struct ConnectionTests {
    @Test("[MQTT-3.2.2] CONNACK advertises our limits")
    func connackProperties() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxPacketSize = 4096; $0.receiveMaximum = 10; $0.topicAliasMaximum = 7 }
        let client = try TestClient(broker: broker, loop: loop)
        let ack = try #require(try client.connect("c1"))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.maximumPacketSize == 4096)
        #expect(ack.properties.receiveMaximum == 10)
        #expect(ack.properties.topicAliasMaximum == 7)
    }

    @Test("[MQTT-3.1.3-6] an empty client id gets an Assigned Client Identifier in MQTT 5")
    func assignedClientId() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop)
        let ack = try #require(try client.connect(""))
        #expect(ack.reasonCode == .success)
        #expect(ack.properties.assignedClientIdentifier?.isEmpty == false)
    }

    @Test("[MQTT-3.1.3-8] 3.1.1: an empty client id with clean session 0 is refused with return code 2")
    func emptyClientIdPersistent() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop, version: .v311)
        let ack = try #require(try client.connect("", cleanStart: false))
        #expect(ack.reasonCode.rawValue == 0x02)
        #expect(!client.isOpen)
    }

    @Test("anonymous clients are refused on a listener that does not allow them")
    func anonymousRefused() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop, listener: .publicNoAnonymous)
        let ack = try #require(try client.connect("c1"))
        #expect(ack.reasonCode == .notAuthorized)
        #expect(!client.isOpen)
    }

    @Test("[MQTT-3.1.4-3] a second connection with the same client id takes over: the first gets DISCONNECT 0x8E")
    func takeover() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let first = try TestClient(broker: broker, loop: loop)
        try first.connect("same")
        _ = try first.subscribe("t")
        let second = try TestClient(broker: broker, loop: loop)
        var properties = MQTTProperties()
        properties.sessionExpiryInterval = 60
        let ack = try #require(try second.connect("same", cleanStart: false, properties: properties))
        #expect(ack.sessionPresent)
        let packets = try first.received()
        #expect(packets.contains(.disconnect(DisconnectPacket(reasonCode: .sessionTakenOver, reasonString: "another connection uses client id same"))))
        #expect(!first.isOpen)
        #expect(broker.connectionCount == 1)
    }

    @Test("[MQTT-3.1.0-2] a second CONNECT is a protocol error")
    func secondConnect() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop)
        try client.connect("c1")
        try client.send(.connect(ConnectPacket(protocolVersion: .v5, clientId: "c1")))
        let packets = try client.received()
        guard case .disconnect(let disconnect) = packets.last else { Issue.record("no DISCONNECT: \(packets)"); return }
        #expect(disconnect.reasonCode == .protocolError)
        #expect(!client.isOpen)
    }

    @Test("a malformed packet gets DISCONNECT 0x81 with a reason string, then the connection closes")
    func malformed() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop), loop: loop)
        try client.connect("c1")
        try client.sendRaw(ByteBuffer(bytes: [0x36, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x01]))
        let packets = try client.received()
        guard case .disconnect(let disconnect) = packets.last else { Issue.record("no DISCONNECT: \(packets)"); return }
        #expect(disconnect.reasonCode == .malformedPacket)
        #expect(disconnect.properties.reasonString?.contains("QoS 3") == true)
        #expect(!client.isOpen)
    }

    @Test("a packet over the maximum packet size gets DISCONNECT 0x95")
    func tooLarge() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop) { $0.maxPacketSize = 128 }, loop: loop)
        try client.connect("c1")
        try client.publish("t", String(repeating: "x", count: 500))
        guard case .disconnect(let disconnect) = try client.received().last else { Issue.record("no DISCONNECT"); return }
        #expect(disconnect.reasonCode == .packetTooLarge)
    }

    @Test("[MQTT-3.1.2-24] keep-alive: no packet for 1.5 times the interval closes the connection and publishes the will")
    func keepAlive() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let watcher = try TestClient(broker: broker, loop: loop)
        try watcher.connect("watcher")
        _ = try watcher.subscribe("wills/#")
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("sleepy", keepAlive: 10, will: .init(topic: "wills/sleepy", payload: ByteBuffer(string: "gone"), qos: .atMostOnce, retain: false))
        loop.advanceTime(by: .seconds(14))
        #expect(client.isOpen)
        loop.advanceTime(by: .seconds(2))
        #expect(!client.isOpen)
        #expect(try watcher.publishes().map(\.text) == ["gone"])
    }

    @Test("keep-alive above the maximum is lowered and sent as Server Keep Alive")
    func serverKeepAlive() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop) { $0.maxKeepAlive = 30 }, loop: loop)
        let ack = try #require(try client.connect("c1", keepAlive: 600))
        #expect(ack.properties.serverKeepAlive == 30)
    }

    @Test("no CONNECT within the connect timeout closes the connection")
    func connectTimeout() throws {
        let loop = EmbeddedEventLoop()
        let client = try TestClient(broker: try makeBroker(loop) { $0.connectTimeout = 5 }, loop: loop)
        loop.advanceTime(by: .seconds(6))
        #expect(!client.isOpen)
    }

    @Test("the connection limit refuses with 0x97 Quota exceeded")
    func maxConnections() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop) { $0.maxConnections = 1 }
        let first = try TestClient(broker: broker, loop: loop)
        #expect(try first.connect("a")?.reasonCode == .success)
        let second = try TestClient(broker: broker, loop: loop)
        #expect(try second.connect("b")?.reasonCode == .quotaExceeded)
    }

    @Test("shutdown sends DISCONNECT 0x8B to MQTT 5 clients")
    func shutdown() throws {
        let loop = EmbeddedEventLoop()
        let broker = try makeBroker(loop)
        let client = try TestClient(broker: broker, loop: loop)
        try client.connect("c1")
        let done = broker.shutdown()
        loop.run()
        guard case .disconnect(let disconnect) = try client.received().last else { Issue.record("no DISCONNECT"); return }
        #expect(disconnect.reasonCode == .serverShuttingDown)
        loop.run()
        try done.wait()
        #expect(!client.isOpen)
    }
}
