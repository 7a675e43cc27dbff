import NIOCore

/// CONNECT, spec section 3.1.
public struct ConnectPacket: Sendable, Hashable {
    public var protocolVersion: MQTTProtocolVersion
    public var clientId: String
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var username: String?
    public var password: ByteBuffer?
    public var will: Will?
    public var properties: MQTTProperties

    public struct Will: Sendable, Hashable {
        public var topic: String
        public var payload: ByteBuffer
        public var qos: MQTTQoS
        public var retain: Bool
        public var properties: MQTTProperties

        public init(topic: String, payload: ByteBuffer, qos: MQTTQoS, retain: Bool, properties: MQTTProperties = .init()) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.properties = properties
        }
    }

    public init(
        protocolVersion: MQTTProtocolVersion,
        clientId: String,
        cleanStart: Bool = true,
        keepAlive: UInt16 = 60,
        username: String? = nil,
        password: ByteBuffer? = nil,
        will: Will? = nil,
        properties: MQTTProperties = .init()
    ) {
        self.protocolVersion = protocolVersion
        self.clientId = clientId
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
    }

    static func decode(from buffer: inout ByteBuffer) throws -> ConnectPacket {
        let name = try buffer.readMQTTString()
        let level = try buffer.readMQTTByte()
        // [MQTT-3.1.2-1] / [MQTT-3.1.2-2]: an unknown name or level gets CONNACK 0x84 (0x01 in 3.1.1).
        guard name == "MQTT" || name == "MQIsdp" else {
            throw MQTTCodecError(.unsupportedProtocolVersion, "unknown protocol name \(name)")
        }
        guard name == "MQTT", let version = MQTTProtocolVersion(rawValue: level) else {
            throw MQTTCodecError(.unsupportedProtocolVersion, "unsupported protocol level \(level)")
        }
        let flags = try buffer.readMQTTByte()
        // [MQTT-3.1.2-3] The reserved flag must be 0.
        guard flags & 0x01 == 0 else { throw MQTTCodecError.malformed("CONNECT reserved flag is set") }
        let cleanStart = flags & 0x02 != 0
        let willFlag = flags & 0x04 != 0
        let willQoSRaw = (flags >> 3) & 0x03
        let willRetain = flags & 0x20 != 0
        let passwordFlag = flags & 0x40 != 0
        let usernameFlag = flags & 0x80 != 0
        guard willQoSRaw != 3 else { throw MQTTCodecError.malformed("will QoS 3") }
        if !willFlag {
            // [MQTT-3.1.2-11] [MQTT-3.1.2-13] Without a will, will QoS and retain are 0.
            guard willQoSRaw == 0, !willRetain else { throw MQTTCodecError.malformed("will QoS or retain without will flag") }
        }
        if version == .v311 && passwordFlag && !usernameFlag {
            // [MQTT-3.1.2-22]
            throw MQTTCodecError.malformed("password without user name")
        }
        let keepAlive = try buffer.readMQTTUInt16()
        let properties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .connect) : MQTTProperties()
        let clientId = try buffer.readMQTTString()
        var will: Will?
        if willFlag {
            let willProperties = version == .v5 ? try MQTTProperties.decode(from: &buffer, context: .will) : MQTTProperties()
            let topic = try buffer.readMQTTString()
            guard TopicName.isValid(topic) else { throw MQTTCodecError.malformed("will topic is not a valid topic name") }
            let payload = try buffer.readMQTTBinary()
            will = Will(topic: topic, payload: payload, qos: MQTTQoS(rawValue: willQoSRaw)!, retain: willRetain,
                        properties: willProperties)
        }
        let username = usernameFlag ? try buffer.readMQTTString() : nil
        let password = passwordFlag ? try buffer.readMQTTBinary() : nil
        return ConnectPacket(
            protocolVersion: version, clientId: clientId, cleanStart: cleanStart, keepAlive: keepAlive,
            username: username, password: password, will: will, properties: properties)
    }

    func encodeBody(into buffer: inout ByteBuffer) {
        buffer.writeMQTTString("MQTT")
        buffer.writeInteger(protocolVersion.rawValue)
        var flags: UInt8 = 0
        if cleanStart { flags |= 0x02 }
        if let will {
            flags |= 0x04 | (will.qos.rawValue << 3)
            if will.retain { flags |= 0x20 }
        }
        if password != nil { flags |= 0x40 }
        if username != nil { flags |= 0x80 }
        buffer.writeInteger(flags)
        buffer.writeInteger(keepAlive)
        if protocolVersion == .v5 { properties.write(to: &buffer) }
        buffer.writeMQTTString(clientId)
        if let will {
            if protocolVersion == .v5 { will.properties.write(to: &buffer) }
            buffer.writeMQTTString(will.topic)
            buffer.writeMQTTBinary(will.payload)
        }
        if let username { buffer.writeMQTTString(username) }
        if let password { buffer.writeMQTTBinary(password) }
    }
}
