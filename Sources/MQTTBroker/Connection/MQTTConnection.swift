import Logging
import MQTTCodec
import NIOCore

/// One client connection: the MQTT protocol between the transport and the broker.
///
/// `@unchecked Sendable`: every method except `scheduleDrain`, `takeOver` and
/// `serverDisconnect` runs on `eventLoop`, and those three only hop onto it.
public final class MQTTConnection: @unchecked Sendable {
    enum State { case awaitingConnect, authenticating, connected, closed }

    public let eventLoop: any EventLoop
    let broker: Broker
    let listener: ListenerInfo
    let remoteAddress: String?
    public var peerCertificate: [UInt8]?
    /// The access key that signed the WebSocket upgrade (SigV4), if one did.
    public var signedAccessKeyId: String?
    private let allocator: ByteBufferAllocator
    private var transport: (any MQTTTransport)?

    private var state = State.awaitingConnect
    private var decoder: MQTTPacketDecoder
    /// Bytes of a packet not complete yet; nil between packets, so an idle connection keeps no
    /// read buffer alive.
    private var inbound: ByteBuffer?
    private var version = MQTTProtocolVersion.v311
    private var session: Session?
    private var identity: ClientIdentity?
    /// The authenticated identity; read on the connection's loop only.
    var currentIdentity: ClientIdentity? { identity }
    private var clientId = ""
    private var pending: [MQTTPacket] = []
    private var out: ByteBuffer
    private var admitted = false
    private var cleanedUp = false
    /// Counted in the broker's connections that have not been accepted yet.
    private var countedPending = false
    /// Made on demand by `serverDisconnect`, fulfilled when the transport is gone.
    private var closedPromise: EventLoopPromise<Void>?

    // Will: kept as sent, and made a message when it is published, so its expiry starts then.
    // Boxed: the will and its properties are large, and most connections have none.
    private final class WillBox {
        let will: ConnectPacket.Will
        init(_ will: ConnectPacket.Will) { self.will = will }
    }
    private var will: WillBox?
    private var willDelay: UInt32 = 0
    private var publishWillOnClose = true

    // Keep-alive
    private var keepAlive: UInt16 = 0
    private var lastActivity: NIODeadline
    private var keepAliveRegistered = false
    private var connectTimeoutTask: Scheduled<Void>?

    // What the client asked for in CONNECT.
    private var clientReceiveMaximum = 65_535
    private var clientMaximumPacketSize = Int.max
    private var clientTopicAliasMaximum: UInt16 = 0
    private var requestProblemInformation = true

    // Topic aliases: inbound (the client's) and outbound (ours, bounded by the client).
    private var inboundAliases: [UInt16: String] = [:]
    private var outboundAliases: [String: UInt16] = [:]

    /// The publishes of the current read, delivered together when the read is done.
    private var batch = PublishBatch()
    /// Subscriber connections that this read gave something to send, and whether each needs a
    /// hop scheduled; drained when the read ends.
    private var wakes: [(MQTTConnection, Bool)] = []

    /// Inbound QoS 1 publishes not yet acknowledged (routed in this read, or waiting on the
    /// store). QoS 2 ones are counted by the session's inbound set from receipt to PUBREL.
    private var pendingQoS1 = 0
    /// QoS 1/2 publishes routed and waiting for the store before their acknowledgement.
    private var awaitingAck = 0
    /// An MQTT 3.1.1 publisher (which knows no Receive Maximum) got ahead of the store by
    /// `receiveMaximum` messages: reading pauses until half of them are acknowledged.
    private var flowPaused = false
    private var waitingForWritability = false

    public init(
        broker: Broker, eventLoop: any EventLoop, allocator: ByteBufferAllocator, listener: ListenerInfo,
        remoteAddress: String?, transport: any MQTTTransport
    ) {
        self.broker = broker
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.listener = listener
        self.remoteAddress = remoteAddress
        self.transport = transport
        // Until CONNECT is accepted only the CONNECT itself may come, within its own bound.
        self.decoder = MQTTPacketDecoder(
            maximumPacketSize: min(broker.configuration.maxConnectPacketSize, broker.configuration.maxPacketSize))
        self.out = allocator.buffer(capacity: 0)
        self.lastActivity = eventLoop.now
    }

    private var logger: Logger { broker.logger }

    /// Starts the timer for the first CONNECT.
    public func start() {
        guard connectTimeoutTask == nil, state == .awaitingConnect, !countedPending else { return }
        // The broker's own clients are not network connections: no limit, no packet bound.
        if listener == InProcessClient.listener {
            decoder.maximumPacketSize = 268_435_460
        } else if broker.beginPending() {
            countedPending = true
        } else {
            broker.metrics.limitHit(.pendingConnections)
            logger.debug("too many connections waiting for CONNECT", metadata: ["remote": "\(remoteAddress ?? "-")"])
            state = .closed
            transport?.close()
            return
        }
        let timeout = TimeAmount.nanoseconds(Int64(broker.configuration.connectTimeout * 1e9))
        connectTimeoutTask = eventLoop.scheduleTask(in: timeout) { [self] in
            if state == .awaitingConnect {
                logger.debug("no CONNECT in time", metadata: ["remote": "\(remoteAddress ?? "-")"])
                close()
            }
        }
    }

    // MARK: Input

    /// Bytes from the transport.
    public func receive(_ buffer: ByteBuffer) {
        guard state != .closed else { return }
        broker.metrics.bytesReceived.increment(by: buffer.readableBytes)
        lastActivity = eventLoop.now
        var bytes: ByteBuffer
        if var partial = inbound {
            var buffer = buffer
            partial.writeBuffer(&buffer)
            bytes = partial
        } else {
            bytes = buffer
        }
        inbound = nil
        do {
            while state != .closed, let packet = try decoder.decode(buffer: &bytes) {
                if state == .authenticating {
                    // [MQTT-3.1.4-7] Nothing after CONNECT is processed until it is accepted.
                    pending.append(packet)
                    if pending.count > Int(broker.configuration.receiveMaximum) + 16 {
                        throw MQTTCodecError(.receiveMaximumExceeded, "too many packets before CONNACK")
                    }
                    continue
                }
                handle(packet)
            }
            if bytes.readableBytes > 0 && state != .closed {
                bytes.discardReadBytes()
                inbound = bytes
            }
        } catch let error as MQTTCodecError {
            failed(error)
        } catch {
            failed(MQTTCodecError.malformed("\(error)"))
        }
        finishRead()
    }

