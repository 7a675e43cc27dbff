import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The bounds of the HTTP listeners, against clients that hold sockets open (slowloris) or send
/// more than the server will read.
public struct HTTPLimits: Sendable, Hashable {
    /// Seconds from the connection (or the end of the previous request) to the end of a request's
    /// headers; a client that has not sent them by then is closed.
    public var headerTimeout: TimeAmount
    /// Seconds from the end of a request's headers to the end of its body (with
    /// `Content-Length`), so that a body sent a byte at a time cannot hold the connection.
    public var bodyTimeout: TimeAmount
    /// Seconds a connection may go without a byte either way before it is closed.
    public var idleTimeout: TimeAmount
    /// Connections open at once, HTTP and HTTPS together; beyond it new ones are closed at once.
    public var maxConnections: Int
    /// Bytes of a request line and headers; beyond it 431.
    public var maxHeaderSize: Int
    /// Bytes of a request body, for any route (routes may take less); beyond it 413.
    public var maxBodySize: Int

    public init(
        headerTimeout: TimeAmount = .seconds(10), bodyTimeout: TimeAmount = .seconds(60), idleTimeout: TimeAmount = .seconds(60),
        maxConnections: Int = 10_000, maxHeaderSize: Int = 16 * 1024, maxBodySize: Int = 1 << 20
    ) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.maxHeaderSize = maxHeaderSize
        self.maxBodySize = maxBodySize
    }
}

/// Counts the open HTTP connections of all listeners, and what the guard refused.
public final class HTTPConnectionGate: Sendable {
    private let state = NIOLockedValueBox((open: 0, refused: 0, timedOut: 0, malformed: 0))
    let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    func enter() -> Bool {
        state.withLockedValue { state in
            guard state.open < limit else {
                state.refused += 1
                return false
            }
            state.open += 1
            return true
        }
    }

    func leave() { state.withLockedValue { $0.open -= 1 } }
    func countTimeout() { state.withLockedValue { $0.timedOut += 1 } }
    func countMalformed() { state.withLockedValue { $0.malformed += 1 } }

    /// Open connections; connections refused at the cap; closed by a deadline; refused for framing.
    public var counts: (open: Int, refused: Int, timedOut: Int, malformed: Int) { state.withLockedValue { $0 } }
}

/// Wraps an HTTP child channel: the connection cap, then a ``HTTPGuardHandler`` in front of the
/// HTTP decoder (behind TLS, when there is TLS).
struct GuardedHTTPChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limits: HTTPLimits
    let gate: HTTPConnectionGate

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            guard gate.enter() else {
                channel.close(promise: nil)
                throw ChannelError.inputClosed
            }
            channel.closeFuture.whenComplete { [gate] _ in gate.leave() }
            try channel.pipeline.syncOperations.addHandler(HTTPGuardHandler(limits: limits, gate: gate))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Base.Value, logger: Logger) async {
        // When the guard ends a connection (a slow client), the WebSocket upgrade handler, still
        // waiting for a request head, logs "Error handling upgrade result" at error level: one
        // line per slow client, for what the guard already counts in /metrics. Only that line
        // of such a connection is dropped.
        let channel = value.channel
        let ended = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: HTTPGuardHandler.self).endedByGuard
        }.get()
        var quiet = logger
        if let ended {
            quiet = Logger(label: logger.label) { _ in QuietWhenEnded(base: logger.handler, ended: ended) }
        }
        await base.handle(value: value, logger: quiet)
    }
}

/// A log handler that drops the WebSocket upgrade's error line once the guard has ended the
/// connection, and passes everything else on.
struct QuietWhenEnded: LogHandler {
    var base: any LogHandler
    let ended: NIOLockedValueBox<Bool>

    func log(event: LogEvent) {
        if event.level == .error, event.message.description == "Error handling upgrade result", ended.withLockedValue({ $0 }) {
            return
        }
        base.log(event: event)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }
}

