import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The credentials provider's listener (AWS's `iot:CredentialProvider` endpoint): HTTPS with
/// mutual TLS, one GET per connection. The TLS handshake checks the device's certificate as the
/// MQTT listener does; `answer` gets the verified certificate and decides.
///
/// Bounds: a request head of at most 8 KiB and no body, 10 s to send it, one request per
/// connection.
public final class CredentialsListener: Service {
    /// The verified client certificate (DER), the request path, and `x-amzn-iot-thingname`;
    /// returns the status and the JSON body.
    public typealias Answer = @Sendable (_ certificate: [UInt8], _ path: String, _ thingName: String?) async -> (status: Int, body: [UInt8])

    private let host: String
    private let port: Int
    private let tls: MQTTTLSSetup
    private let group: any EventLoopGroup
    private let logger: Logger
    private let answer: Answer

    public init(host: String, port: Int, tls: MQTTTLSSetup, group: any EventLoopGroup, logger: Logger, answer: @escaping Answer) {
        self.host = host
        self.port = port
        self.tls = tls
        self.group = group
        self.logger = logger
        self.answer = answer
    }

    public func run() async throws {
        let tls = self.tls, answer = self.answer
        let sslContext = try tls.makeContext()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                    try sync.addHandler(tls.makeHandler(sslContext))
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try sync.addHandler(CredentialsRequestHandler(answer: answer))
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.notice("credentials provider ready", metadata: [
            "address": "\(host):\(channel.localAddress?.port ?? 0)", "tls": "mutual, TLS 1.2+",
            "routes": "GET /role-aliases/ALIAS/credentials",
        ])
        await withGracefulShutdownHandler {
            try? await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
    }
}

/// One request, one answer, then the connection closes.
final class CredentialsRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumHeadSize = 8 * 1024

    private let answer: CredentialsListener.Answer
    private var head: HTTPRequestHead?
    private var hasBody = false
    private var answered = false

    init(answer: @escaping CredentialsListener.Answer) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            hasBody = true
        case .end:
            guard !answered, let head else { return }
            answered = true
            let size = head.uri.utf8.count + head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            guard size <= Self.maximumHeadSize else { return respond(context, 431, #"{"message":"the request head is too large"}"#) }
            guard head.method == .GET, !hasBody else {
                return respond(context, 405, #"{"message":"the credentials provider takes GET without a body"}"#)
            }
            guard let certificate = MQTTTLSSetup.peerCertificate(context.channel) else {
                return respond(context, 403, #"{"message":"a client certificate is required"}"#)
            }
            let answer = self.answer
            let path = head.uri, thingName = head.headers.first(name: "x-amzn-iot-thingname")
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.makeFutureWithTask {
                await answer(certificate, path, thingName)
            }.whenSuccess { status, body in
                let (handler, context) = loopBound.value
                handler.respond(context, status, body)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    private func respond(_ context: ChannelHandlerContext, _ status: Int, _ text: String) {
        respond(context, status, Array(text.utf8))
    }

    private func respond(_ context: ChannelHandlerContext, _ status: Int, _ body: [UInt8]) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}
