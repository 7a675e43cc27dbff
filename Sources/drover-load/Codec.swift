import NIOCore

/// A deliberately small MQTT 3.1.1 client codec: only the packets the load tool sends and expects.
///
/// It writes straight into `ByteBuffer`s and parses frames in place, so the hot paths (PUBLISH out, PUBLISH and
/// PUBACK in) allocate nothing per message. It is independent of the broker's own codec on purpose: a load tool that
/// shared the broker's bugs could not find them.
enum MQTTPacketType: UInt8 {
    case connect = 1
    case connack = 2
    case publish = 3
    case puback = 4
    case subscribe = 8
    case suback = 9
    case pingreq = 12
    case pingresp = 13
    case disconnect = 14
}

enum MQTTWire {
    /// Bytes needed for a remaining-length varint of `length`.
    @inline(__always)
    static func varintSize(_ length: Int) -> Int {
        switch length {
        case ..<128: return 1
        case ..<16_384: return 2
        case ..<2_097_152: return 3
        default: return 4
        }
    }

    @inline(__always)
    static func writeVarint(_ length: Int, into buffer: inout ByteBuffer) {
        var value = length
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value > 0 { byte |= 0x80 }
            buffer.writeInteger(byte)
        } while value > 0
    }

    @inline(__always)
    static func writeString(_ bytes: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(bytes.count))
        buffer.writeBytes(bytes)
    }

    static func writeConnect(clientID: String, keepAlive: UInt16, cleanSession: Bool, into buffer: inout ByteBuffer) {
        let id = Array(clientID.utf8)
        // Variable header: protocol name (6), level (1), flags (1), keep-alive (2); payload: client id.
        let remaining = 10 + 2 + id.count
        buffer.writeInteger(UInt8(0x10))
        writeVarint(remaining, into: &buffer)
        writeString(Array("MQTT".utf8), into: &buffer)
        buffer.writeInteger(UInt8(4))
        buffer.writeInteger(UInt8(cleanSession ? 0x02 : 0x00))
        buffer.writeInteger(keepAlive)
        writeString(id, into: &buffer)
    }

    static func writeSubscribe(packetID: UInt16, topicFilter: String, qos: UInt8, into buffer: inout ByteBuffer) {
        let filter = Array(topicFilter.utf8)
        buffer.writeInteger(UInt8(0x82))
        writeVarint(2 + 2 + filter.count + 1, into: &buffer)
        buffer.writeInteger(packetID)
        writeString(filter, into: &buffer)
        buffer.writeInteger(qos)
    }

    @inline(__always)
    static func writePubAck(packetID: UInt16, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(0x4002_0000) | UInt32(packetID))
    }

    static func writePingReq(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(0xC000))
    }

    static func writeDisconnect(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(0xE000))
    }
}

/// Payload layout of the load tool's messages, where the payload is large enough:
/// bytes 0..<8 the run tag (so that a subscriber counts only this run's messages, not a previous run's backlog still
/// flowing through the broker), bytes 8..<16 the send time in monotonic nanoseconds (latency scenario); both
/// little-endian. The rest is filler.
enum LoadPayload {
    static let tagOffset = 0
    static let timestampOffset = 8
    static let minimumForTag = 8
    static let minimumForTimestamp = 16
}

/// A PUBLISH packet for one topic and payload size, pre-encoded once; each send copies the bytes and patches only
/// the packet identifier (QoS 1) and the send timestamp (latency).
struct PublishTemplate {
    let frame: [UInt8]
    /// Offset of the packet identifier in `frame`, or nil for QoS 0.
    let packetIDOffset: Int?
    /// Offset of the first payload byte in `frame`.
    let payloadOffset: Int

