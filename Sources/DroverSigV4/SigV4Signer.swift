import Crypto
import Foundation

/// Signs a request with Signature Version 4, as botocore does, for Drover's own command line.
public struct SigV4Signer: Sendable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var region: String
    public var service: String

    public init(accessKeyId: String, secretAccessKey: String, region: String = "us-east-1", service: String = "iot") {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
    }

    /// The headers to add: `X-Amz-Date` and `Authorization`. `path` and `query` as they go on
    /// the wire (percent-encoded); `host` with its port.
    public func headers(method: String, host: String, path: String, query: String, body: [UInt8], now: Date = Date()) -> [String: String] {
        let amzDate = SigV4Verifier.format(now)
        let day = String(amzDate.prefix(8))
        var pairs = SigV4Verifier.parseQuery(query).map { (SigV4Verifier.encode($0.0), SigV4Verifier.encode($0.1)) }
        pairs.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        let canonicalQuery = pairs.map { pair -> String in pair.0 + "=" + pair.1 }.joined(separator: "&")
        let payloadHash = SigV4Verifier.hex(SHA256.hash(data: body))
        let canonicalRequest = [
            method, SigV4Verifier.canonicalPath(path), canonicalQuery, "host:\(host)\nx-amz-date:\(amzDate)\n", "host;x-amz-date",
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SigV4Verifier.hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        let key = SigV4Verifier.signingKey(secret: secretAccessKey, day: day, region: region, service: service)
        let signature = SigV4Verifier.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return [
            "X-Amz-Date": amzDate,
            "Authorization": "AWS4-HMAC-SHA256 Credential=\(accessKeyId)/\(scope), SignedHeaders=host;x-amz-date, Signature=\(signature)",
        ]
    }
}