    /// The connection is no longer waiting for its CONNECT to be accepted.
    private func endPending() {
        guard countedPending else { return }
        countedPending = false
        broker.endPending()
    }

    /// Delivers what the packets just handled published, sends the replies, wakes subscribers.
    private func finishRead() {
        deliverBatch()
        flushPending()
        wakeSubscribers()
    }

    private func deliverBatch() {
        guard !batch.isEmpty else { return }
        var congested: [Session] = []
        // Taken out first: a completion can run inside deliver (a store that commits at once)
        // and close this connection, which delivers the batch again.
        var batch = self.batch
        self.batch = PublishBatch()
        broker.deliver(&batch, wake: { wakes.append(($0, $1)) }, congested: { congested.append($0) })
        if !congested.isEmpty { pauseReading(waitingOn: congested) }
    }

    // MARK: Backpressure

    private var readingPaused = false
    private var resumeTask: Scheduled<Void>?

    /// A subscriber's queue is full of QoS 1/2 messages from us: stop reading until it drains
    /// (or a second has passed), so we do not acknowledge what it would have to drop.
    private func pauseReading(waitingOn sessions: [Session]) {
        let limit = broker.configuration.maxQueuedMessages
        var waiting = false
        for session in sessions where session.addWaiter(self, limit: limit) { waiting = true }
        guard waiting, !readingPaused else { return }
        readingPaused = true
        transport?.setReading(false)
        resumeTask = eventLoop.scheduleTask(in: .seconds(1)) { [self] in resumeReading() }
    }

    /// Called on this connection's loop when a queue it waited on has drained.
    func resumeReading() {
        guard readingPaused else { return }
        readingPaused = false
        resumeTask?.cancel()
        resumeTask = nil
        if state != .closed && !flowPaused { transport?.setReading(true) }
    }

    /// Subscribers on this loop drain now, once per read rather than once per loop iteration, so
    /// a busy loop cannot starve them; subscribers on other loops get one hop each.
    private func wakeSubscribers() {
        guard !wakes.isEmpty else { return }
        let connections = wakes
        wakes.removeAll(keepingCapacity: true)
        for (connection, newlyDue) in connections {
            if connection.eventLoop === eventLoop {
                connection.drain()
            } else if newlyDue {
                connection.scheduleDrain()
            }
        }
    }

