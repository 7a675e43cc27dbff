import NIOCore

/// The packet, or will, that a property list belongs to. The spec allows each property on a
/// fixed set of these (MQTT 5 section 2.2.2.2).
public enum PropertyContext: Sendable, Hashable {
    case connect, connack, publish, will, puback, pubrec, pubrel, pubcomp, subscribe, suback, unsubscribe,
        unsuback, disconnect, auth
}

/// The identifiers and wire types of every MQTT 5 property.
enum PropertyID: UInt8, CaseIterable {
    case payloadFormatIndicator = 0x01
    case messageExpiryInterval = 0x02
    case contentType = 0x03
    case responseTopic = 0x08
    case correlationData = 0x09
    case subscriptionIdentifier = 0x0B
    case sessionExpiryInterval = 0x11
    case assignedClientIdentifier = 0x12
    case serverKeepAlive = 0x13
    case authenticationMethod = 0x15
    case authenticationData = 0x16
    case requestProblemInformation = 0x17
    case willDelayInterval = 0x18
    case requestResponseInformation = 0x19
    case responseInformation = 0x1A
    case serverReference = 0x1C
    case reasonString = 0x1F
    case receiveMaximum = 0x21
    case topicAliasMaximum = 0x22
    case topicAlias = 0x23
    case maximumQoS = 0x24
    case retainAvailable = 0x25
    case userProperty = 0x26
    case maximumPacketSize = 0x27
    case wildcardSubscriptionAvailable = 0x28
    case subscriptionIdentifierAvailable = 0x29
    case sharedSubscriptionAvailable = 0x2A

    func isAllowed(in context: PropertyContext) -> Bool {
        switch self {
        case .userProperty: return true
        case .payloadFormatIndicator, .messageExpiryInterval, .contentType, .responseTopic, .correlationData:
            return context == .publish || context == .will
        case .subscriptionIdentifier: return context == .publish || context == .subscribe
        case .sessionExpiryInterval: return context == .connect || context == .connack || context == .disconnect
        case .assignedClientIdentifier, .serverKeepAlive, .responseInformation, .maximumQoS, .retainAvailable,
            .wildcardSubscriptionAvailable, .subscriptionIdentifierAvailable, .sharedSubscriptionAvailable:
            return context == .connack
        case .authenticationMethod, .authenticationData:
            return context == .connect || context == .connack || context == .auth
        case .requestProblemInformation, .requestResponseInformation: return context == .connect
        case .willDelayInterval: return context == .will
        case .serverReference: return context == .connack || context == .disconnect
        case .reasonString:
            switch context {
            case .connect, .publish, .will, .subscribe, .unsubscribe: return false
            default: return true
            }
        case .receiveMaximum, .topicAliasMaximum, .maximumPacketSize: return context == .connect || context == .connack
        case .topicAlias: return context == .publish
        }
    }
}

/// The MQTT 5 properties of one packet. Each field has the spec's type; absent means not sent.
/// `subscriptionIdentifiers` and `userProperties` are the only ones that may repeat.
public struct MQTTProperties: Sendable, Hashable {
    public var payloadFormatIndicator: UInt8?
    public var messageExpiryInterval: UInt32?
    public var contentType: String?
    public var responseTopic: String?
    public var correlationData: ByteBuffer?
    public var subscriptionIdentifiers: [Int] = []
    public var sessionExpiryInterval: UInt32?
    public var assignedClientIdentifier: String?
    public var serverKeepAlive: UInt16?
    public var authenticationMethod: String?
    public var authenticationData: ByteBuffer?
    public var requestProblemInformation: UInt8?
    public var willDelayInterval: UInt32?
    public var requestResponseInformation: UInt8?
    public var responseInformation: String?
    public var serverReference: String?
    public var reasonString: String?
    public var receiveMaximum: UInt16?
    public var topicAliasMaximum: UInt16?
    public var topicAlias: UInt16?
    public var maximumQoS: UInt8?
    public var retainAvailable: UInt8?
    public var userProperties: [UserProperty] = []
    public var maximumPacketSize: UInt32?
    public var wildcardSubscriptionAvailable: UInt8?
    public var subscriptionIdentifierAvailable: UInt8?
    public var sharedSubscriptionAvailable: UInt8?

    public init() {}

    public var isEmpty: Bool { self == MQTTProperties() }

    public struct UserProperty: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }
}

