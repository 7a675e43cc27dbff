import MQTTCodec
import NIOConcurrencyHelpers
import NIOCore

/// An MQTT client inside the process: services (shadows, later jobs and rules) reach devices
/// through it as any client would, so policies, metrics and the protocol code cover them alike.
/// It speaks MQTT 5 to an `MQTTConnection` through a transport that hands bytes over in memory.
///
/// Its client id starts with ``reservedPrefix``, which network clients may not use, so no device
/// can take its session over. If its connection ends anyway (the broker closed it), it connects
/// again by itself and subscribes again to what it had, until ``stop()``.
///
/// `@unchecked Sendable`: every mutable field is touched only on `eventLoop`; the public methods
/// hop onto it.
public final class InProcessClient: MQTTTransport, @unchecked Sendable {
    public let eventLoop: any EventLoop
    public let clientId: String
    private let broker: Broker
    private var connection: MQTTConnection?
    private var decoder = MQTTPacketDecoder(protocolVersion: .v5)
    private var inbox = ByteBuffer()
    private var nextPacketId: UInt16 = 0
    private var waiting: [UInt16: EventLoopPromise<Void>] = [:]
    private var connected: EventLoopPromise<Void>?
    private let onPublish: @Sendable (PublishPacket) -> Void
    /// What to subscribe to again after a reconnection.
    private var subscriptions: [(filters: [String], qos: MQTTQoS)] = []
    private var wanted = false
    private var reconnectDelay = TimeAmount.milliseconds(50)
    private var reconnectTask: Scheduled<Void>?

    /// Client ids with this prefix belong to the broker's own services: a network CONNECT
    /// that names one gets CONNACK 0x85.
    public static let reservedPrefix = "$drover/"

    /// The listener that in-process clients appear on (metrics label "internal" is not one of the
    /// network listeners, so they are not counted as connections).
    public static let listener = ListenerInfo(name: "internal", isLoopback: true, allowAnonymous: true)

    /// `onPublish` gets every message delivered to this client, on `eventLoop`.
    public init(broker: Broker, clientId: String, eventLoop: any EventLoop, onPublish: @escaping @Sendable (PublishPacket) -> Void) {
        precondition(clientId.hasPrefix(Self.reservedPrefix), "in-process client ids start with \(Self.reservedPrefix)")
        self.broker = broker
        self.clientId = clientId
        self.eventLoop = eventLoop
        self.onPublish = onPublish
    }

