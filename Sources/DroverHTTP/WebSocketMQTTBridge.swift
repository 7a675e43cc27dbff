import HummingbirdWebSocket
import MQTTBroker
import NIOConcurrencyHelpers
import NIOCore

/// Carries MQTT over WebSocket binary frames [MQTT-6.0.0-1]: frames in are bytes for the
/// connection, bytes out become frames. Frame boundaries need not match packet boundaries.
///
/// `@unchecked Sendable`: `buffered` and `connection` are used on `eventLoop` only; the
/// continuation is thread-safe.
final class WebSocketMQTTBridge: MQTTTransport, @unchecked Sendable {
    enum Output: Sendable {
        case bytes(ByteBuffer)
        case close
    }

    private let eventLoop: any EventLoop
    private let output: AsyncStream<Output>.Continuation
    private var pending: [ByteBuffer] = []
    /// Bytes handed to the writer and not yet written; above the bound the connection waits.
    private var buffered = 0
    private let highWater = 256 * 1024
    var connection: MQTTConnection?

    init(eventLoop: any EventLoop, output: AsyncStream<Output>.Continuation) {
        self.eventLoop = eventLoop
        self.output = output
    }

    var isWritable: Bool { buffered < highWater }

    func write(_ buffer: ByteBuffer) {
        pending.append(buffer)
    }

    func flush() {
        for buffer in pending {
            buffered += buffer.readableBytes
            output.yield(.bytes(buffer))
        }
        pending.removeAll(keepingCapacity: true)
    }

    func flushAndClose() {
        flush()
        output.yield(.close)
    }

    func close() {
        output.yield(.close)
    }

    /// WebSocket publishers are throttled by the hop per frame; reading is not paused.
    func setReading(_ enabled: Bool) {}

    func written(_ count: Int) {
        let wasWritable = isWritable
        buffered -= count
        if !wasWritable && isWritable { connection?.writabilityChanged() }
    }

    static func run(
        broker: Broker, listener: ListenerInfo, eventLoop: any EventLoop, remoteAddress: String?,
        signedAccessKeyId: String? = nil, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter
    ) async throws {
        let (stream, continuation) = AsyncStream<Output>.makeStream()
        let bridge = try await eventLoop.submit {
            let bridge = WebSocketMQTTBridge(eventLoop: eventLoop, output: continuation)
            let connection = MQTTConnection(
                broker: broker, eventLoop: eventLoop, allocator: ByteBufferAllocator(), listener: listener,
                remoteAddress: remoteAddress, transport: bridge)
            connection.signedAccessKeyId = signedAccessKeyId
            bridge.connection = connection
            connection.start()
            return bridge
        }.get()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await item in stream {
                    switch item {
                    case .bytes(let buffer):
                        do {
                            try await outbound.write(.binary(buffer))
                        } catch {
                            return
                        }
                        let count = buffer.readableBytes
                        eventLoop.execute { bridge.written(count) }
                    case .close:
                        try? await outbound.close(.normalClosure, reason: nil)
                        return
                    }
                }
            }
            do {
                for try await frame in inbound {
                    guard frame.opcode != .text else { break }  // [MQTT-6.0.0-1] binary only
                    let data = frame.data
                    // Waiting for the hop keeps a fast sender from queueing unbounded work.
                    try await eventLoop.submit { bridge.connection?.receive(data) }.get()
                }
            } catch {}
            try? await eventLoop.submit {
                bridge.connection?.transportClosed()
                bridge.connection = nil
            }.get()
            continuation.finish()
            await group.waitForAll()
        }
    }
}
