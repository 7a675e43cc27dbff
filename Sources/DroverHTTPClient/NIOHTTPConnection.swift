import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One kept-alive HTTP/1.1 connection on NIO, plain or TLS, that sends one request at a time.
/// The load tool uses it because it costs little per request, so that the server is what is
/// measured (URLSession on Linux goes through libcurl and a thread per task); the command line
/// uses it because it can trust the server's own CA, which URLSession on Linux cannot be told.
public struct NIOHTTPConnection: Sendable {
    /// A response read whole.
    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: [UInt8]
    }

    let channel: any Channel
    private let collector: ResponseCollector

    /// A TLS context for a client: TLS 1.2 or newer, trusting `caFile` (PEM) when given.
    public static func tlsContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile { configuration.trustRoots = .file(caFile) }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Connects to `host:port`; with `tls`, the server's certificate must be valid for
    /// `serverName` (nil for an IP address, which is then checked against the certificate).
    public static func connect(
        host: String, port: Int, tls: NIOSSLContext?, serverName: String?, group: any EventLoopGroup
    ) async throws -> NIOHTTPConnection {
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        return NIOHTTPConnection(channel: channel, collector: collector)
    }

    /// Sends a request and returns the response once it has been read whole (bodies up to
    /// 16 MiB).
    public func send(method: String, path: String, headers: [(String, String)], body: [UInt8]) async throws -> Response {
        let channel = self.channel
        let collector = self.collector
        return try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Response> in
            let promise = channel.eventLoop.makePromise(of: Response.self)
            collector.pending = promise
            var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
            head.headers = HTTPHeaders(headers)
            head.headers.replaceOrAdd(name: "Content-Length", value: "\(body.count)")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if !body.isEmpty { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return promise.futureResult
        }.get()
    }

    public func close() async {
        try? await channel.close().get()
    }
}

/// Completes the pending request's promise with the response when it ends.
/// `@unchecked Sendable`: used on its channel's event loop only.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var pending: EventLoopPromise<NIOHTTPConnection.Response>?
    private var response = NIOHTTPConnection.Response(status: 0, headers: [:], body: [])
    private static let maximumBody = 16 << 20

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = .init(status: Int(head.status.code), headers: head.headers, body: [])
        case .body(let buffer):
            guard response.body.count + buffer.readableBytes <= Self.maximumBody else {
                pending?.fail(ChannelError.inputClosed)
                pending = nil
                context.close(promise: nil)
                return
            }
            response.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            let promise = pending
            pending = nil
            promise?.succeed(response)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pending?.fail(error)
        pending = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.fail(ChannelError.ioOnClosedChannel)
        pending = nil
        context.fireChannelInactive()
    }
}
