import NIOCore

/// Splits a byte stream into packets.
///
/// The decoder learns the protocol version from CONNECT (a server) or is told it (a client).
/// It checks the size of a frame from its fixed header, before it waits for the body, so an
/// oversized packet is refused without being buffered.
public struct MQTTPacketDecoder: NIOSingleStepByteToMessageDecoder, ByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket

    /// nil until CONNECT has been decoded; a server starts with nil.
    public var protocolVersion: MQTTProtocolVersion?
    /// The largest whole packet (fixed header included) that is accepted.
    public var maximumPacketSize: Int

    public init(protocolVersion: MQTTProtocolVersion? = nil, maximumPacketSize: Int = 268_435_460) {
        self.protocolVersion = protocolVersion
        self.maximumPacketSize = maximumPacketSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        guard let header = try Self.peekFixedHeader(buffer) else { return nil }
        let total = header.headerLength + header.remainingLength
        guard total <= maximumPacketSize else {
            throw MQTTCodecError(.packetTooLarge, "packet of \(total) bytes exceeds the maximum of \(maximumPacketSize)")
        }
        guard buffer.readableBytes >= total else { return nil }
        guard let type = MQTTPacketType(rawValue: header.typeAndFlags >> 4) else {
            buffer.moveReaderIndex(forwardBy: total)
            throw MQTTCodecError.malformed("reserved packet type 0")
        }
        let version: MQTTProtocolVersion
        if let known = protocolVersion {
            version = known
        } else {
            guard type == .connect else {
                throw MQTTCodecError.protocolError("the first packet must be CONNECT, not \(type)")
            }
            version = .v5  // CONNECT carries its own level.
        }
        buffer.moveReaderIndex(forwardBy: header.headerLength)
        var body = buffer.readSlice(length: header.remainingLength)!
        let packet = try MQTTPacket.decode(type: type, flags: header.typeAndFlags & 0x0F, body: &body, version: version)
        if case .connect(let connect) = packet, protocolVersion == nil {
            protocolVersion = connect.protocolVersion
        }
        return packet
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try decode(buffer: &buffer)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let packet = try decode(buffer: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(packet))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }

    struct FixedHeader {
        var typeAndFlags: UInt8
        var remainingLength: Int
        var headerLength: Int
    }

    /// Reads the fixed header without moving the reader index; nil if it is not all there yet.
    static func peekFixedHeader(_ buffer: ByteBuffer) throws -> FixedHeader? {
        let start = buffer.readerIndex
        guard let first = buffer.getInteger(at: start, as: UInt8.self) else { return nil }
        var value = 0
        var multiplier = 1
        for index in 0..<4 {
            guard let byte = buffer.getInteger(at: start + 1 + index, as: UInt8.self) else { return nil }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                return FixedHeader(typeAndFlags: first, remainingLength: value, headerLength: 2 + index)
            }
            multiplier *= 128
        }
        // [MQTT-1.5.5] The remaining length has at most four bytes.
        throw MQTTCodecError.malformed("remaining length longer than 4 bytes")
    }
}

/// Encodes outbound packets for a pipeline. The broker's connection encodes by itself.
public struct MQTTPacketEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MQTTPacket
    public var protocolVersion: MQTTProtocolVersion

    public init(protocolVersion: MQTTProtocolVersion) { self.protocolVersion = protocolVersion }

    public func encode(data: MQTTPacket, out: inout ByteBuffer) throws {
        data.encode(version: protocolVersion, into: &out)
    }
}
