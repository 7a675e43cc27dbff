/// # MQTTCodec
///
/// Bytes to packets and back, for MQTT 3.1.1 and 5.0. The codec does no I/O and holds no policy.
///
/// Invariants:
/// - A decoder never consumes part of a frame: it either returns a whole packet and moves the reader
///   index past it, or leaves the buffer untouched.
/// - Every malformed input throws ``MQTTCodecError`` carrying the MQTT 5 reason code that the
///   connection must send (0x81 malformed, 0x82 protocol error, 0x95 packet too large, ...).
/// - MQTT 5 properties are checked against the packet they arrive on: a property the spec does
///   not allow there, or a duplicate of a single-valued one, fails to decode.
public enum MQTTCodecNamespace {}

/// The protocol level from CONNECT.
public enum MQTTProtocolVersion: UInt8, Sendable, Hashable, CustomStringConvertible {
    case v311 = 4
    case v5 = 5

    public var description: String { self == .v5 ? "5.0" : "3.1.1" }
}

public enum MQTTQoS: UInt8, Sendable, Hashable, Comparable, Codable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A decoding failure. It carries the reason code that the connection sends before closing.
public struct MQTTCodecError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reasonCode: ReasonCode
    public var message: String

    public init(_ reasonCode: ReasonCode, _ message: String) {
        self.reasonCode = reasonCode
        self.message = message
    }

    public static func malformed(_ message: String) -> MQTTCodecError { .init(.malformedPacket, message) }
    public static func protocolError(_ message: String) -> MQTTCodecError { .init(.protocolError, message) }

    public var description: String { "\(reasonCode) \(message)" }
}
