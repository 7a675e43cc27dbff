import NIOCore
import NIOPosix
import NIOSSL

enum LoadError: Error, CustomStringConvertible {
    case connackRefused(UInt8)
    case subscribeRefused
    case connectionClosed
    case handshakeTimeout
    case protocolViolation(String)

    var description: String {
        switch self {
        case .connackRefused(let code): return "CONNACK refused with return code \(code)"
        case .subscribeRefused: return "SUBACK refused the subscription"
        case .connectionClosed: return "connection closed before the handshake finished"
        case .handshakeTimeout: return "no CONNACK/SUBACK within the handshake timeout"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        }
    }
}

/// The common part of every load-tool connection: CONNECT on activation, CONNACK, keep-alive pings, frame
/// reassembly, an optional SUBSCRIBE, and an orderly DISCONNECT. Subclasses add the scenario's traffic.
///
/// Every member is touched only on the channel's event loop (the pipeline guarantees that for the callbacks; the
/// orchestration reaches a handler only through `NIOLoopBound`), so the class needs no locking.
class LoadConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Options {
        var clientID: String
        var keepAlive: UInt16 = 60
        /// Subscribe to this filter after CONNACK; the connection is ready on SUBACK rather than on CONNACK.
        var subscribeFilter: String?
        var subscribeQoS: UInt8 = 0
        /// MQTT 3.1.1 clean session; false makes a persistent session.
        var cleanSession = true
        var handshakeTimeout: TimeAmount = .seconds(30)
    }

    let options: Options
    private(set) var context: ChannelHandlerContext!
    /// Succeeds when the connection is usable (CONNACK, or SUBACK for subscribers).
    private(set) var ready: EventLoopPromise<Void>!
    private var isReady = false
    private var handshakeTimer: Scheduled<Void>?
    private var pingTimer: Scheduled<Void>?
    private var accumulator = FrameAccumulator()
    /// Set when we started closing, so that an unexpected close by the broker can be told apart.
    private(set) var closing = false
    private(set) var closedByPeer = false
    private(set) var pingResponses = 0

    init(options: Options) {
        self.options = options
    }

    // MARK: Pipeline callbacks

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.ready = context.eventLoop.makePromise(of: Void.self)
        let timeout = options.handshakeTimeout
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.failReady(LoadError.handshakeTimeout)
            self.context.close(promise: nil)
        }
        if context.channel.isActive {
            sendConnect()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        pingTimer?.cancel()
        failReady(LoadError.connectionClosed)
    }

    func channelActive(context: ChannelHandlerContext) {
        sendConnect()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closing { closedByPeer = true }
        handshakeTimer?.cancel()
        pingTimer?.cancel()
        failReady(LoadError.connectionClosed)
        connectionClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        do {
            try accumulator.feed(&incoming) { frame, buffer in
                try self.handle(frame, in: &buffer)
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            becameWritable()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failReady(error)
        context.close(promise: nil)
    }

    // MARK: Protocol

    private var sentConnect = false

    private func sendConnect() {
        guard !sentConnect else { return }
        sentConnect = true
        var buffer = context.channel.allocator.buffer(capacity: 32 + options.clientID.utf8.count)
        MQTTWire.writeConnect(
            clientID: options.clientID,
            keepAlive: options.keepAlive,
            cleanSession: options.cleanSession,
            into: &buffer
        )
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    @inline(__always)
    private func handle(_ frame: MQTTFrame, in buffer: inout ByteBuffer) throws {
        switch frame.type {
        case MQTTPacketType.publish.rawValue:
            didReceivePublish(frame, in: buffer)
        case MQTTPacketType.puback.rawValue:
            guard frame.bodyLength >= 2, let id = buffer.getInteger(at: frame.bodyIndex, as: UInt16.self) else {
                throw LoadError.protocolViolation("short PUBACK")
            }
            didReceivePubAck(packetID: id)
        case MQTTPacketType.connack.rawValue:
            guard frame.bodyLength >= 2, let code = buffer.getInteger(at: frame.bodyIndex + 1, as: UInt8.self) else {
                throw LoadError.protocolViolation("short CONNACK")
            }
            guard code == 0 else { throw LoadError.connackRefused(code) }
            schedulePing()
            if let filter = options.subscribeFilter {
                var out = context.channel.allocator.buffer(capacity: 16 + filter.utf8.count)
                MQTTWire.writeSubscribe(packetID: 1, topicFilter: filter, qos: options.subscribeQoS, into: &out)
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            } else {
                succeedReady()
            }
        case MQTTPacketType.suback.rawValue:
            guard frame.bodyLength >= 3, let code = buffer.getInteger(at: frame.bodyIndex + 2, as: UInt8.self) else {
                throw LoadError.protocolViolation("short SUBACK")
            }
            guard code != 0x80 else { throw LoadError.subscribeRefused }
            succeedReady()
        case MQTTPacketType.pingresp.rawValue:
            pingResponses += 1
        default:
            throw LoadError.protocolViolation("unexpected packet type \(frame.type)")
        }
    }

    private func succeedReady() {
        guard !isReady else { return }
        isReady = true
        handshakeTimer?.cancel()
        handshakeTimer = nil
        ready.succeed()
    }

    private func failReady(_ error: any Error) {
        guard !isReady, let ready else { return }
        isReady = true
        ready.fail(error)
    }

    private func schedulePing() {
        guard options.keepAlive > 0 else { return }
        // Ping at half the keep-alive so that the broker never sees the connection as idle for too long.
        let interval = TimeAmount.milliseconds(Int64(options.keepAlive) * 500)
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: interval) {
            guard !self.closing, self.context.channel.isActive else { return }
            var out = self.context.channel.allocator.buffer(capacity: 2)
            MQTTWire.writePingReq(into: &out)
            self.context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
            self.schedulePing()
        }
    }

    /// Sends DISCONNECT and closes. The returned future completes when the channel is closed.
    func disconnect() -> EventLoopFuture<Void> {
        let channel = context.channel
        guard !closing else { return channel.closeFuture }
        closing = true
        stop()
        if channel.isActive {
            var out = channel.allocator.buffer(capacity: 2)
            MQTTWire.writeDisconnect(into: &out)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            context.close(promise: nil)
        }
        return channel.closeFuture
    }

    @inline(__always)
    func write(_ buffer: ByteBuffer) {
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    @inline(__always)
    func flush() {
        context.flush()
    }

    // MARK: Subclass hooks

    func didReceivePublish(_ frame: MQTTFrame, in buffer: ByteBuffer) {}
    func didReceivePubAck(packetID: UInt16) {}
    func readComplete() {}
    func becameWritable() {}
    /// Stop generating traffic (called before DISCONNECT).
    func stop() {}
    func connectionClosed() {}
}

/// A connected, ready load connection. `handler` may only be dereferenced on `channel.eventLoop`.
struct LoadClient<Handler: LoadConnection>: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<Handler>

    var eventLoop: any EventLoop { channel.eventLoop }

    /// Runs `body` with the handler on its event loop.
    func withHandler<T: Sendable>(_ body: @escaping @Sendable (Handler) -> T) -> EventLoopFuture<T> {
        let handler = self.handler
        return channel.eventLoop.submit { body(handler.value) }
    }

    func disconnect() -> EventLoopFuture<Void> {
        let handler = self.handler
        return channel.eventLoop.flatSubmit { handler.value.disconnect() }
    }
}

/// Opens MQTT connections of one kind to one broker address.
struct Connector: Sendable {
    enum Role: Sendable {
        /// Reads a lot: large receive buffers.
        case subscriber
        /// Writes a lot. A send buffer size (bytes, 0 for the kernel's autotuning) bounds how much of what counts as
        /// "published" can be parked in the kernel rather than taken by the broker.
        case publisher(sendBuffer: Int)
        /// Reads and writes almost nothing: defaults.
        case idle
    }

    let group: any EventLoopGroup
    let address: SocketAddress
    let role: Role

    init(group: any EventLoopGroup, host: String, port: Int, role: Role) throws {
        self.group = group
        self.address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        self.role = role
    }

    /// `tls`: a mutual-TLS client context (the device's certificate and key, the server's CA);
    /// nil for plain TCP.
    func connect<Handler: LoadConnection>(
        tls: NIOSSLContext? = nil,
        _ makeHandler: @escaping @Sendable () -> Handler
    ) -> EventLoopFuture<LoadClient<Handler>> {
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(30))
        switch role {
        case .subscriber:
            bootstrap = bootstrap.channelOption(
                .recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 262_144)
            )
        case .publisher(let sendBuffer):
            if sendBuffer > 0 {
                bootstrap = bootstrap.channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer))
            }
        case .idle:
            break
        }
        bootstrap = bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil))
                }
                try channel.pipeline.syncOperations.addHandler(makeHandler())
            }
        }
        return bootstrap.connect(to: address)
            .flatMap { channel in
                channel.eventLoop.flatSubmit {
                    do {
                        let handler = try channel.pipeline.syncOperations.handler(type: Handler.self)
                        let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
                        return handler.ready.futureResult.map { LoadClient(channel: channel, handler: bound) }
                    } catch {
                        return channel.eventLoop.makeFailedFuture(error)
                    }
                }
            }
    }
}