    init(topic: String, qos: UInt8, payloadSize: Int, tag: UInt64) {
        let topicBytes = Array(topic.utf8)
        let remaining = 2 + topicBytes.count + (qos > 0 ? 2 : 0) + payloadSize
        var buffer = ByteBuffer()
        buffer.reserveCapacity(1 + MQTTWire.varintSize(remaining) + remaining)
        buffer.writeInteger(UInt8(0x30) | (qos << 1))
        MQTTWire.writeVarint(remaining, into: &buffer)
        MQTTWire.writeString(topicBytes, into: &buffer)
        if qos > 0 {
            self.packetIDOffset = buffer.writerIndex
            buffer.writeInteger(UInt16(0))
        } else {
            self.packetIDOffset = nil
        }
        self.payloadOffset = buffer.writerIndex
        for index in 0..<payloadSize {
            buffer.writeInteger(UInt8(truncatingIfNeeded: 0x61 + index % 26))
        }
        if payloadSize >= LoadPayload.minimumForTag {
            buffer.setInteger(tag, at: payloadOffset + LoadPayload.tagOffset, endianness: .little)
        }
        self.frame = buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    var size: Int { frame.count }
    var payloadSize: Int { frame.count - payloadOffset }

    /// Appends one PUBLISH, with `packetID` (QoS 1) and `timestamp` (if given and the payload has room for it).
    @inline(__always)
    func write(into buffer: inout ByteBuffer, packetID: UInt16 = 0, timestamp: UInt64? = nil) {
        let start = buffer.writerIndex
        buffer.writeBytes(frame)
        if let offset = packetIDOffset {
            buffer.setInteger(packetID, at: start + offset)
        }
        if let timestamp, payloadSize >= LoadPayload.minimumForTimestamp {
            buffer.setInteger(
                timestamp, at: start + payloadOffset + LoadPayload.timestampOffset, endianness: .little
            )
        }
    }
}

/// One complete frame located inside a buffer: its first byte and where its body lies.
struct MQTTFrame {
    var typeAndFlags: UInt8
    var bodyIndex: Int
    var bodyLength: Int

    var type: UInt8 { typeAndFlags >> 4 }
    var flags: UInt8 { typeAndFlags & 0x0F }
}

enum MQTTFrameError: Error, CustomStringConvertible {
    case malformedRemainingLength

    var description: String { "malformed remaining length" }
}

/// Reassembles frames split across reads. Complete frames are reported in place, without copying; only a trailing
/// partial frame is kept over to the next read.
struct FrameAccumulator {
    private var pending: ByteBuffer?

    /// Calls `onFrame` for every complete frame in the bytes seen so far plus `incoming`.
    @inline(__always)
    mutating func feed(_ incoming: inout ByteBuffer, _ onFrame: (MQTTFrame, inout ByteBuffer) throws -> Void) throws {
        if var buffer = pending {
            pending = nil
            buffer.writeBuffer(&incoming)
            try Self.parse(&buffer, onFrame)
            if buffer.readableBytes > 0 {
                buffer.discardReadBytes()
                pending = buffer
            }
        } else {
            try Self.parse(&incoming, onFrame)
            if incoming.readableBytes > 0 {
                pending = incoming
            }
        }
    }

    @inline(__always)
    private static func parse(
        _ buffer: inout ByteBuffer,
        _ onFrame: (MQTTFrame, inout ByteBuffer) throws -> Void
    ) throws {
        while true {
            let start = buffer.readerIndex
            let available = buffer.readableBytes
            guard available >= 2, let first = buffer.getInteger(at: start, as: UInt8.self) else { return }
            var length = 0
            var shift = 0
            var headerLength = 1
            while true {
                guard headerLength < available, let byte = buffer.getInteger(at: start + headerLength, as: UInt8.self)
                else { return }
                headerLength += 1
                length |= Int(byte & 0x7F) << shift
                if byte & 0x80 == 0 { break }
                shift += 7
                if shift > 21 { throw MQTTFrameError.malformedRemainingLength }
            }
            guard available >= headerLength + length else { return }
            let frame = MQTTFrame(typeAndFlags: first, bodyIndex: start + headerLength, bodyLength: length)
            try onFrame(frame, &buffer)
            buffer.moveReaderIndex(to: start + headerLength + length)
        }
    }
}
