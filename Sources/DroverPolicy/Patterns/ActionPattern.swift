/// One entry of a statement's `Action`: `iot:Publish`, `iot:*`, `iot:Pub*`, `iot:?onnect`.
///
/// Any `iot:` name is accepted, not only the MQTT actions, because AWS IoT policies also name
/// data-plane actions (`iot:UpdateThingShadow`) that TestAuthorization may ask about. Other
/// services' actions (`s3:GetObject`) and a bare `*` are refused: a policy attached to a device
/// certificate can only ever grant IoT actions, and a pattern that could never match is a
/// mistake worth reporting. Matching is case-sensitive.
public struct ActionPattern: Hashable, Sendable, CustomStringConvertible {
    /// The pattern as written in the policy.
    public let text: String
    let pattern: CompiledPattern

    /// Compiles `text`, or returns nil when it is not `iot:` followed by letters, `*` and `?`.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        let prefix = Array("iot:".utf8)
        guard bytes.count > prefix.count, bytes.starts(with: prefix) else { return nil }
        var segments: [CompiledPattern.Piece] = []
        for byte in bytes[prefix.count...] {
            switch byte {
            case UInt8(ascii: "*"): segments.append(.anyRun)
            case UInt8(ascii: "?"): segments.append(.anyCharacter)
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                segments.append(.literal([byte]))
            default: return nil
            }
        }
        self.text = text
        self.pattern = CompiledPattern([.literal(prefix)] + segments)
    }

    public func matches(_ action: PolicyAction) -> Bool {
        var raw = action.rawValue
        return raw.withUTF8 { matches(utf8: $0) }
    }

    func matches(utf8 action: UnsafeBufferPointer<UInt8>) -> Bool {
        pattern.matches(action)
    }

    public var description: String { text }
}
