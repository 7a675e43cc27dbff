import NIOCore
import NIOSSL

/// Mutual TLS for an MQTT listener: the server's certificate and key, and the check of each
/// client certificate. TLS 1.2 is the least accepted; a client without a certificate fails the
/// handshake.
public struct MQTTTLSSetup: Sendable {
    /// PEM: the server's certificate first, then its issuers.
    public var certificateChainPEM: String
    public var privateKeyPEM: String
    /// Decides whether a client certificate (its DER; the rest of the presented chain after it)
    /// is accepted. It runs on the event loop during the handshake: it must answer from memory.
    public var verifyClient: @Sendable (_ leaf: [UInt8], _ chain: [[UInt8]]) -> Bool

    public init(certificateChainPEM: String, privateKeyPEM: String,
                verifyClient: @escaping @Sendable (_ leaf: [UInt8], _ chain: [[UInt8]]) -> Bool) {
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.verifyClient = verifyClient
    }

    func makeContext() throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificateChainPEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // The mutual-TLS helpers default to TLS 1.0; we take nothing below 1.2.
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: configuration)
    }

    /// The handler for one connection: the client's chain is checked by `verifyClient`.
    func makeHandler(_ context: NIOSSLContext) -> NIOSSLServerHandler {
        let verify = verifyClient
        return NIOSSLServerHandler(context: context) { certificates, promise in
            guard let leaf = certificates.first, let der = try? leaf.toDERBytes() else {
                promise.succeed(.failed)
                return
            }
            let rest = certificates.dropFirst().compactMap { try? $0.toDERBytes() }
            promise.succeed(verify(der, rest) ? .certificateVerified : .failed)
        }
    }

    /// The DER of the verified client certificate on a channel with this handler.
    static func peerCertificate(_ channel: any Channel) -> [UInt8]? {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self) else { return nil }
        return try? handler.peerCertificate?.toDERBytes()
    }
}