    private func handle(_ packet: MQTTPacket) {
        switch state {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                return failed(.protocolError("the first packet must be CONNECT"))
            }
            handleConnect(connect)
        case .connected:
            switch packet {
            case .connect:
                // [MQTT-3.1.0-2] A second CONNECT is a protocol error.
                protocolViolation(.protocolError, "second CONNECT on one connection")
            case .publish(let publish): handlePublish(publish)
            case .puback(let ack): handlePubAck(ack)
            case .pubrec(let ack): handlePubRec(ack)
            case .pubrel(let ack): handlePubRel(ack)
            case .pubcomp(let ack): handlePubComp(ack)
            case .subscribe(let subscribe): handleSubscribe(subscribe)
            case .unsubscribe(let unsubscribe): handleUnsubscribe(unsubscribe)
            case .pingreq: send(.pingresp)
            case .disconnect(let disconnect): handleDisconnect(disconnect)
            case .auth:
                protocolViolation(.protocolError, "AUTH without an authentication method in CONNECT")
            case .connack, .suback, .unsuback, .pingresp:
                protocolViolation(.protocolError, "a client may not send \(packet.type)")
            }
        case .authenticating, .closed:
            break
        }
    }

    // MARK: CONNECT

    private func handleConnect(_ connect: ConnectPacket) {
        connectTimeoutTask?.cancel()
        connectTimeoutTask = nil
        version = connect.protocolVersion
        let properties = connect.properties
        requestProblemInformation = properties.requestProblemInformation != 0
        clientReceiveMaximum = Int(properties.receiveMaximum ?? 65_535)
        clientMaximumPacketSize = properties.maximumPacketSize.map(Int.init) ?? Int.max
        clientTopicAliasMaximum = properties.topicAliasMaximum ?? 0
        if connect.password != nil && connect.username == nil && version == .v311 {
            return refuse(.badUserNameOrPassword, "password without user name")
        }
        var assigned: String?
        clientId = connect.clientId
        let config = broker.configuration
        let isInternal = listener == InProcessClient.listener
        if !isInternal {
            if let problem = Self.clientIdProblem(connect.clientId, maxLength: config.maxClientIdLength) {
                broker.metrics.limitHit(.clientId)
                let quoted = connect.clientId.clipped(toBytes: 64)
                clientId = quoted
                return refuse(.clientIdentifierNotValid, "client id \(quoted) \(problem)")
            }
            let userProperties = properties.userProperties.count + (connect.will?.properties.userProperties.count ?? 0)
            if userProperties > config.maxUserProperties {
                broker.metrics.limitHit(.userProperties)
                return refuse(.quotaExceeded, "more than \(config.maxUserProperties) user properties")
            }
            if let will = connect.will, let limit = broker.topicLimit(will.topic) {
                broker.metrics.limitHit(limit)
                return refuse(.topicNameInvalid, "the will topic is longer than the limits allow")
            }
        }
        if clientId.isEmpty {
            // [MQTT-3.1.3-8] 3.1.1 takes an empty id only with a clean session.
            if version == .v311 && !connect.cleanStart {
                return refuse(.clientIdentifierNotValid, "empty client id needs clean session")
            }
            clientId = "drover-" + (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
            assigned = version == .v5 ? clientId : nil
        }
        let requestedExpiry: UInt32 = version == .v5 ? (properties.sessionExpiryInterval ?? 0) : (connect.cleanStart ? 0 : UInt32.max)
        let expiry = min(requestedExpiry, config.maxSessionExpiry)
        keepAlive = connect.keepAlive
        // [MQTT-3.2.2-21] MQTT 5 clients always learn the keep-alive in force (Server Keep
        // Alive); one that asked for none gets ours, so that no connection idles forever.
        // MQTT 3.1.1 has no way to say so: a larger keep-alive is enforced at the maximum, and 0
        // stays 0 as the spec allows.
        var serverKeepAlive: UInt16?
        if !isInternal && config.maxKeepAlive > 0
            && (keepAlive > config.maxKeepAlive || (keepAlive == 0 && version == .v5)) {
            broker.metrics.limitHit(.keepAlive)
            keepAlive = config.maxKeepAlive
        }
        if version == .v5 && !isInternal { serverKeepAlive = keepAlive }
        if let will = connect.will {
            self.will = WillBox(will)
            willDelay = will.properties.willDelayInterval ?? 0
        }
        endPending()
        guard broker.admit(self) else {
            if broker.isShuttingDown { return refuse(.serverUnavailable, "the server is shutting down") }
            return refuse(.quotaExceeded, "the server has reached its connection limit")
        }
        admitted = true
        state = .authenticating
        let request = AuthenticationRequest(
            clientId: clientId, username: connect.username, password: connect.password, protocolVersion: version,
            listener: listener, remoteAddress: remoteAddress, peerCertificate: peerCertificate,
            signedAccessKeyId: signedAccessKeyId)
        let cleanStart = connect.cleanStart
        let assignedId = assigned
        let keepAliveOverride = serverKeepAlive
        broker.authenticator.authenticate(request, on: eventLoop).hop(to: eventLoop).whenComplete { [self] result in
            switch result {
            case .success(.allow(let principal, let attributes)):
                finishConnect(
                    identity: ClientIdentity(clientId: clientId, username: connect.username, listener: listener,
                                             principal: principal, attributes: attributes),
                    cleanStart: cleanStart, expiry: expiry, requestedExpiry: requestedExpiry, assigned: assignedId,
                    serverKeepAlive: keepAliveOverride)
            case .success(.deny(let code, let reason)):
                refuse(code, reason)
            case .failure(let error):
                logger.warning("authentication failed", metadata: ["error": "\(error)"])
                refuse(.unspecifiedError, "authentication failed")
            }
            finishRead()
        }
    }

    private func finishConnect(
        identity: ClientIdentity, cleanStart: Bool, expiry: UInt32, requestedExpiry: UInt32, assigned: String?,
        serverKeepAlive: UInt16?
    ) {
        guard state == .authenticating else { return }
        guard broker.authorizer.authorize(identity, .connect) else {
            return refuse(.notAuthorized, "not authorized to connect as \(clientId.clipped(toBytes: 64))")
        }
        // AWS IoT refuses a connection whose will the client may not publish (iot:Publish, and
        // iot:RetainPublish for a retained will). It is checked again when the will goes out.
        if let will = will?.will, !broker.authorizer.authorize(identity, .publish(topic: will.topic, retain: will.retain)) {
            broker.metrics.willsRefused.increment()
            return refuse(.notAuthorized, "not authorized to publish the will to \(will.topic.clipped(toBytes: 64))")
        }
        self.identity = identity
        broker.identified(self, as: identity)
        let (session, present) = broker.openSession(
            clientId: clientId, cleanStart: cleanStart, expiryInterval: expiry, identity: identity,
            protocolVersion: version, connection: self)
        self.session = session
        var properties = MQTTProperties()
        if version == .v5 {
            let config = broker.configuration
            if expiry != requestedExpiry { properties.sessionExpiryInterval = expiry }
            properties.receiveMaximum = config.receiveMaximum
            properties.maximumPacketSize = UInt32(config.maxPacketSize)
            if config.topicAliasMaximum > 0 { properties.topicAliasMaximum = config.topicAliasMaximum }
            properties.assignedClientIdentifier = assigned
            properties.serverKeepAlive = serverKeepAlive
        }
        send(.connack(ConnAckPacket(sessionPresent: present, reasonCode: .success, properties: properties)))
        state = .connected
        if !identity.isInternal { decoder.maximumPacketSize = broker.configuration.maxPacketSize }
        scheduleKeepAlive()
        logger.debug("connected", metadata: ["client": "\(clientId)", "version": "\(version)", "present": "\(present)"])
        resendInflight()
        drain()
        let queued = pending
        pending = []
        for packet in queued where state == .connected { handle(packet) }
    }

    /// Refuses a CONNECT with a CONNACK and closes, without a will.
    private func refuse(_ code: ReasonCode, _ reason: String) {
        publishWillOnClose = false
        endPending()
        if version == .v5 {
            var properties = MQTTProperties()
            if requestProblemInformation { properties.reasonString = clip(reason) }
            send(.connack(ConnAckPacket(reasonCode: code, properties: properties)))
        } else {
            send(.connack(ConnAckPacket(reasonCode: ReasonCode(code.v311ConnectReturnCode))))
        }
        logger.info("connection refused", metadata: ["client": "\(clientId.clipped(toBytes: 128))", "reason": "\(code) \(clip(reason))"])
        closeAfterFlush()
    }

    // MARK: Keep-alive

    private func scheduleKeepAlive() {
        guard keepAlive > 0 else { return }
        keepAliveRegistered = true
        broker.keepAliveSweeper(for: eventLoop).register(self)
    }

    /// Called by the loop's keep-alive sweep. [MQTT-3.1.2-22] One and a half times the
    /// keep-alive with nothing received closes the connection.
    func checkKeepAlive(now: NIODeadline) {
        guard state == .connected, keepAlive > 0 else { return }
        if now >= lastActivity + .milliseconds(Int64(keepAlive) * 1500) {
            protocolViolation(.keepAliveTimeout, "keep-alive timeout")
            flushPending()
        }
    }

    // MARK: PUBLISH from the client

    private func handlePublish(_ publish: PublishPacket) {
        guard let session, let identity else { return }
        var topic = publish.topic
        if version == .v5 {
            if let alias = publish.properties.topicAlias {
                guard alias <= broker.configuration.topicAliasMaximum else {
                    return protocolViolation(.topicAliasInvalid, "topic alias \(alias) exceeds the maximum")
                }
                if topic.isEmpty {
                    guard let known = inboundAliases[alias] else {
                        return protocolViolation(.protocolError, "unknown topic alias \(alias)")
                    }
                    topic = known
                } else {
                    inboundAliases[alias] = topic
                }
            } else if topic.isEmpty {
                return protocolViolation(.protocolError, "empty topic without a topic alias")
            }
            // [MQTT-3.3.4-6] Subscription identifiers go from server to client only.
            if !publish.properties.subscriptionIdentifiers.isEmpty {
                return protocolViolation(.protocolError, "PUBLISH from a client carries a subscription identifier")
            }
        }
        broker.metrics.messageReceived(publish.qos, payload: publish.payload.readableBytes)
        if publish.qos == .exactlyOnce, let id = publish.packetId {
            let (duplicate, unreleased) = session.lock.withLock {
                (session.inboundQoS2.contains(id), session.inboundQoS2.count)
            }
            if duplicate {
                // [MQTT-4.3.3-9] Already received: acknowledge again, do not route again.
                send(.pubrec(PublishAckPacket(packetId: id)))
                return
            }
            if unreleased >= broker.configuration.maxUnreleasedQoS2 {
                broker.metrics.limitHit(.unreleasedQoS2)
                return protocolViolation(.receiveMaximumExceeded, "more than \(broker.configuration.maxUnreleasedQoS2) QoS 2 messages not released")
            }
        }
        if !identity.isInternal, let refusal = publishLimit(publish, topic: topic) {
            return refusePublish(publish, refusal.0, refusal.1)
        }
        if publish.qos != .atMostOnce && version == .v5 && !identity.isInternal {
            // MQTT 5 clients were told our Receive Maximum in CONNACK; 3.1.1 clients are paced
            // by reading instead (below). The broker's own services are paced by themselves.
            let inFlight = pendingQoS1 + session.lock.withLock { session.inboundQoS2.count }
            if inFlight >= Int(broker.configuration.receiveMaximum) {
                broker.metrics.limitHit(.receiveMaximum)
                return protocolViolation(.receiveMaximumExceeded, "more than \(broker.configuration.receiveMaximum) unacknowledged publishes")
            }
        }
        guard broker.authorizer.authorize(identity, .publish(topic: topic, retain: publish.retain)) else {
            logger.info("publish not authorized", metadata: [
                "client": "\(clientId.clipped(toBytes: 128))", "topic": "\(topic.clipped(toBytes: 128))",
            ])
            if version == .v5, let id = publish.packetId {
                let ack = PublishAckPacket(
                    packetId: id, reasonCode: .notAuthorized,
                    properties: problem("not authorized to publish to \(topic.clipped(toBytes: 64))"))
                send(publish.qos == .atLeastOnce ? .puback(ack) : .pubrec(ack))
            } else if let id = publish.packetId {
                send(publish.qos == .atLeastOnce ? .puback(PublishAckPacket(packetId: id)) : .pubrec(PublishAckPacket(packetId: id)))
                if publish.qos == .exactlyOnce { session.lock.withLock { _ = session.inboundQoS2.insert(id) } }
            }
            return
        }
        let message = BrokerMessage(publish: publish, topic: topic, publisherId: clientId, now: eventLoop.now)
        guard let id = publish.packetId else {
            broker.route(message, into: &batch, completion: nil)
            return
        }
        if publish.qos == .exactlyOnce {
            session.lock.withLock { _ = session.inboundQoS2.insert(id) }
            // The id is stored in the same transaction as the message it guards.
            if let change = broker.sessionChange(session) { batch.changes.append(change) }
        }
        if publish.qos == .atLeastOnce { pendingQoS1 += 1 }
        awaitingAck += 1
        if version != .v5 && awaitingAck >= Int(broker.configuration.receiveMaximum) && !flowPaused {
            flowPaused = true
            transport?.setReading(false)
        }
        let qos = publish.qos
        broker.route(message, into: &batch) { [self] outcome in
            if eventLoop.inEventLoop {
                acknowledge(id, qos: qos, outcome: outcome)
            } else {
                eventLoop.execute {
                    self.acknowledge(id, qos: qos, outcome: outcome)
                    self.flushPending()
                }
            }
        }
    }

    /// The limit a PUBLISH breaks, with the reason code for it: the topic's length or levels
    /// (0x90), its user properties, a retained message beyond the retained limits (0x97).
    private func publishLimit(_ publish: PublishPacket, topic: String) -> (ReasonCode, String)? {
        if let limit = broker.topicLimit(topic) {
            broker.metrics.limitHit(limit)
            return (.topicNameInvalid, limit == .topicLength
                ? "topic longer than \(broker.configuration.maxTopicLength) bytes"
                : "topic with more than \(broker.configuration.maxTopicLevels) levels")
        }
        if publish.properties.userProperties.count > broker.configuration.maxUserProperties {
            broker.metrics.limitHit(.userProperties)
            return (.quotaExceeded, "more than \(broker.configuration.maxUserProperties) user properties")
        }
        if publish.retain && publish.payload.readableBytes > 0,
           let limit = broker.retainLimit(topic: topic, publisherId: clientId) {
            broker.metrics.limitHit(limit)
            return (.quotaExceeded, limit == .retainedTotal
                ? "the server holds \(broker.configuration.maxRetainedMessages) retained messages"
                : "this client has set \(broker.configuration.maxRetainedPerClient) retained messages")
        }
        return nil
    }

    /// A PUBLISH refused for a limit: MQTT 5 says why in the acknowledgement (QoS 0 is dropped
    /// and counted); MQTT 3.1.1 has no negative acknowledgement, so the connection closes.
    private func refusePublish(_ publish: PublishPacket, _ code: ReasonCode, _ reason: String) {
        guard let id = publish.packetId else { return }
        guard version == .v5 else { return protocolViolation(code, reason) }
        let ack = PublishAckPacket(packetId: id, reasonCode: code, properties: problem(reason))
        send(publish.qos == .atLeastOnce ? .puback(ack) : .pubrec(ack))
    }

    /// Sends PUBACK or PUBREC once the message is routed and durable.
    private func acknowledge(_ id: UInt16, qos: MQTTQoS, outcome: PublishOutcome) {
        if qos == .atLeastOnce { pendingQoS1 -= 1 }
        awaitingAck -= 1
        if flowPaused && awaitingAck <= Int(broker.configuration.receiveMaximum) / 2 {
            flowPaused = false
            if !readingPaused && state != .closed { transport?.setReading(true) }
        }
        guard state == .connected else { return }
        let refusal: (ReasonCode, String)? = switch outcome {
        case .delivered: nil
        case .quotaExceeded: (.quotaExceeded, "a subscriber's queue is full; publish again later")
        case .storageFailed: (.unspecifiedError, "storage failure")
        }
        guard let (code, reason) = refusal else {
            let matched = if case .delivered(let count) = outcome { count } else { 0 }
            let code: ReasonCode = matched == 0 && version == .v5 ? .noMatchingSubscribers : .success
            let ack = PublishAckPacket(packetId: id, reasonCode: code)
            send(qos == .atLeastOnce ? .puback(ack) : .pubrec(ack))
            return
        }
        logger.debug("publish refused", metadata: ["client": "\(clientId)", "reason": "\(reason)"])
        if qos == .exactlyOnce, let session {
            // Not accepted: a resent PUBLISH must be routed, not deduplicated. The id was stored
            // with the message, so its removal is stored too.
            let removed = session.lock.withLock { session.inboundQoS2.remove(id) != nil }
            if removed, let change = broker.sessionChange(session) { broker.storeChange(change) }
        }
        // MQTT 5 says why. A 3.1.1 publish has no negative acknowledgement: close without one,
        // so that the client sends it again later [MQTT-3.3.5-2].
        if version == .v5 {
            let ack = PublishAckPacket(packetId: id, reasonCode: code, properties: problem(reason))
            send(qos == .atLeastOnce ? .puback(ack) : .pubrec(ack))
        } else {
            close()
        }
    }

    private func handlePubRel(_ ack: PublishAckPacket) {
        // Session snapshots must reach the store in the order they were taken: the batch of this
        // read holds older ones, so it goes first.
        deliverBatch()
        guard let session else { return }
        let known = session.lock.withLock { session.inboundQoS2.remove(ack.packetId) != nil }
        let pubcomp = MQTTPacket.pubcomp(PublishAckPacket(packetId: ack.packetId, reasonCode: known ? .success : .packetIdentifierNotFound))
        if known, let change = broker.sessionChange(session) {
            // PUBCOMP only once the release is durable: after a crash a remembered id would make
            // the client's next message with that id look like a resend, and it would be lost.
            flushPending()
            send(pubcomp)
            writeAfterStore([change])
        } else {
            send(pubcomp)
        }
    }

    // MARK: Acknowledgements from the client

    private func handlePubAck(_ ack: PublishAckPacket) {
        guard let session else { return }
        let removed = session.lock.withLock { session.inflight.removeValue(forKey: ack.packetId) }
        if let removed, removed.delivery.sequence != 0 {
            broker.storeChange(.removeMessage(clientId: session.clientId, sequence: removed.delivery.sequence))
        }
        drain()
    }

    private func handlePubRec(_ ack: PublishAckPacket) {
        guard let session else { return }
        enum Outcome { case unknown, release(UInt64), failed(UInt64) }
        let outcome: Outcome = session.lock.withLock {
            guard var inflight = session.inflight[ack.packetId], inflight.delivery.qos == .exactlyOnce else { return .unknown }
            if ack.reasonCode.isFailure {
                // [MQTT-4.3.3-4] A failed PUBREC ends the flow: no PUBREL.
                session.inflight[ack.packetId] = nil
                return .failed(inflight.delivery.sequence)
            }
            inflight.released = true
            session.inflight[ack.packetId] = inflight
            return .release(inflight.delivery.sequence)
        }
        switch outcome {
        case .unknown:
            send(.pubrel(PublishAckPacket(packetId: ack.packetId, reasonCode: version == .v5 ? .packetIdentifierNotFound : .success)))
        case .release(let sequence):
            if sequence != 0 {
                // PUBREL only once "released" is durable, or a crash would send the PUBLISH again.
                flushPending()
                send(.pubrel(PublishAckPacket(packetId: ack.packetId)))
                writeAfterStore([.updateDelivery(clientId: session.clientId, sequence: sequence, state: .released(packetId: ack.packetId))])
            } else {
                send(.pubrel(PublishAckPacket(packetId: ack.packetId)))
            }
        case .failed(let sequence):
            if sequence != 0 { broker.storeChange(.removeMessage(clientId: session.clientId, sequence: sequence)) }
            drain()
        }
    }

    private func handlePubComp(_ ack: PublishAckPacket) {
        handlePubAck(ack)
    }

    // MARK: SUBSCRIBE and UNSUBSCRIBE

    private func handleSubscribe(_ subscribe: SubscribePacket) {
        // Publishes that came before this SUBSCRIBE are routed before it takes effect.
        deliverBatch()
        guard let session, let identity else { return }
        let identifier = subscribe.properties.subscriptionIdentifiers.first
        let config = broker.configuration
        let limited = !identity.isInternal
        if limited && subscribe.properties.userProperties.count > config.maxUserProperties {
            broker.metrics.limitHit(.userProperties)
            return protocolViolation(.quotaExceeded, "more than \(config.maxUserProperties) user properties")
        }
        var codes: [ReasonCode] = []
        var accepted: [Subscription] = []
        var refusal: String?
        // New filters count against the session's subscription limit; a filter it holds
        // already is replaced, and costs nothing.
        var held = session.lock.withLock { session.subscriptions.count }
        var seen: Set<String> = []
        for (position, requested) in subscribe.subscriptions.enumerated() {
            if limited && position >= config.maxFiltersPerSubscribe {
                broker.metrics.limitHit(.filtersPerSubscribe)
                refusal = "more than \(config.maxFiltersPerSubscribe) topic filters in one SUBSCRIBE"
                codes.append(.quotaExceeded)
                continue
            }
            guard let filter = TopicFilter(requested.filter) else {
                codes.append(.topicFilterInvalid)
                continue
            }
            if filter.shareGroup != nil && requested.options.noLocal {
                // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
                return protocolViolation(.protocolError, "No Local on shared subscription \(filter.raw.clipped(toBytes: 64))")
            }
            if limited, let limit = broker.topicLimit(filter.raw) {
                broker.metrics.limitHit(limit)
                refusal = "topic filters must be at most \(config.maxTopicLength) bytes and \(config.maxTopicLevels) levels"
                codes.append(.topicFilterInvalid)
                continue
            }
            guard broker.authorizer.authorize(identity, .subscribe(filter: filter.raw)) else {
                codes.append(.notAuthorized)
                continue
            }
            let isNew = seen.insert(filter.raw).inserted
                && !session.lock.withLock { session.subscriptions[filter.raw] != nil }
            if limited && isNew {
                guard held < config.maxSubscriptionsPerClient else {
                    broker.metrics.limitHit(.subscriptionsPerClient)
                    refusal = "a client may hold at most \(config.maxSubscriptionsPerClient) subscriptions"
                    codes.append(.quotaExceeded)
                    continue
                }
                held += 1
            }
            accepted.append(Subscription(filter: filter, options: requested.options, identifier: identifier))
            codes.append(ReasonCode(requested.options.qos.rawValue))
        }
        let existed = broker.subscribe(session, accepted)
        var properties = MQTTProperties()
        if codes.contains(where: \.isFailure) { properties = problem(refusal ?? "some topic filters were refused") }
        send(.suback(SubAckPacket(packetId: subscribe.packetId, reasonCodes: codes, properties: properties)))
        // Retained messages follow the SUBACK, as Retain Handling says [MQTT-3.3.1-9..11]. They
        // get no overflow allowance: no publisher is waiting on them. (Only QoS 0 can be
        // displaced, and QoS 0 is never stored, so nothing to remove from the store.)
        let now = eventLoop.now
        var retainedLimits = broker.configuration
        retainedLimits.maxQueuedOverflow = 0
        for (subscription, existedBefore) in zip(accepted, existed) where subscription.filter.shareGroup == nil {
            switch subscription.options.retainHandling {
            case .doNotSend: continue
            case .sendOnNewSubscribe where existedBefore: continue
            default: break
            }
            for message in broker.retainedMessages(matching: subscription.filter, now: now) {
                let delivery = Delivery(
                    message: message, qos: min(message.qos, subscription.options.qos), retain: true,
                    subscriptionIdentifiers: subscription.identifier.map { [$0] } ?? [], sequence: 0)
                let (results, wake, newlyDue, _) = session.enqueue([delivery], limits: retainedLimits) {
                    broker.authorizer.authorize($0, .receive(topic: $1))
                }
                if case .refused = results.first { broker.metrics.drop(.queueFull) }
                if case .queued(_, let stored?) = results.first {
                    broker.storeChange(.enqueue(clientId: session.clientId, sequence: stored, message: message.stored(),
                                                qos: delivery.qos, subscriptionIdentifiers: delivery.subscriptionIdentifiers))
                }
                if let wake { wakes.append((wake, newlyDue)) }
            }
        }
    }

    private func handleUnsubscribe(_ unsubscribe: UnsubscribePacket) {
        deliverBatch()
        guard let session else { return }
        let removed = broker.unsubscribe(session, unsubscribe.filters)
        let codes: [ReasonCode] = version == .v5 ? removed.map { $0 ? .success : .noSubscriptionExisted } : []
        send(.unsuback(UnsubAckPacket(packetId: unsubscribe.packetId, reasonCodes: codes)))
    }

    // MARK: DISCONNECT

    private func handleDisconnect(_ disconnect: DisconnectPacket) {
        deliverBatch()
        if version == .v5 {
            if let expiry = disconnect.properties.sessionExpiryInterval, let session {
                let current = session.lock.withLock { session.expiryInterval }
                if current == 0 && expiry != 0 {
                    // [MQTT-3.14.2-2]
                    return protocolViolation(.protocolError, "session expiry set on DISCONNECT after 0 in CONNECT")
                }
                session.lock.withLock { session.expiryInterval = min(expiry, broker.configuration.maxSessionExpiry) }
                broker.persist(session)
            }
            // [MQTT-3.14.4-3] Only 0x04 keeps the will.
            publishWillOnClose = disconnect.reasonCode == .disconnectWithWill
        } else {
            publishWillOnClose = false
        }
        close()
    }

    // MARK: Delivery to the client

    /// Called from any loop by a publisher that queued something for this connection.
    func scheduleDrain() {
        eventLoop.execute { self.drain() }
    }

    /// Sends queued messages while the in-flight window and the channel allow.
    func drain() {
        guard state == .connected, let session else { return }
        guard transport?.isWritable ?? false else {
            // Leave drainScheduled set: the writability change resumes the drain.
            waitingForWritability = true
            return
        }
        let budget = 1024
        var batch: [(Delivery, UInt16?)] = []
        var expired: [UInt64] = []
        var waiters: [MQTTConnection] = []
        var more = false
        let now = eventLoop.now
        let receiveMaximum = identity?.isInternal == true
            ? clientReceiveMaximum : min(clientReceiveMaximum, broker.configuration.maxInflightOutbound)
        let authorizer = broker.authorizer
        var withheld: [UInt64] = []
        session.lock.withLock {
            guard session.connection === self else { return }
            while batch.count < budget, let next = session.queue.first {
                if next.qos != .atMostOnce && session.inflight.count >= receiveMaximum {
                    if receiveMaximum < clientReceiveMaximum { broker.metrics.limitHit(.inflightOutbound) }
                    break
                }
                session.removeFirst()
                if next.message.isExpired(at: now) {
                    expired.append(next.sequence)
                    continue
                }
                // iot:Receive is decided when the message goes out, not only when it was queued:
                // a policy may have changed meanwhile, or the queue may come from before a restart.
                guard authorizer.authorize(session.identity, .receive(topic: next.message.topic)) else {
                    withheld.append(next.sequence)
                    continue
                }
                var packetId: UInt16?
                if next.qos != .atMostOnce, let id = session.allocatePacketId() {
                    packetId = id
                    session.inflight[id] = InflightDelivery(delivery: next, released: false, order: session.nextOrder)
                    session.nextOrder += 1
                }
                batch.append((next, packetId))
            }
            more = batch.count == budget && !session.queue.isEmpty
            if !more { session.drainScheduled = false }
            if !session.waiters.isEmpty && session.queue.count <= broker.configuration.maxQueuedMessages / 2 {
                waiters = session.waiters
                session.waiters.removeAll()
            }
        }
        for waiter in waiters {
            if waiter.eventLoop === eventLoop {
                waiter.resumeReading()
            } else {
                waiter.eventLoop.execute { waiter.resumeReading() }
            }
        }
        var changes: [BrokerStoreChange] = []
        if !expired.isEmpty {
            broker.metrics.drop(.expired, count: expired.count)
            for sequence in expired where sequence != 0 {
                changes.append(.removeMessage(clientId: session.clientId, sequence: sequence))
            }
        }
        if !withheld.isEmpty {
            broker.metrics.drop(.notAuthorized, count: withheld.count)
            for sequence in withheld where sequence != 0 {
                changes.append(.removeMessage(clientId: session.clientId, sequence: sequence))
            }
        }
        out.reserveCapacity(minimumWritableBytes: batch.count * 96)
        for (delivery, packetId) in batch {
            if let packetId, delivery.sequence != 0 {
                changes.append(.updateDelivery(clientId: session.clientId, sequence: delivery.sequence, state: .sent(packetId: packetId)))
            }
            sendPublish(delivery, packetId: packetId, dup: false, now: now)
        }
        if changes.isEmpty && awaitingStore == 0 {
            flushPending()
        } else {
            // A stored message goes out only once its packet id is durable: after a crash it is
            // sent again with the same id, which the client recognises [MQTT-4.3.3]. Writes stay
            // in order behind the store while any are waiting.
            writeAfterStore(changes)
        }
        if more { eventLoop.execute { self.drain() } }
    }

    public func writabilityChanged() {
        guard transport?.isWritable ?? false, waitingForWritability else { return }
        waitingForWritability = false
        drain()
    }

    /// [MQTT-4.4.0-1] On a resumed session, unacknowledged PUBLISH and PUBREL are sent again, in order.
    private func resendInflight() {
        guard let session else { return }
        let (inflight, persistent) = session.lock.withLock {
            (session.inflight.sorted { $0.value.order < $1.value.order }, session.expiryInterval > 0)
        }
        guard !inflight.isEmpty else { return }
        let now = eventLoop.now
        for (id, entry) in inflight {
            if entry.released {
                send(.pubrel(PublishAckPacket(packetId: id)))
            } else {
                sendPublish(entry.delivery, packetId: id, dup: true, now: now)
            }
        }
        if persistent {
            // The previous connection may still have "sent"/"released" states waiting in the
            // store; these resends go out behind them, or a crash could undo what the client saw.
            writeAfterStore([])
        }
    }

    private func sendPublish(_ delivery: Delivery, packetId: UInt16?, dup: Bool, now: NIODeadline) {
        let message = delivery.message
        var topic = message.topic
        var properties = MQTTProperties()
        if version == .v5 {
            if message.hasProperties { properties = message.properties }
            properties.subscriptionIdentifiers = delivery.subscriptionIdentifiers
            properties.messageExpiryInterval = message.remainingExpiry(at: now)
            let aliasMaximum = min(Int(clientTopicAliasMaximum), broker.configuration.maxOutboundTopicAliases)
            if aliasMaximum > 0 {
                if let alias = outboundAliases[topic] {
                    properties.topicAlias = alias
                    topic = ""
                } else if outboundAliases.count < aliasMaximum {
                    let alias = UInt16(outboundAliases.count + 1)
                    outboundAliases[topic] = alias
                    properties.topicAlias = alias
                }
            }
        }
        let packet = PublishPacket(
            dup: dup, qos: delivery.qos, retain: delivery.retain, topic: topic, packetId: packetId,
            properties: properties, payload: message.payload)
        let size = packet.encodedSize(version: version)
        // The 4-byte remaining length caps any packet at 268 435 455 bytes of body.
        if size > clientMaximumPacketSize || packet.remainingLength(version: version) > 268_435_455 {
            // [MQTT-3.1.2-25] Too large for the client: drop it as if it had been delivered.
            broker.metrics.drop(.packetTooLarge)
            if let packetId, let session {
                let removed = session.lock.withLock { session.inflight.removeValue(forKey: packetId) }
                if let removed, removed.delivery.sequence != 0 {
                    broker.storeChange(.removeMessage(clientId: session.clientId, sequence: removed.delivery.sequence))
                }
            }
            if !topic.isEmpty, let alias = properties.topicAlias, outboundAliases[topic] == alias {
                outboundAliases[topic] = nil
            }
            return
        }
        out.reserveCapacity(minimumWritableBytes: size)
        packet.encode(version: version, into: &out)
        broker.metrics.messageSent(delivery.qos, payload: message.payload.readableBytes)
    }

    // MARK: Output

    /// Output held back until the store has committed the changes it depends on.
    private var awaitingStore = 0

    private func writeAfterStore(_ changes: [BrokerStoreChange]) {
        guard out.readableBytes > 0 || !changes.isEmpty else { return }
        let held = out
        out = allocator.buffer(capacity: 0)
        awaitingStore += 1
        broker.store.commit(changes) { [self] _ in
            if eventLoop.inEventLoop {
                writeHeld(held)
            } else {
                eventLoop.execute { self.writeHeld(held) }
            }
        }
    }

    private func writeHeld(_ held: ByteBuffer) {
        awaitingStore -= 1
        if state != .closed || ending != nil, let transport, held.readableBytes > 0 {
            broker.metrics.bytesSent.increment(by: held.readableBytes)
            transport.write(held)
            transport.flush()
        }
        if awaitingStore == 0, let ending {
            self.ending = nil
            endTransport(ending)
        }
    }

    private func send(_ packet: MQTTPacket) {
        guard state != .closed else { return }
        packet.encode(version: version, into: &out)
    }

    /// Writes what is encoded. While earlier output waits for the store, this waits behind it,
    /// so packets go out in the order they were made ([MQTT-3.2.0-1]: CONNACK first).
    private func flushPending() {
        guard out.readableBytes > 0, let transport else { return }
        if awaitingStore > 0 {
            writeAfterStore([])
            return
        }
        broker.metrics.bytesSent.increment(by: out.readableBytes)
        transport.write(out)
        transport.flush()
        out = allocator.buffer(capacity: 0)
    }

    private func problem(_ reason: String) -> MQTTProperties {
        var properties = MQTTProperties()
        if requestProblemInformation { properties.reasonString = clip(reason) }
        return properties
    }

    /// A reason string cut to the configured length: they quote client input, and what we send
    /// must stay small whatever the client sent.
    private func clip(_ reason: String) -> String {
        let limit = broker.configuration.maxReasonStringLength
        if reason.utf8.count > limit { broker.metrics.limitHit(.reasonString) }
        return reason.clipped(toBytes: limit)
    }

    /// Why a client id is refused (nil: it is fine): too long, a control character, or the
    /// prefix reserved for the broker's own clients.
    static func clientIdProblem(_ id: String, maxLength: Int) -> String? {
        if id.utf8.count > maxLength { return "is longer than \(maxLength) bytes" }
        if id.hasPrefix(InProcessClient.reservedPrefix) { return "uses the reserved prefix \(InProcessClient.reservedPrefix)" }
        if id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "contains a control character" }
        return nil
    }

    // MARK: Closing

    private func failed(_ error: MQTTCodecError) {
        if error.reasonCode == .packetTooLarge {
            broker.metrics.limitHit(state == .awaitingConnect ? .connectPacketSize : .packetSize)
        }
        if state == .awaitingConnect || state == .authenticating, error.reasonCode == .unsupportedProtocolVersion {
            // Answer in the shape the client expects: 3.1.1 return code 0x01, or MQTT 5 0x84.
            out.writeBytes([0x20, 0x02, 0x00, 0x01])
            publishWillOnClose = false
            logger.info("unsupported protocol", metadata: [
                "remote": "\(remoteAddress ?? "-")", "error": "\(error.message.clipped(toBytes: 256))",
            ])
            return closeAfterFlush()
        }
        protocolViolation(error.reasonCode, error.message)
    }

    /// Ends the connection because the client broke the protocol: MQTT 5 clients get a
    /// DISCONNECT with the reason first [MQTT-4.13.1-1]. The will is published.
    private func protocolViolation(_ code: ReasonCode, _ reason: String) {
        guard state != .closed else { return }
        let reason = clip(reason)
        logger.info("closing connection", metadata: ["client": "\(clientId.clipped(toBytes: 128))", "reason": "\(code) \(reason)"])
        if state == .connected && version == .v5 {
            send(.disconnect(DisconnectPacket(reasonCode: code, reasonString: requestProblemInformation ? reason : nil)))
            // The client may be sending what our earlier packets asked for (PUBREL for a PUBREC)
            // as the DISCONNECT goes out: take it and drop it, so that it reads the DISCONNECT.
            return closeAfterFlush(linger: Self.disconnectLinger)
        }
        closeAfterFlush()
    }

    /// How long a connection that we ended with a DISCONNECT goes on reading, at most.
    static let disconnectLinger = TimeAmount.seconds(2)

    private func closeAfterFlush(linger: TimeAmount? = nil) {
        end(linger.map(Ending.linger) ?? .flushAndClose)
    }

    private func close() {
        end(.close)
    }

    /// How the transport goes once the last output is written.
    private enum Ending {
        case close, flushAndClose, linger(TimeAmount)
    }

    /// Set while a closed connection's last output waits for the store.
    private var ending: Ending?

    /// Ends the connection. Output still waiting for the store is written first, then what was
    /// made after it, then the transport goes: a client never sees a later packet (a PINGRESP,
    /// the DISCONNECT) without the earlier ones (the CONNACK). Nothing more is read or made.
    private func end(_ how: Ending) {
        state = .closed
        releaseSession()
        guard awaitingStore > 0, ending == nil else { return endNow(how) }
        ending = how
        flushPending()
        // The store answers every commit; should it hang, the connection still goes.
        eventLoop.scheduleTask(in: .seconds(5)) { [self] in
            guard let ending else { return }
            self.ending = nil
            endTransport(ending)
        }
    }

    private func endNow(_ how: Ending) {
        if ending != nil {
            // Already waiting for the store to end: a harder end wins.
            if case .close = how { ending = .close }
            return
        }
        flushPending()
        endTransport(how)
    }

    private func endTransport(_ how: Ending) {
        switch how {
        case .close: transport?.close()
        case .flushAndClose: transport?.flushAndClose()
        case .linger(let time): transport?.flushAndLinger(time)
        }
    }

    /// Gives the session back to the broker as soon as the connection is over, before the socket
    /// has finished closing, so that a client reconnecting at once sees the session as it should
    /// be (gone after a clean DISCONNECT, say).
    private func releaseSession() {
        guard let session else { return }
        deliverBatch()
        self.session = nil
        broker.detach(self, from: session, will: publishWillOnClose ? willMessage() : nil, willDelay: willDelay)
    }

    /// Another connection took over this session [MQTT-3.1.4-3].
    func takeOver(publishWill: Bool) {
        eventLoop.execute { [self] in
            guard state != .closed else { return }
            if publishWill, let will = willMessage(), let identity {
                broker.publishWill(will, of: identity)
            }
            publishWillOnClose = false
            if version == .v5 {
                send(.disconnect(DisconnectPacket(
                    reasonCode: .sessionTakenOver, reasonString: clip("another connection uses client id \(clientId.clipped(toBytes: 64))"))))
            }
            closeAfterFlush()
        }
    }

    /// The server ends this connection (shutdown, administrative action); returns when closed.
    func serverDisconnect(_ code: ReasonCode, reason: String) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { [self] in
            if cleanedUp { return eventLoop.makeSucceededVoidFuture() }
            let promise = closedPromise ?? eventLoop.makePromise()
            closedPromise = promise
            if state != .closed {
                publishWillOnClose = false
                if state == .connected && version == .v5 {
                    send(.disconnect(DisconnectPacket(reasonCode: code, reasonString: clip(reason))))
                }
                closeAfterFlush()
            }
            return promise.futureResult
        }
    }

    /// The will as a message, with its expiry starting now.
    private func willMessage() -> BrokerMessage? {
        guard let will = will?.will else { return nil }
        return BrokerMessage(
            publish: PublishPacket(qos: will.qos, retain: will.retain, topic: will.topic, properties: will.properties,
                                   payload: will.payload),
            topic: will.topic, publisherId: clientId, now: eventLoop.now)
    }

    /// The transport is gone; clean up exactly once.
    public func transportClosed() {
        guard !cleanedUp else { return }
        cleanedUp = true
        state = .closed
        endPending()
        if keepAliveRegistered { broker.keepAliveSweeper(for: eventLoop).unregister(self) }
        connectTimeoutTask?.cancel()
        resumeTask?.cancel()
        releaseSession()
        if admitted { broker.release(self) }
        transport = nil
        closedPromise?.succeed(())
        closedPromise = nil
    }
}