extension MQTTProperties {
    /// Reads a property length and the properties that follow, checking each against `context`.
    static func decode(from buffer: inout ByteBuffer, context: PropertyContext) throws -> MQTTProperties {
        let length = try buffer.readMQTTVariableInteger()
        guard var slice = buffer.readSlice(length: length) else {
            throw MQTTCodecError.malformed("property length exceeds the packet")
        }
        var properties = MQTTProperties()
        var seen: Set<UInt8> = []
        while slice.readableBytes > 0 {
            let identifier = try slice.readMQTTVariableInteger()
            guard identifier <= 0x7F, let id = PropertyID(rawValue: UInt8(identifier)) else {
                throw MQTTCodecError.malformed("unknown property identifier 0x\(String(identifier, radix: 16))")
            }
            guard id.isAllowed(in: context) else {
                throw MQTTCodecError.malformed("property 0x\(String(id.rawValue, radix: 16)) is not allowed on \(context)")
            }
            if id != .userProperty && !(id == .subscriptionIdentifier && context == .publish) {
                guard seen.insert(id.rawValue).inserted else {
                    throw MQTTCodecError.protocolError("property 0x\(String(id.rawValue, radix: 16)) appears twice")
                }
            }
            try properties.read(id, from: &slice, context: context)
        }
        return properties
    }

    private mutating func read(_ id: PropertyID, from buffer: inout ByteBuffer, context: PropertyContext) throws {
        func flag() throws -> UInt8 {
            let value = try buffer.readMQTTByte()
            guard value <= 1 else { throw MQTTCodecError.protocolError("property 0x\(String(id.rawValue, radix: 16)) must be 0 or 1") }
            return value
        }
        switch id {
        case .payloadFormatIndicator: payloadFormatIndicator = try flag()
        case .messageExpiryInterval: messageExpiryInterval = try buffer.readMQTTUInt32()
        case .contentType: contentType = try buffer.readMQTTString()
        case .responseTopic:
            let topic = try buffer.readMQTTString()
            guard TopicName.isValid(topic) else { throw MQTTCodecError.protocolError("response topic is not a valid topic name") }
            responseTopic = topic
        case .correlationData: correlationData = try buffer.readMQTTBinary()
        case .subscriptionIdentifier:
            let value = try buffer.readMQTTVariableInteger()
            guard value > 0 else { throw MQTTCodecError.protocolError("subscription identifier 0") }
            subscriptionIdentifiers.append(value)
        case .sessionExpiryInterval: sessionExpiryInterval = try buffer.readMQTTUInt32()
        case .assignedClientIdentifier: assignedClientIdentifier = try buffer.readMQTTString()
        case .serverKeepAlive: serverKeepAlive = try buffer.readMQTTUInt16()
        case .authenticationMethod: authenticationMethod = try buffer.readMQTTString()
        case .authenticationData: authenticationData = try buffer.readMQTTBinary()
        case .requestProblemInformation: requestProblemInformation = try flag()
        case .willDelayInterval: willDelayInterval = try buffer.readMQTTUInt32()
        case .requestResponseInformation: requestResponseInformation = try flag()
        case .responseInformation: responseInformation = try buffer.readMQTTString()
        case .serverReference: serverReference = try buffer.readMQTTString()
        case .reasonString: reasonString = try buffer.readMQTTString()
        case .receiveMaximum:
            let value = try buffer.readMQTTUInt16()
            guard value > 0 else { throw MQTTCodecError.protocolError("receive maximum 0") }
            receiveMaximum = value
        case .topicAliasMaximum: topicAliasMaximum = try buffer.readMQTTUInt16()
        case .topicAlias:
            let value = try buffer.readMQTTUInt16()
            guard value > 0 else { throw MQTTCodecError.protocolError("topic alias 0") }
            topicAlias = value
        case .maximumQoS:
            let value = try buffer.readMQTTByte()
            guard value <= 1 else { throw MQTTCodecError.protocolError("maximum QoS must be 0 or 1") }
            maximumQoS = value
        case .retainAvailable: retainAvailable = try flag()
        case .userProperty:
            let name = try buffer.readMQTTString()
            let value = try buffer.readMQTTString()
            userProperties.append(.init(name: name, value: value))
        case .maximumPacketSize:
            let value = try buffer.readMQTTUInt32()
            guard value > 0 else { throw MQTTCodecError.protocolError("maximum packet size 0") }
            maximumPacketSize = value
        case .wildcardSubscriptionAvailable: wildcardSubscriptionAvailable = try flag()
        case .subscriptionIdentifierAvailable: subscriptionIdentifierAvailable = try flag()
        case .sharedSubscriptionAvailable: sharedSubscriptionAvailable = try flag()
        }
    }

