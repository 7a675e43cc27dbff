import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One kept-alive HTTP/1.1 connection on NIO, plain or TLS, that sends one request at a time:
/// a load client that costs little per request, so that the server is what is measured
/// (URLSession on Linux goes through libcurl and a thread per task).
struct NIOHTTPConnection: Sendable {
    let channel: any Channel
    private let collector: ResponseCollector

    static func connect(
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

    /// Sends a request and returns the response's status once it has been read whole.
    func send(method: String, path: String, headers: [(String, String)], body: [UInt8]) async throws -> Int {
        let channel = self.channel
        let collector = self.collector
        return try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Int> in
            let promise = channel.eventLoop.makePromise(of: Int.self)
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

    func close() async {
        try? await channel.close().get()
    }
}

/// Completes the pending request's promise with the status when the response ends.
/// `@unchecked Sendable`: used on its channel's event loop only.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    var pending: EventLoopPromise<Int>?
    private var status = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = Int(head.status.code)
        case .body: break
        case .end:
            let promise = pending
            pending = nil
            promise?.succeed(status)
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
