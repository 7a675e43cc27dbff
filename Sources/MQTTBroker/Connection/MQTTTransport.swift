import NIOCore

/// What a connection needs from the transport under it (TCP, TLS or WebSocket). All calls are
/// made on the connection's event loop.
public protocol MQTTTransport: AnyObject {
    var isWritable: Bool { get }
    func write(_ buffer: ByteBuffer)
    func flush()
    /// Flushes what was written, and closes once it has gone out.
    func flushAndClose()
    /// Flushes what was written, ends our side once it has gone out, and goes on reading (the
    /// connection drops what comes) until the peer closes or `linger` has passed.
    func flushAndLinger(_ linger: TimeAmount)
    func close()
    /// Stops or resumes reading from the peer (backpressure on a publisher).
    func setReading(_ enabled: Bool)
}

extension MQTTTransport {
    /// Transports without a half-close (WebSocket, in-process) close as before.
    public func flushAndLinger(_ linger: TimeAmount) { flushAndClose() }
}

/// Runs MQTT on a channel whose inbound and outbound messages are bytes (TCP or TLS).
public final class MQTTChannelHandler: ChannelInboundHandler, MQTTTransport {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let broker: Broker
    private let listener: ListenerInfo
    private let peerCertificate: (@Sendable (any Channel) -> [UInt8]?)?
    private var context: ChannelHandlerContext?
    private var connection: MQTTConnection?
    private var peerChecked = false

    public init(broker: Broker, listener: ListenerInfo, peerCertificate: (@Sendable (any Channel) -> [UInt8]?)? = nil) {
        self.broker = broker
        self.listener = listener
        self.peerCertificate = peerCertificate
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let remote = context.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" }
        connection = MQTTConnection(
            broker: broker, eventLoop: context.eventLoop, allocator: context.channel.allocator, listener: listener,
            remoteAddress: remote, transport: self)
        if context.channel.isActive { connection?.start() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        connection?.transportClosed()
        connection = nil
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        connection?.start()
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let peerCertificate, !peerChecked {
            // Under TLS the first bytes come after the handshake, when the peer's certificate is known.
            peerChecked = true
            connection?.peerCertificate = peerCertificate(context.channel)
        }
        connection?.receive(unwrapInboundIn(data))
    }

    public func channelInactive(context: ChannelHandlerContext) {
        connection?.transportClosed()
        context.fireChannelInactive()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: MQTTTransport

    public var isWritable: Bool { context?.channel.isWritable ?? false }

    public func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    public func flush() { context?.flush() }

    public func flushAndClose() {
        guard let context else { return }
        let empty = context.channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(wrapOutboundOut(empty)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    public func close() { context?.close(promise: nil) }

    public func flushAndLinger(_ linger: TimeAmount) {
        guard let context else { return }
        let channel = context.channel
        let empty = channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(wrapOutboundOut(empty)).assumeIsolated().whenComplete { _ in
            // FIN behind the DISCONNECT, but still reading: a socket closed while the client is
            // still sending (a PUBREL for a PUBREC it read before our DISCONNECT) is reset by the
            // kernel, and the client's write fails before it has read the DISCONNECT.
            channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
            channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            let timer = channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in timer.cancel() }
        }
    }

    public func setReading(_ enabled: Bool) {
        guard let channel = context?.channel else { return }
        channel.setOption(ChannelOptions.autoRead, value: enabled).whenFailure { _ in }
    }
}
