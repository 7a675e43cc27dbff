@testable import MQTTCodec
import NIOCore
import Testing

/// The encoder never traps on what it is given: lengths that do not fit are cut, exactly as the
/// size functions count them, so every frame it writes decodes.
@Suite("Encoder bounds")
struct EncoderBoundsTests {
    @Test("a string over 65 535 bytes is cut at a character boundary, and the frame stays whole",
          arguments: [65_536, 70_000, 200_000])
    func longReasonString(bytes: Int) throws {
        // Two-byte characters, so that the cut can fall inside one.
        let reason = String(repeating: "é", count: bytes / 2) + "x"
        let packet = MQTTPacket.disconnect(DisconnectPacket(reasonCode: .protocolError, reasonString: reason))
        var buffer = ByteBuffer()
        packet.encode(version: .v5, into: &buffer)
        var decoder = MQTTPacketDecoder(protocolVersion: .v5)
        let decoded = try #require(try decoder.decode(buffer: &buffer))
        #expect(buffer.readableBytes == 0)
        guard case .disconnect(let disconnect) = decoded else { Issue.record("not a DISCONNECT"); return }
        let text = try #require(disconnect.properties.reasonString)
        #expect(text.utf8.count <= 65_535 && text.utf8.count >= 65_533)
        #expect(reason.hasPrefix(text))
    }

    @Test("binary data over 65 535 bytes is cut to 65 535")
    func longBinary() throws {
        var properties = MQTTProperties()
        properties.correlationData = ByteBuffer(repeating: 7, count: 70_000)
        let packet = MQTTPacket.publish(PublishPacket(qos: .atMostOnce, retain: false, topic: "t", properties: properties,
                                                      payload: ByteBuffer(string: "p")))
        var buffer = ByteBuffer()
        packet.encode(version: .v5, into: &buffer)
        var decoder = MQTTPacketDecoder(protocolVersion: .v5)
        guard case .publish(let publish)? = try decoder.decode(buffer: &buffer) else { Issue.record("not a PUBLISH"); return }
        #expect(publish.properties.correlationData?.readableBytes == 65_535)
        #expect(String(buffer: publish.payload) == "p")
    }

    @Test("clipped(toBytes:) keeps whole characters and marks the cut", arguments: [0, 2, 3, 4, 10, 64])
    func clipped(limit: Int) {
        let text = String(repeating: "日本", count: 40)  // three bytes per character
        let cut = text.clipped(toBytes: limit)
        #expect(cut.utf8.count <= limit)
        #expect(text.hasPrefix(cut.hasSuffix("…") ? String(cut.dropLast()) : cut))
        #expect("short".clipped(toBytes: limit) == ("short".utf8.count <= limit ? "short" : "short".clipped(toBytes: limit)))
    }

    @Test("[MQTT-3.9.3-2] a SUBACK code that the version does not define is malformed")
    func reservedSubAckCodes() throws {
        // SUBACK, packet id 1, code 0x87: defined in MQTT 5, reserved in 3.1.1.
        for (version, valid) in [(MQTTProtocolVersion.v311, false), (.v5, true)] {
            var buffer = ByteBuffer(bytes: version == .v5 ? [0x90, 0x04, 0x00, 0x01, 0x00, 0x87] : [0x90, 0x03, 0x00, 0x01, 0x87])
            var decoder = MQTTPacketDecoder(protocolVersion: version)
            if valid {
                #expect(try decoder.decode(buffer: &buffer) != nil)
            } else {
                #expect(throws: MQTTCodecError.self) { try decoder.decode(buffer: &buffer) }
            }
        }
    }
}
