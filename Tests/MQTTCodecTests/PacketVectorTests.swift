import MQTTCodec
import NIOCore
import NIOTestUtils
import Testing

/// Known-good packets, as bytes, for both protocol versions. Each is decoded whole and fed byte
/// by byte (ByteToMessageDecoderVerifier), and encoding the decoded packet gives the same bytes.
@Suite("Packet vectors")
struct PacketVectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var version: MQTTProtocolVersion?
        var hex: String
        var packet: MQTTPacket
        var testDescription: String { name }
    }

    static func properties(_ build: (inout MQTTProperties) -> Void) -> MQTTProperties {
        var properties = MQTTProperties()
        build(&properties)
        return properties
    }

    static let vectors: [Vector] = [
        Vector(
            name: "[MQTT-3.1] CONNECT 3.1.1, clean session, keep-alive 60, client id 'c1'",
            version: nil, hex: "10 0e 0004 4d515454 04 02 003c 0002 6331",
            packet: .connect(ConnectPacket(protocolVersion: .v311, clientId: "c1", cleanStart: true, keepAlive: 60))),
        Vector(
            name: "[MQTT-3.1] CONNECT 5.0 with session expiry, will, user name and password",
            version: nil,
            hex: "10 2a 0004 4d515454 05 ee 000a 05 11 0000003c 0002 6331 05 18 00000005 0003 612f62 0002 6869 0001 75 0002 7077",
            packet: .connect(ConnectPacket(
                protocolVersion: .v5, clientId: "c1", cleanStart: true, keepAlive: 10, username: "u",
                password: ByteBuffer(string: "pw"),
                will: .init(topic: "a/b", payload: ByteBuffer(string: "hi"), qos: .atLeastOnce, retain: true,
                            properties: properties { $0.willDelayInterval = 5 }),
                properties: properties { $0.sessionExpiryInterval = 60 }))),
        Vector(
            name: "[MQTT-3.2] CONNACK 3.1.1 session present",
            version: .v311, hex: "20 02 01 00",
            packet: .connack(ConnAckPacket(sessionPresent: true, reasonCode: .success))),
        Vector(
            name: "[MQTT-3.2] CONNACK 5.0 with receive maximum and maximum packet size",
            version: .v5, hex: "20 0b 00 00 08 21 0064 27 00100000",
            packet: .connack(ConnAckPacket(properties: properties {
                $0.receiveMaximum = 100
                $0.maximumPacketSize = 1_048_576
            }))),
        Vector(
            name: "[MQTT-3.3] PUBLISH 3.1.1 QoS 0",
            version: .v311, hex: "30 07 0003 612f62 6869",
            packet: .publish(PublishPacket(topic: "a/b", payload: ByteBuffer(string: "hi")))),
        Vector(
            name: "[MQTT-3.3] PUBLISH 5.0 QoS 2 retained with topic alias and user property",
            version: .v5, hex: "35 14 0003 612f62 0007 0a 23 0001 26 0001 6b 0001 76 6869",
            packet: .publish(PublishPacket(
                qos: .exactlyOnce, retain: true, topic: "a/b", packetId: 7,
                properties: properties {
                    $0.topicAlias = 1
                    $0.userProperties = [.init(name: "k", value: "v")]
                }, payload: ByteBuffer(string: "hi")))),
        Vector(
            name: "[MQTT-3.3.2-8] PUBLISH 5.0 with empty topic and topic alias",
            version: .v5, hex: "30 07 0000 03 23 0001 78",
            packet: .publish(PublishPacket(topic: "", properties: properties { $0.topicAlias = 1 }, payload: ByteBuffer(string: "x")))),
        Vector(
            name: "[MQTT-3.4] PUBACK 3.1.1", version: .v311, hex: "40 02 0001",
            packet: .puback(PublishAckPacket(packetId: 1))),
        Vector(
            name: "[MQTT-3.4.2.1] PUBACK 5.0 with reason code 0x10", version: .v5, hex: "40 03 0001 10",
            packet: .puback(PublishAckPacket(packetId: 1, reasonCode: .noMatchingSubscribers))),
        Vector(
            name: "[MQTT-3.5] PUBREC", version: .v5, hex: "50 02 0002",
            packet: .pubrec(PublishAckPacket(packetId: 2))),
        Vector(
            name: "[MQTT-3.6.1-1] PUBREL has flags 0010", version: .v311, hex: "62 02 0002",
            packet: .pubrel(PublishAckPacket(packetId: 2))),
        Vector(
            name: "[MQTT-3.7] PUBCOMP 5.0 packet identifier not found", version: .v5, hex: "70 03 0002 92",
            packet: .pubcomp(PublishAckPacket(packetId: 2, reasonCode: .packetIdentifierNotFound))),
        Vector(
            name: "[MQTT-3.8] SUBSCRIBE 3.1.1 two filters", version: .v311, hex: "82 0e 000a 0003 612f2b 01 0003 622f23 02",
            packet: .subscribe(SubscribePacket(packetId: 10, subscriptions: [
                .init(filter: "a/+", options: .init(qos: .atLeastOnce)),
                .init(filter: "b/#", options: .init(qos: .exactlyOnce)),
            ]))),
        Vector(
            name: "[MQTT-3.8.3] SUBSCRIBE 5.0 with subscription identifier and all options", version: .v5,
            hex: "82 0b 000a 02 0b 05 0003 612f62 2e",
            packet: .subscribe(SubscribePacket(
                packetId: 10,
                subscriptions: [.init(filter: "a/b", options: .init(qos: .exactlyOnce, noLocal: true, retainAsPublished: true, retainHandling: .doNotSend))],
                properties: properties { $0.subscriptionIdentifiers = [5] }))),
        Vector(
            name: "[MQTT-3.9] SUBACK 5.0 with a refused filter", version: .v5, hex: "90 05 000a 00 01 8f",
            packet: .suback(SubAckPacket(packetId: 10, reasonCodes: [.grantedQoS1, .topicFilterInvalid]))),
        Vector(
            name: "[MQTT-3.10] UNSUBSCRIBE", version: .v311, hex: "a2 07 000b 0003 612f62",
            packet: .unsubscribe(UnsubscribePacket(packetId: 11, filters: ["a/b"]))),
        Vector(
            name: "[MQTT-3.11] UNSUBACK 5.0 no subscription existed", version: .v5, hex: "b0 04 000b 00 11",
            packet: .unsuback(UnsubAckPacket(packetId: 11, reasonCodes: [.noSubscriptionExisted]))),
        Vector(
            name: "[MQTT-3.11] UNSUBACK 3.1.1 has no reason codes", version: .v311, hex: "b0 02 000b",
            packet: .unsuback(UnsubAckPacket(packetId: 11))),
        Vector(name: "[MQTT-3.12] PINGREQ", version: .v311, hex: "c0 00", packet: .pingreq),
        Vector(name: "[MQTT-3.13] PINGRESP", version: .v5, hex: "d0 00", packet: .pingresp),
        Vector(name: "[MQTT-3.14] DISCONNECT 3.1.1", version: .v311, hex: "e0 00", packet: .disconnect(DisconnectPacket())),
        Vector(
            name: "[MQTT-3.14.2.1] DISCONNECT 5.0 with will and session expiry", version: .v5, hex: "e0 07 04 05 11 0000000a",
            packet: .disconnect(DisconnectPacket(reasonCode: .disconnectWithWill, properties: properties { $0.sessionExpiryInterval = 10 }))),
        Vector(
            name: "[MQTT-3.15] AUTH continue authentication", version: .v5, hex: "f0 07 18 05 15 0002 6b31",
            packet: .auth(AuthPacket(reasonCode: .continueAuthentication, properties: properties { $0.authenticationMethod = "k1" }))),
    ]

    @Test("decodes and re-encodes", arguments: vectors)
    func roundTrip(_ vector: Vector) throws {
        var decoder = MQTTPacketDecoder(protocolVersion: vector.version)
        var buffer = ByteBuffer(hex: vector.hex)
        let packet = try decoder.decode(buffer: &buffer)
        #expect(packet == vector.packet)
        #expect(buffer.readableBytes == 0)
        var encoded = ByteBuffer()
        let version: MQTTProtocolVersion
        if case .connect(let connect) = vector.packet { version = connect.protocolVersion } else { version = vector.version! }
        vector.packet.encode(version: version, into: &encoded)
        #expect(encoded.hex == ByteBuffer(hex: vector.hex).hex)
    }

    @Test("every decoder fed byte by byte, and in chunks", arguments: vectors)
    func byteByByte(_ vector: Vector) throws {
        let version = vector.version
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(ByteBuffer(hex: vector.hex), [vector.packet])],
            decoderFactory: { MQTTPacketDecoder(protocolVersion: version) })
    }

    @Test("[MQTT-1.5.5] remaining length of 4 bytes decodes")
    func fourByteRemainingLength() throws {
        let payload = ByteBuffer(repeating: 0x61, count: 2_097_152)
        let packet = MQTTPacket.publish(PublishPacket(topic: "t", payload: payload))
        var encoded = ByteBuffer()
        packet.encode(version: .v311, into: &encoded)
        #expect(encoded.getBytes(at: 1, length: 4) == [0x83, 0x80, 0x80, 0x01])
        var decoder = MQTTPacketDecoder(protocolVersion: .v311)
        #expect(try decoder.decode(buffer: &encoded) == packet)
    }

    @Test("several packets in one read come out one by one")
    func pipelined() throws {
        var decoder = MQTTPacketDecoder(protocolVersion: .v311)
        var buffer = ByteBuffer(hex: "c000 d000 e000")
        #expect(try decoder.decode(buffer: &buffer) == .pingreq)
        #expect(try decoder.decode(buffer: &buffer) == .pingresp)
        #expect(try decoder.decode(buffer: &buffer) == .disconnect(DisconnectPacket()))
        #expect(try decoder.decode(buffer: &buffer) == nil)
    }
}