    /// The encoded length of the properties, without the length prefix.
    public var encodedLength: Int {
        if isEmpty { return 0 }
        var length = 0
        if payloadFormatIndicator != nil { length += 2 }
        if messageExpiryInterval != nil { length += 5 }
        if let contentType { length += 1 + MQTTSize.string(contentType) }
        if let responseTopic { length += 1 + MQTTSize.string(responseTopic) }
        if let correlationData { length += 1 + MQTTSize.binary(correlationData) }
        for id in subscriptionIdentifiers { length += 1 + MQTTSize.variableInteger(id) }
        if sessionExpiryInterval != nil { length += 5 }
        if let assignedClientIdentifier { length += 1 + MQTTSize.string(assignedClientIdentifier) }
        if serverKeepAlive != nil { length += 3 }
        if let authenticationMethod { length += 1 + MQTTSize.string(authenticationMethod) }
        if let authenticationData { length += 1 + MQTTSize.binary(authenticationData) }
        if requestProblemInformation != nil { length += 2 }
        if willDelayInterval != nil { length += 5 }
        if requestResponseInformation != nil { length += 2 }
        if let responseInformation { length += 1 + MQTTSize.string(responseInformation) }
        if let serverReference { length += 1 + MQTTSize.string(serverReference) }
        if let reasonString { length += 1 + MQTTSize.string(reasonString) }
        if receiveMaximum != nil { length += 3 }
        if topicAliasMaximum != nil { length += 3 }
        if topicAlias != nil { length += 3 }
        if maximumQoS != nil { length += 2 }
        if retainAvailable != nil { length += 2 }
        for property in userProperties { length += 1 + MQTTSize.string(property.name) + MQTTSize.string(property.value) }
        if maximumPacketSize != nil { length += 5 }
        if wildcardSubscriptionAvailable != nil { length += 2 }
        if subscriptionIdentifierAvailable != nil { length += 2 }
        if sharedSubscriptionAvailable != nil { length += 2 }
        return length
    }

    /// The whole property section: the length prefix and the properties.
    public var encodedSectionLength: Int {
        let length = encodedLength
        return MQTTSize.variableInteger(length) + length
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeMQTTVariableInteger(encodedLength)
        if isEmpty { return }
        func id(_ id: PropertyID) { buffer.writeInteger(id.rawValue) }
        if let payloadFormatIndicator { id(.payloadFormatIndicator); buffer.writeInteger(payloadFormatIndicator) }
        if let messageExpiryInterval { id(.messageExpiryInterval); buffer.writeInteger(messageExpiryInterval) }
        if let contentType { id(.contentType); buffer.writeMQTTString(contentType) }
        if let responseTopic { id(.responseTopic); buffer.writeMQTTString(responseTopic) }
        if let correlationData { id(.correlationData); buffer.writeMQTTBinary(correlationData) }
        for value in subscriptionIdentifiers { id(.subscriptionIdentifier); buffer.writeMQTTVariableInteger(value) }
        if let sessionExpiryInterval { id(.sessionExpiryInterval); buffer.writeInteger(sessionExpiryInterval) }
        if let assignedClientIdentifier { id(.assignedClientIdentifier); buffer.writeMQTTString(assignedClientIdentifier) }
        if let serverKeepAlive { id(.serverKeepAlive); buffer.writeInteger(serverKeepAlive) }
        if let authenticationMethod { id(.authenticationMethod); buffer.writeMQTTString(authenticationMethod) }
        if let authenticationData { id(.authenticationData); buffer.writeMQTTBinary(authenticationData) }
        if let requestProblemInformation { id(.requestProblemInformation); buffer.writeInteger(requestProblemInformation) }
        if let willDelayInterval { id(.willDelayInterval); buffer.writeInteger(willDelayInterval) }
        if let requestResponseInformation { id(.requestResponseInformation); buffer.writeInteger(requestResponseInformation) }
        if let responseInformation { id(.responseInformation); buffer.writeMQTTString(responseInformation) }
        if let serverReference { id(.serverReference); buffer.writeMQTTString(serverReference) }
        if let reasonString { id(.reasonString); buffer.writeMQTTString(reasonString) }
        if let receiveMaximum { id(.receiveMaximum); buffer.writeInteger(receiveMaximum) }
        if let topicAliasMaximum { id(.topicAliasMaximum); buffer.writeInteger(topicAliasMaximum) }
        if let topicAlias { id(.topicAlias); buffer.writeInteger(topicAlias) }
        if let maximumQoS { id(.maximumQoS); buffer.writeInteger(maximumQoS) }
        if let retainAvailable { id(.retainAvailable); buffer.writeInteger(retainAvailable) }
        for property in userProperties {
            id(.userProperty)
            buffer.writeMQTTString(property.name)
            buffer.writeMQTTString(property.value)
        }
        if let maximumPacketSize { id(.maximumPacketSize); buffer.writeInteger(maximumPacketSize) }
        if let wildcardSubscriptionAvailable { id(.wildcardSubscriptionAvailable); buffer.writeInteger(wildcardSubscriptionAvailable) }
        if let subscriptionIdentifierAvailable { id(.subscriptionIdentifierAvailable); buffer.writeInteger(subscriptionIdentifierAvailable) }
        if let sharedSubscriptionAvailable { id(.sharedSubscriptionAvailable); buffer.writeInteger(sharedSubscriptionAvailable) }
    }
}

extension MQTTProperties {
    /// The properties in MQTT 5 wire format (length prefix included), e.g. for storage.
    public func serialized() -> ByteBuffer {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return buffer
    }

    /// Reads properties written by ``serialized()``, checked against `context`.
    public init(serialized buffer: ByteBuffer, context: PropertyContext) throws {
        var buffer = buffer
        self = try MQTTProperties.decode(from: &buffer, context: context)
    }
}
