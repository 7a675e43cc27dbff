@testable import MQTTBroker
import MQTTCodec
import NIOCore
import NIOEmbedded

extension ListenerInfo {
    // EmbeddedChannel has no peer address: the anonymous-from-loopback rule has tests of its own.
    static let loopback = ListenerInfo(name: "mqtt", isLoopback: true, allowAnonymous: true, anonymousFromAnyAddress: true)
    static let publicNoAnonymous = ListenerInfo(name: "mqtt", isLoopback: false, allowAnonymous: false)
}

/// An MQTT client on an EmbeddedChannel running the broker's real handler: tests send packets
/// and read what the broker wrote, with no sockets.
final class TestClient {
    let channel: EmbeddedChannel
    let loop: EmbeddedEventLoop
    let version: MQTTProtocolVersion
    private var decoder: MQTTPacketDecoder
    private var inbox: ByteBuffer = ByteBuffer()
    /// Packets read while looking for an acknowledgement, kept for the next `received()`.
    private var backlog: [MQTTPacket] = []

    init(broker: Broker, loop: EmbeddedEventLoop, version: MQTTProtocolVersion = .v5, listener: ListenerInfo = .loopback) throws {
        self.loop = loop
        self.version = version
        self.decoder = MQTTPacketDecoder(protocolVersion: version)
        channel = EmbeddedChannel(handler: MQTTChannelHandler(broker: broker, listener: listener), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
    }

    func send(_ packet: MQTTPacket) throws {
        var buffer = ByteBuffer()
        packet.encode(version: version, into: &buffer)
        try sendRaw(buffer)
    }

    func sendRaw(_ buffer: ByteBuffer) throws {
        try channel.writeInbound(buffer)
        loop.run()
    }

    /// Everything the broker has written since the last call.
    func received() throws -> [MQTTPacket] {
        loop.run()
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            var buffer = buffer
            inbox.writeBuffer(&buffer)
        }
        var packets = backlog
        backlog = []
        while let packet = try decoder.decode(buffer: &inbox) { packets.append(packet) }
        return packets
    }

    func publishes() throws -> [PublishPacket] {
        try received().compactMap { if case .publish(let p) = $0 { p } else { nil } }
    }

    /// The PUBACKs and PUBRECs the broker has written since the last call, in order.
    func acks() throws -> [PublishAckPacket] {
        try received().compactMap {
            switch $0 {
            case .puback(let ack), .pubrec(let ack): ack
            default: nil
            }
        }
    }

    @discardableResult
    func connect(
        _ clientId: String, cleanStart: Bool = true, keepAlive: UInt16 = 60, will: ConnectPacket.Will? = nil,
        properties: MQTTProperties = .init(), username: String? = nil
    ) throws -> ConnAckPacket? {
        try send(.connect(ConnectPacket(protocolVersion: version, clientId: clientId, cleanStart: cleanStart,
                                        keepAlive: keepAlive, username: username, will: will, properties: properties)))
        return try take { if case .connack(let ack) = $0 { ack } else { nil } }
    }

    func subscribe(_ filter: String, qos: MQTTQoS = .atLeastOnce, id: UInt16 = 1, identifier: Int? = nil,
                   options: SubscriptionOptions? = nil) throws -> SubAckPacket? {
        var properties = MQTTProperties()
        if let identifier { properties.subscriptionIdentifiers = [identifier] }
        try send(.subscribe(SubscribePacket(
            packetId: id, subscriptions: [.init(filter: filter, options: options ?? .init(qos: qos))], properties: properties)))
        return try take { if case .suback(let ack) = $0 { ack } else { nil } }
    }

    func publish(_ topic: String, _ payload: String, qos: MQTTQoS = .atMostOnce, id: UInt16? = nil, retain: Bool = false,
                 dup: Bool = false, properties: MQTTProperties = .init()) throws {
        try send(.publish(PublishPacket(dup: dup, qos: qos, retain: retain, topic: topic, packetId: qos == .atMostOnce ? nil : (id ?? 1),
                                        properties: properties, payload: ByteBuffer(string: payload))))
    }

    /// The first packet that `match` accepts; the others stay for `received()`.
    private func take<T>(_ match: (MQTTPacket) -> T?) throws -> T? {
        var packets = try received()
        guard let index = packets.firstIndex(where: { match($0) != nil }) else {
            backlog = packets
            return nil
        }
        let found = match(packets.remove(at: index))
        backlog = packets
        return found
    }

    var isOpen: Bool { channel.isActive }

    /// The last autoRead value the broker set on this channel (EmbeddedChannel records options).
    var autoRead: Bool? {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }?.value as? Bool
    }
}

func makeBroker(_ loop: EmbeddedEventLoop, configure: (inout BrokerConfiguration) -> Void = { _ in },
                store: any BrokerStore = InMemoryBrokerStore()) throws -> Broker {
    var configuration = BrokerConfiguration()
    configure(&configuration)
    return try Broker(configuration: configuration, store: store, timerLoop: loop)
}

extension PublishPacket {
    var text: String { String(buffer: payload) }
}
