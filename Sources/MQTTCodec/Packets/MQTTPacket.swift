import NIOCore

/// The control packet types of MQTT 5.0 (all 15) and 3.1.1 (the 14 without AUTH).
public enum MQTTPacketType: UInt8, Sendable, Hashable {
    case connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe, unsuback,
        pingreq, pingresp, disconnect, auth
}

/// One MQTT control packet.
public enum MQTTPacket: Sendable, Hashable {
    case connect(ConnectPacket)
    case connack(ConnAckPacket)
    case publish(PublishPacket)
    case puback(PublishAckPacket)
    case pubrec(PublishAckPacket)
    case pubrel(PublishAckPacket)
    case pubcomp(PublishAckPacket)
    case subscribe(SubscribePacket)
    case suback(SubAckPacket)
    case unsubscribe(UnsubscribePacket)
    case unsuback(UnsubAckPacket)
    case pingreq
    case pingresp
    case disconnect(DisconnectPacket)
    case auth(AuthPacket)

    public var type: MQTTPacketType {
        switch self {
        case .connect: .connect
        case .connack: .connack
        case .publish: .publish
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .subscribe: .subscribe
        case .suback: .suback
        case .unsubscribe: .unsubscribe
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        case .auth: .auth
        }
    }
}

extension MQTTPacket {
    /// Decodes the body of one packet whose fixed header has been read.
    /// `version` is nil until CONNECT has been seen; only CONNECT may come first.
    static func decode(
        type: MQTTPacketType,
        flags: UInt8,
        body: inout ByteBuffer,
        version: MQTTProtocolVersion
    ) throws -> MQTTPacket {
        func requireFlags(_ expected: UInt8) throws {
            guard flags == expected else {
                throw MQTTCodecError.malformed("invalid fixed header flags for \(type)")
            }
        }
        let packet: MQTTPacket
        switch type {
        case .connect:
            try requireFlags(0)
            packet = .connect(try ConnectPacket.decode(from: &body))
        case .connack:
            try requireFlags(0)
            packet = .connack(try ConnAckPacket.decode(from: &body, version: version))
        case .publish:
            packet = .publish(try PublishPacket.decode(flags: flags, from: &body, version: version))
        case .puback:
            try requireFlags(0)
            packet = .puback(try PublishAckPacket.decode(from: &body, version: version, context: .puback))
        case .pubrec:
            try requireFlags(0)
            packet = .pubrec(try PublishAckPacket.decode(from: &body, version: version, context: .pubrec))
        case .pubrel:
            try requireFlags(0b0010)
            packet = .pubrel(try PublishAckPacket.decode(from: &body, version: version, context: .pubrel))
        case .pubcomp:
            try requireFlags(0)
            packet = .pubcomp(try PublishAckPacket.decode(from: &body, version: version, context: .pubcomp))
        case .subscribe:
            try requireFlags(0b0010)
            packet = .subscribe(try SubscribePacket.decode(from: &body, version: version))
        case .suback:
            try requireFlags(0)
            packet = .suback(try SubAckPacket.decode(from: &body, version: version))
        case .unsubscribe:
            try requireFlags(0b0010)
            packet = .unsubscribe(try UnsubscribePacket.decode(from: &body, version: version))
        case .unsuback:
            try requireFlags(0)
            packet = .unsuback(try UnsubAckPacket.decode(from: &body, version: version))
        case .pingreq:
            try requireFlags(0)
            packet = .pingreq
        case .pingresp:
            try requireFlags(0)
            packet = .pingresp
        case .disconnect:
            try requireFlags(0)
            packet = .disconnect(try DisconnectPacket.decode(from: &body, version: version))
        case .auth:
            try requireFlags(0)
            guard version == .v5 else { throw MQTTCodecError.malformed("AUTH does not exist in MQTT 3.1.1") }
            packet = .auth(try AuthPacket.decode(from: &body))
        }
        guard body.readableBytes == 0 else {
            throw MQTTCodecError.malformed("\(type) has \(body.readableBytes) unexpected trailing bytes")
        }
        return packet
    }

    /// Appends the whole packet (fixed header and body) to `buffer`.
    public func encode(version: MQTTProtocolVersion, into buffer: inout ByteBuffer) {
        switch self {
        case .publish(let publish):
            publish.encode(version: version, into: &buffer)
        case .pingreq:
            buffer.writeInteger(UInt8(0xC0))
            buffer.writeInteger(UInt8(0))
        case .pingresp:
            buffer.writeInteger(UInt8(0xD0))
            buffer.writeInteger(UInt8(0))
        default:
            var body = ByteBufferAllocator().buffer(capacity: 64)
            let flags: UInt8
            switch self {
            case .connect(let p): p.encodeBody(into: &body); flags = 0
            case .connack(let p): p.encodeBody(version: version, into: &body); flags = 0
            case .puback(let p), .pubrec(let p), .pubcomp(let p): p.encodeBody(version: version, into: &body); flags = 0
            case .pubrel(let p): p.encodeBody(version: version, into: &body); flags = 0b0010
            case .subscribe(let p): p.encodeBody(version: version, into: &body); flags = 0b0010
            case .suback(let p): p.encodeBody(version: version, into: &body); flags = 0
            case .unsubscribe(let p): p.encodeBody(version: version, into: &body); flags = 0b0010
            case .unsuback(let p): p.encodeBody(version: version, into: &body); flags = 0
            case .disconnect(let p): p.encodeBody(version: version, into: &body); flags = 0
            case .auth(let p): p.encodeBody(into: &body); flags = 0
            case .publish, .pingreq, .pingresp: preconditionFailure("handled above")
            }
            buffer.writeInteger(type.rawValue << 4 | flags)
            buffer.writeMQTTVariableInteger(body.readableBytes)
            buffer.writeBuffer(&body)
        }
    }
}