/// Reads the framing of each HTTP/1.1 request as it arrives, before Hummingbird does, and ends
/// the connection with a clear status when it breaks a bound:
/// - headers not complete within the header deadline: closed (408 if nothing was answered yet);
/// - a `Content-Length` body not complete within the body deadline: 408;
/// - headers larger than the maximum: 431;
/// - `Content-Length` together with `Transfer-Encoding`, two different lengths, a length that is
///   not a number, or a `Transfer-Encoding` other than `chunked`: 400;
/// - a declared body larger than the maximum: 413;
/// - no byte either way for the idle timeout: closed.
/// A WebSocket upgrade, or a chunked body, ends the framing checks for that connection (the idle
/// timeout stays).
final class HTTPGuardHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        /// Reading a request's line and headers (collected in `head`).
        case head
        /// Skipping `remaining` bytes of body.
        case body(remaining: Int)
        /// No more framing checks: an upgrade or a chunked body.
        case passThrough
        case closed
    }

    private let limits: HTTPLimits
    private let gate: HTTPConnectionGate
    /// Set when this handler ended the connection (a deadline, a refusal).
    let endedByGuard = NIOLockedValueBox(false)
    private var phase = Phase.head
    private var head: [UInt8] = []
    private var headerDeadline: Scheduled<Void>?
    private var bodyDeadline: Scheduled<Void>?
    private var idleCheck: Scheduled<Void>?
    /// A WebSocket upgrade: MQTT's keep-alive governs the connection from then on.
    private var upgraded = false
    /// The last request asked for an upgrade; the answer tells whether it happened.
    private var upgradeRequested = false
    private var lastActivity = NIODeadline.now()
    private var answered = false

    init(limits: HTTPLimits, gate: HTTPConnectionGate) {
        self.limits = limits
        self.gate = gate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        lastActivity = .now()
        startHeaderDeadline(context: context)
        scheduleIdleCheck(context: context, in: limits.idleTimeout)
    }

    /// One timer per connection, moved on by activity only when it fires.
    private func scheduleIdleCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            guard !handler.isClosed, !handler.upgraded else { return }
            let idleFor = NIODeadline.now() - handler.lastActivity
            if idleFor >= handler.limits.idleTimeout {
                handler.gate.countTimeout()
                handler.end(context: context, status: nil)
            } else {
                handler.scheduleIdleCheck(context: context, in: handler.limits.idleTimeout - idleFor)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headerDeadline?.cancel()
        bodyDeadline?.cancel()
        idleCheck?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        headerDeadline?.cancel()
        bodyDeadline?.cancel()
        idleCheck?.cancel()
        phase = .closed
        context.fireChannelInactive()
    }

    private func startHeaderDeadline(context: ChannelHandlerContext) {
        headerDeadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headerDeadline = context.eventLoop.scheduleTask(in: limits.headerTimeout) {
            let (handler, context) = loopBound.value
            guard case .head = handler.phase else { return }
            handler.gate.countTimeout()
            handler.end(context: context, status: handler.head.isEmpty && handler.answered ? nil : "408 Request Timeout")
        }
    }

    private func startBodyDeadline(context: ChannelHandlerContext) {
        bodyDeadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        bodyDeadline = context.eventLoop.scheduleTask(in: limits.bodyTimeout) {
            let (handler, context) = loopBound.value
            guard case .body = handler.phase else { return }
            handler.gate.countTimeout()
            handler.end(context: context, status: "408 Request Timeout", message: "the request body did not arrive in time")
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        answered = true
        if upgradeRequested {
            upgradeRequested = false
            if unwrapOutboundIn(data).readableBytesView.starts(with: "HTTP/1.1 101".utf8) {
                // A WebSocket now: MQTT's keep-alive governs the connection from here.
                phase = .passThrough
                upgraded = true
                headerDeadline?.cancel()
                idleCheck?.cancel()
            }
        }
        context.write(data, promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        switch phase {
        case .passThrough:
            return context.fireChannelRead(data)
        case .closed:
            return
        case .head, .body:
            break
        }
        // The bytes are looked at, not changed: they all go on once this read is checked.
        var view = unwrapInboundIn(data)
        scan: while view.readableBytes > 0 {
            switch phase {
            case .body(let remaining):
                let take = min(remaining, view.readableBytes)
                view.moveReaderIndex(forwardBy: take)
                phase = remaining == take ? .head : .body(remaining: remaining - take)
                if remaining == take {
                    bodyDeadline?.cancel()
                    bodyDeadline = nil
                }
            case .head:
                guard let byte = view.readInteger(as: UInt8.self) else { break scan }
                if head.isEmpty {
                    // Blank lines before a request line are allowed (RFC 9112 2.2).
                    if byte == 0x0D || byte == 0x0A { continue }
                    // The next request on a kept-alive connection has begun: its headers are due.
                    if headerDeadline == nil { startHeaderDeadline(context: context) }
                }
                head.append(byte)
                if head.count > limits.maxHeaderSize {
                    gate.countMalformed()
                    return end(context: context, status: "431 Request Header Fields Too Large")
                }
                guard byte == 0x0A, head.count >= 4, head[head.count - 2] == 0x0D, head[head.count - 3] == 0x0A,
                      head[head.count - 4] == 0x0D
                else { continue }
                headerDeadline?.cancel()
                headerDeadline = nil
                let framing = Self.framing(of: head, maxBody: limits.maxBodySize)
                head.removeAll(keepingCapacity: true)
                switch framing {
                case .body(let length):
                    if length > 0 {
                        phase = .body(remaining: length)
                        startBodyDeadline(context: context)
                    }
                case .passThrough:
                    phase = .passThrough
                    break scan
                case .upgrade:
                    // Framing checks end only if the server answers 101 (see `write`).
                    upgradeRequested = true
                case .refuse(let status):
                    gate.countMalformed()
                    return end(context: context, status: status)
                }
            case .passThrough, .closed:
                break scan
            }
        }
        context.fireChannelRead(data)
    }

    private enum Framing: Equatable {
        case body(Int)
        case passThrough
        case upgrade
        case refuse(String)
    }

    /// What follows a request head: a body of a known length, or no more checks.
    static func framingForTesting(_ head: String, maxBody: Int) -> String {
        switch framing(of: Array(head.utf8), maxBody: maxBody) {
        case .body(let n): "body \(n)"
        case .passThrough: "pass"
        case .upgrade: "upgrade"
        case .refuse(let status): status
        }
    }

    /// On the bytes, not on a String of the head: this runs for every request.
    private static func framing(of head: [UInt8], maxBody: Int) -> Framing {
        var lengths: [ArraySlice<UInt8>] = []
        var transferEncodings: [ArraySlice<UInt8>] = []
        var upgrade = false
        for line in lines(of: head).dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return .refuse("400 Bad Request") }
            let name = line[..<colon]
            // No whitespace between a field name and its colon (RFC 9112 5.1).
            if let last = name.last, isBlank(last) { return .refuse("400 Bad Request") }
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(name, "content-length") {
                // "7, 7" is one length said twice: the one space after a comma goes (no more).
                for part in value.split(separator: UInt8(ascii: ",")) {
                    lengths.append(part.first == UInt8(ascii: " ") ? part.dropFirst() : part)
                }
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                transferEncodings.append(value)
            } else if equalsIgnoringCase(name, "upgrade") {
                upgrade = true
            }
        }
        if !transferEncodings.isEmpty {
            // Content-Length with Transfer-Encoding is how requests are smuggled: refuse it.
            guard lengths.isEmpty, transferEncodings.count == 1, equalsIgnoringCase(transferEncodings[0], "chunked") else {
                return .refuse("400 Bad Request")
            }
            return .passThrough
        }
        if upgrade { return .upgrade }
        guard let first = lengths.first else { return .body(0) }
        guard lengths.allSatisfy({ $0.elementsEqual(first) }), !first.isEmpty, first.count <= 18,
              first.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return .refuse("400 Bad Request") }
        let length = first.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard length <= maxBody else { return .refuse("413 Content Too Large") }
        return .body(length)
    }

    /// The lines of a head, split at CRLF (a lone CR or LF stays in its line, and fails the checks).
    private static func lines(of head: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = head.startIndex
        var index = head.startIndex
        while index < head.endIndex {
            if head[index] == UInt8(ascii: "\r"), index + 1 < head.endIndex, head[index + 1] == UInt8(ascii: "\n") {
                lines.append(head[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        if start < head.endIndex { lines.append(head[start...]) }
        return lines
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var bytes = bytes
        while let first = bytes.first, isBlank(first) { bytes.removeFirst() }
        while let last = bytes.last, isBlank(last) { bytes.removeLast() }
        return bytes
    }

    /// ASCII case-insensitive; `lowercase` is already lowercase.
    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            zip(bytes, expected).allSatisfy { byte, wanted in
                (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte) == wanted
            }
        }
    }

    /// Answers `status` (if any) with a short JSON error, in the AWS shape, and closes. What this
    /// read held is not passed on, not even requests complete before the offending one.
    private func end(context: ChannelHandlerContext, status: String?, message: String? = nil) {
        guard !isClosed else { return }
        phase = .closed
        headerDeadline?.cancel()
        bodyDeadline?.cancel()
        idleCheck?.cancel()
        endedByGuard.withLockedValue { $0 = true }
        if let status {
            let standard: String = switch status.prefix(3) {
            case "408": "the request headers did not arrive in time"
            case "431": "the request headers are larger than \(limits.maxHeaderSize) bytes"
            case "413": "the body is larger than \(limits.maxBodySize) bytes"
            default: "the request's framing is invalid or ambiguous (Content-Length with Transfer-Encoding, or two lengths)"
            }
            let type = status.hasPrefix("413") ? "RequestEntityTooLargeException" : "InvalidRequestException"
            let body = "{\"message\":\"\(message ?? standard)\"}"
            let response = "HTTP/1.1 \(status)\r\nContent-Type: application/json\r\nx-amzn-ErrorType: \(type)\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: response))).whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }

    private var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }
}