    /// Connects with a clean session; succeeds on CONNACK.
    public func connect() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { [self] in
            wanted = true
            return open()
        }
    }

    /// Stops for good: no reconnection after this.
    public func stop() {
        eventLoop.execute { [self] in
            wanted = false
            reconnectTask?.cancel()
            reconnectTask = nil
            close()
        }
    }

    private func open() -> EventLoopFuture<Void> {
        // A fresh connection each time: the old one is gone (its transport closed).
        let connection = MQTTConnection(
            broker: broker, eventLoop: eventLoop, allocator: ByteBufferAllocator(), listener: Self.listener,
            remoteAddress: "in-process", transport: self)
        self.connection = connection
        decoder = MQTTPacketDecoder(protocolVersion: .v5)
        inbox.clear()
        connection.start()
        let promise = eventLoop.makePromise(of: Void.self)
        connected = promise
        send(.connect(ConnectPacket(protocolVersion: .v5, clientId: clientId, cleanStart: true, keepAlive: 0)))
        return promise.futureResult
    }

    /// The connection ended while still wanted: connect again after a delay that doubles up to
    /// 5 s, and subscribe again.
    private func scheduleReconnect() {
        guard wanted, reconnectTask == nil, !broker.isShuttingDown else { return }
        let delay = reconnectDelay
        reconnectDelay = min(reconnectDelay * 2, .seconds(5))
        reconnectTask = eventLoop.scheduleTask(in: delay) { [self] in
            reconnectTask = nil
            guard wanted, connection == nil, !broker.isShuttingDown else { return }
            broker.logger.notice("in-process client reconnecting", metadata: ["client": "\(clientId)"])
            // A failed attempt closes the connection, which schedules the next one; the
            // subscriptions stay in `subscriptions` for whichever attempt succeeds.
            open().whenSuccess { [self] in
                reconnectDelay = .milliseconds(50)
                for entry in subscriptions { _ = sendSubscribe(entry.filters, qos: entry.qos) }
            }
        }
    }

    public func subscribe(_ filters: [String], qos: MQTTQoS = .atLeastOnce) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { [self] in
            subscriptions.append((filters, qos))
            return sendSubscribe(filters, qos: qos)
        }
    }

    private func sendSubscribe(_ filters: [String], qos: MQTTQoS) -> EventLoopFuture<Void> {
        guard let id = allocateId() else { return eventLoop.makeFailedFuture(Self.noPacketId) }
        let promise = eventLoop.makePromise(of: Void.self)
        waiting[id] = promise
        send(.subscribe(SubscribePacket(packetId: id, subscriptions: filters.map { .init(filter: $0, options: .init(qos: qos)) })))
        return promise.futureResult
    }

    private static let noPacketId = InProcessClientError(description: "65 535 requests are waiting for an answer")

    /// Publishes; the future succeeds once the broker has routed it (QoS 1: on PUBACK).
    public func publish(_ topic: String, _ payload: ByteBuffer, qos: MQTTQoS = .atMostOnce, retain: Bool = false) -> EventLoopFuture<Void> {
        eventLoop.flatSubmit { [self] in
            guard qos != .atMostOnce else {
                send(.publish(PublishPacket(qos: .atMostOnce, retain: retain, topic: topic, payload: payload)))
                return eventLoop.makeSucceededVoidFuture()
            }
            guard let id = allocateId() else { return eventLoop.makeFailedFuture(Self.noPacketId) }
            let promise = eventLoop.makePromise(of: Void.self)
            waiting[id] = promise
            send(.publish(PublishPacket(qos: .atLeastOnce, retain: retain, topic: topic, packetId: id, payload: payload)))
            return promise.futureResult
        }
    }

    /// A packet id no request is waiting on; nil when all of them are.
    private func allocateId() -> UInt16? {
        guard waiting.count < Int(UInt16.max) else { return nil }
        repeat { nextPacketId = nextPacketId == .max ? 1 : nextPacketId + 1 } while waiting[nextPacketId] != nil
        return nextPacketId
    }

    private func send(_ packet: MQTTPacket) {
        var buffer = ByteBuffer()
        packet.encode(version: .v5, into: &buffer)
        connection?.receive(buffer)
    }

    /// The connection is writing to us, in the middle of its own work: answering at once would
    /// re-enter it. The answer goes on the loop's queue instead.
    private func sendLater(_ packet: MQTTPacket) {
        eventLoop.execute { self.send(packet) }
    }

    // MARK: MQTTTransport (what the broker writes to us)

    public var isWritable: Bool { true }

    public func write(_ buffer: ByteBuffer) {
        var buffer = buffer
        inbox.writeBuffer(&buffer)
        while let packet = try? decoder.decode(buffer: &inbox) {
            switch packet {
            case .connack(let ack):
                if ack.reasonCode.isFailure {
                    connected?.fail(InProcessClientError(description: "CONNACK \(ack.reasonCode)"))
                } else {
                    connected?.succeed()
                }
                connected = nil
            case .suback(let ack):
                waiting.removeValue(forKey: ack.packetId)?.succeed()
            case .puback(let ack):
                if ack.reasonCode.isFailure {
                    waiting.removeValue(forKey: ack.packetId)?.fail(InProcessClientError(description: "PUBACK \(ack.reasonCode)"))
                } else {
                    waiting.removeValue(forKey: ack.packetId)?.succeed()
                }
            case .publish(let publish):
                if publish.qos == .atLeastOnce, let id = publish.packetId { sendLater(.puback(PublishAckPacket(packetId: id))) }
                if publish.qos == .exactlyOnce, let id = publish.packetId { sendLater(.pubrec(PublishAckPacket(packetId: id))) }
                onPublish(publish)
            case .pubrel(let ack):
                sendLater(.pubcomp(PublishAckPacket(packetId: ack.packetId)))
            default:
                break
            }
        }
        inbox.discardReadBytes()
    }

    public func flush() {}
    public func flushAndClose() { close() }

    public func close() {
        let pending = waiting
        waiting = [:]
        for promise in pending.values { promise.fail(InProcessClientError(description: "the in-process connection closed")) }
        connected?.fail(InProcessClientError(description: "the in-process connection closed"))
        connected = nil
        let connection = self.connection
        self.connection = nil
        connection?.transportClosed()
        if connection != nil { scheduleReconnect() }
    }

    public func setReading(_ enabled: Bool) {}
}

public struct InProcessClientError: Error, CustomStringConvertible {
    public var description: String
}
