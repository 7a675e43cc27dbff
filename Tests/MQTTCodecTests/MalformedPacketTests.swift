import MQTTCodec
import NIOCore
import Testing

/// Each malformed packet is refused with the reason code that the connection sends.
@Suite("Malformed packets")
struct MalformedPacketTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var rule: String
        var version: MQTTProtocolVersion?
        var hex: String
        var code: ReasonCode
        var testDescription: String { rule }
    }

    static let cases: [Case] = [
        Case(rule: "[MQTT-3.3.1-4] PUBLISH with QoS 3 is malformed", version: .v311, hex: "36 07 0003 612f62 0001", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.1-2] DUP set on QoS 0 is malformed", version: .v311, hex: "38 05 0003 612f62", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.2-2] wildcard + in a PUBLISH topic", version: .v311, hex: "30 05 0003 612f2b", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.2-2] wildcard # in a PUBLISH topic", version: .v5, hex: "30 06 0003 612f23 00", code: .malformedPacket),
        Case(rule: "[MQTT-2.2.1-3] packet identifier 0 on PUBLISH", version: .v311, hex: "32 07 0003 612f62 0000", code: .malformedPacket),
        Case(rule: "[MQTT-2.2.1-3] packet identifier 0 on SUBSCRIBE", version: .v311, hex: "82 08 0000 0003 612f62 00", code: .malformedPacket),
        Case(rule: "[MQTT-1.5.5] remaining length longer than 4 bytes", version: .v311, hex: "30 ff ff ff ff 01", code: .malformedPacket),
        Case(rule: "[MQTT-1.5.4-2] a string holding U+0000", version: .v311, hex: "30 05 0003 610062", code: .malformedPacket),
        Case(rule: "[MQTT-1.5.4-1] a string that is not UTF-8", version: .v311, hex: "30 05 0003 61ff62", code: .malformedPacket),
        Case(rule: "[MQTT-1.5.4-1] a UTF-16 surrogate encoded in UTF-8", version: .v311, hex: "30 05 0003 eda080", code: .malformedPacket),
        Case(rule: "[MQTT-3.1.2-3] CONNECT reserved flag set", version: nil, hex: "10 0c 0004 4d515454 04 03 003c 0000", code: .malformedPacket),
        Case(rule: "[MQTT-3.1.2-11] will QoS without will flag", version: nil, hex: "10 0c 0004 4d515454 04 0a 003c 0000", code: .malformedPacket),
        Case(rule: "[MQTT-3.1.2-2] unknown protocol level", version: nil, hex: "10 0c 0004 4d515454 06 02 003c 0000", code: .unsupportedProtocolVersion),
        Case(rule: "[MQTT-3.1.2-1] unknown protocol name", version: nil, hex: "10 0c 0004 4d515458 04 02 003c 0000", code: .unsupportedProtocolVersion),
        Case(rule: "[MQTT-3.1.0-1] the first packet must be CONNECT", version: nil, hex: "c0 00", code: .protocolError),
        Case(rule: "[MQTT-3.8.1-1] SUBSCRIBE with fixed header flags 0000", version: .v311, hex: "80 08 0001 0003 612f62 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.6.1-1] PUBREL with fixed header flags 0000", version: .v311, hex: "60 02 0001", code: .malformedPacket),
        Case(rule: "[MQTT-3.12] PINGREQ with flags set", version: .v311, hex: "c1 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.8.3-2] SUBSCRIBE without a filter", version: .v311, hex: "82 02 0001", code: .protocolError),
        Case(rule: "[MQTT-3.10.3-2] UNSUBSCRIBE without a filter", version: .v311, hex: "a2 02 0001", code: .protocolError),
        Case(rule: "[MQTT-3.8.3-4] subscription options reserved bits (3.1.1)", version: .v311, hex: "82 08 0001 0003 612f62 04", code: .malformedPacket),
        Case(rule: "[MQTT-3.8.3-5] subscription options reserved bits (5.0)", version: .v5, hex: "82 09 0001 00 0003 612f62 c0", code: .malformedPacket),
        Case(rule: "[MQTT-3.8.3.1] retain handling 3 is a protocol error", version: .v5, hex: "82 09 0001 00 0003 612f62 30", code: .protocolError),
        Case(rule: "[MQTT-2.2.2-2] a property that appears twice", version: .v5, hex: "30 0c 0003 612f62 06 02 00000001 02", code: .protocolError),
        Case(rule: "[MQTT-2.2.2] a property not allowed on the packet (topic alias on SUBSCRIBE)", version: .v5, hex: "82 0c 0001 03 23 0001 0003 612f62 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.2-8] topic alias 0 is a protocol error", version: .v5, hex: "30 09 0003 612f62 03 23 0000", code: .protocolError),
        Case(rule: "[MQTT-3.8.2.1.2] subscription identifier 0", version: .v5, hex: "82 0b 0001 02 0b 00 0003 612f62 00", code: .protocolError),
        Case(rule: "[MQTT-3.1.2.11.3] receive maximum 0", version: nil, hex: "10 10 0004 4d515454 05 02 003c 03 21 0000 0000", code: .protocolError),
        Case(rule: "[MQTT-2.2.2] an unknown property identifier", version: .v5, hex: "30 08 0003 612f62 02 7f 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.2-4] payload format 1 with a payload that is not UTF-8", version: .v5, hex: "30 09 0003 612f62 02 01 01 ff", code: .payloadFormatInvalid),
        Case(rule: "[MQTT-2.1.3-1] reserved packet type 0", version: .v311, hex: "00 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.15] AUTH does not exist in 3.1.1", version: .v311, hex: "f0 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.12] PINGREQ with a body", version: .v311, hex: "c0 01 00", code: .malformedPacket),
        Case(rule: "[MQTT-3.3.2] PUBLISH 3.1.1 with an empty topic", version: .v311, hex: "30 03 0000 61", code: .malformedPacket),
    ]

    @Test("is refused with its reason code", arguments: cases)
    func refused(_ testCase: Case) {
        var decoder = MQTTPacketDecoder(protocolVersion: testCase.version)
        var buffer = ByteBuffer(hex: testCase.hex)
        #expect {
            _ = try decoder.decode(buffer: &buffer)
        } throws: { error in
            (error as? MQTTCodecError)?.reasonCode == testCase.code
        }
    }

    @Test("[MQTT-3.2.2.3.6] a packet over the maximum size is refused from its header alone")
    func tooLarge() {
        var decoder = MQTTPacketDecoder(protocolVersion: .v5, maximumPacketSize: 100)
        // Only the fixed header of a 2000-byte PUBLISH has arrived.
        var buffer = ByteBuffer(hex: "30 cd 0f")
        #expect {
            _ = try decoder.decode(buffer: &buffer)
        } throws: { error in
            (error as? MQTTCodecError)?.reasonCode == .packetTooLarge
        }
    }

    @Test("a partial frame is not consumed")
    func partial() throws {
        var decoder = MQTTPacketDecoder(protocolVersion: .v311)
        var buffer = ByteBuffer(hex: "30 07 0003 612f")
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 6)
    }
}
