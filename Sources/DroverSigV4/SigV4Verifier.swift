import Crypto
import Foundation

/// Checks AWS Signature Version 4, in the `Authorization` header or in a presigned query string,
/// as botocore and the AWS CLI produce it.
///
/// The outcome is a value: a verified caller, or the reason the request is refused, phrased so
/// that the user knows what to fix.
public struct SigV4Verifier: Sendable {
    public struct Request {
        public var method: String
        /// The path as it came on the wire (still percent-encoded).
        public var rawPath: String
        public var rawQuery: String
        /// Header names in lowercase; repeated headers appear once each.
        public var headers: [(String, String)]
        public var body: [UInt8]

        public init(method: String, rawPath: String, rawQuery: String, headers: [(String, String)], body: [UInt8]) {
            self.method = method
            self.rawPath = rawPath
            self.rawQuery = rawQuery
            self.headers = headers
            self.body = body
        }
    }

    public enum Outcome: Equatable, Sendable {
        case verified(accessKeyId: String, region: String, service: String)
        /// `code` is the AWS error type; every refusal is HTTP 403.
        case refused(code: String, message: String)
    }

    /// The largest difference allowed between the request's date and ours.
    public var maxSkew: TimeInterval = 15 * 60

    public init() {}

    public func verify(_ request: Request, now: Date, secret: (String) -> String?) -> Outcome {
        let query = Self.parseQuery(request.rawQuery)
        let header = request.headers.first { $0.0 == "authorization" }?.1
        let presigned = query.contains { $0.0 == "X-Amz-Signature" }
        let credential: String, signedHeaders: String, signature: String, amzDate: String
        if let header, !presigned {
            guard header.hasPrefix("AWS4-HMAC-SHA256 ") else {
                return .refused(code: "IncompleteSignatureException",
                                message: "the Authorization header must use AWS4-HMAC-SHA256 (Signature Version 4)")
            }
            var parts: [String: String] = [:]
            for part in header.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
                let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if pair.count == 2 { parts[String(pair[0])] = String(pair[1]) }
            }
            guard let c = parts["Credential"], let h = parts["SignedHeaders"], let s = parts["Signature"] else {
                return .refused(code: "IncompleteSignatureException",
                                message: "the Authorization header needs Credential, SignedHeaders and Signature")
            }
            guard let date = request.headers.first(where: { $0.0 == "x-amz-date" })?.1 else {
                return .refused(code: "IncompleteSignatureException", message: "a signed request needs an X-Amz-Date header")
            }
            (credential, signedHeaders, signature, amzDate) = (c, h, s, date)
        } else if presigned {
            func value(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
            guard value("X-Amz-Algorithm") == "AWS4-HMAC-SHA256", let c = value("X-Amz-Credential"),
                  let h = value("X-Amz-SignedHeaders"), let s = value("X-Amz-Signature"), let d = value("X-Amz-Date")
            else {
                return .refused(code: "IncompleteSignatureException",
                                message: "a presigned URL needs X-Amz-Algorithm=AWS4-HMAC-SHA256, X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Signature")
            }
            (credential, signedHeaders, signature, amzDate) = (c, h, s, d)
            // A whole number of seconds, at most 7 days, as AWS requires; "inf" or "nan" is not one.
            guard let expiresText = value("X-Amz-Expires"), let seconds = Int(expiresText), (1...604_800).contains(seconds)
            else {
                return .refused(code: "AuthorizationQueryParametersError",
                                message: "X-Amz-Expires must be a number of seconds from 1 to 604800")
            }
            let expires = TimeInterval(seconds)
            if let signed = Self.parseDate(d), now.timeIntervalSince(signed) > expires {
                return .refused(code: "InvalidSignatureException",
                                message: "the presigned URL expired at \(Self.format(signed.addingTimeInterval(expires)))")
            }
        } else {
            return .refused(code: "MissingAuthenticationTokenException",
                            message: "the request is not signed: sign it with Signature Version 4 and a Drover access key (see data_dir/admin-credentials)")
        }

        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request" else {
            return .refused(code: "IncompleteSignatureException",
                            message: "the credential must be KEYID/DATE/REGION/SERVICE/aws4_request, not '\(credential)'")
        }
        let (keyId, day, region, service) = (scope[0], scope[1], scope[2], scope[3])
        guard let date = Self.parseDate(amzDate) else {
            return .refused(code: "IncompleteSignatureException", message: "X-Amz-Date '\(amzDate)' is not of the form 20260101T120000Z")
        }
        guard amzDate.hasPrefix(day) else {
            return .refused(code: "InvalidSignatureException", message: "the credential's date \(day) is not the day of X-Amz-Date \(amzDate)")
        }
        if !presigned, abs(date.timeIntervalSince(now)) > maxSkew {
            return .refused(code: "InvalidSignatureException",
                            message: "signature expired: the request's date \(amzDate) is more than 15 minutes from the server's \(Self.format(now)); check the client's clock")
        }
        guard let secret = secret(keyId) else {
            return .refused(code: "UnrecognizedClientException", message: "the access key id \(keyId) is not a valid Drover access key")
        }

        let names = signedHeaders.split(separator: ";").map(String.init)
        guard names.contains("host") else {
            return .refused(code: "InvalidSignatureException", message: "the signed headers must include host")
        }
        var canonicalHeaders = ""
        for name in names {
            let values = request.headers.filter { $0.0 == name }.map { Self.trimAll($0.1) }
            canonicalHeaders += "\(name):\(values.joined(separator: ","))\n"
        }
        let payloadHash = request.headers.first { $0.0 == "x-amz-content-sha256" }?.1
            ?? Self.hex(SHA256.hash(data: request.body))
        var pairs: [(key: String, value: String)] = []
        for (key, value) in query where key != "X-Amz-Signature" {
            pairs.append((Self.encode(key), Self.encode(value)))
        }
        pairs.sort { (a: (key: String, value: String), b: (key: String, value: String)) -> Bool in
            a.key == b.key ? a.value < b.value : a.key < b.key
        }
        let canonicalQuery = pairs.map { pair -> String in pair.key + "=" + pair.value }.joined(separator: "&")
        let canonicalRequest = [
            request.method, Self.canonicalPath(request.rawPath), canonicalQuery, canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let stringToSign = [
            "AWS4-HMAC-SHA256", amzDate, "\(day)/\(region)/\(service)/aws4_request",
            Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        var key = SymmetricKey(data: Array("AWS4\(secret)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let expected = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        guard Self.constantTimeEqual(expected, signature.lowercased()) else {
            return .refused(code: "InvalidSignatureException",
                            message: "the request signature does not match: check the secret access key, and that nothing changed the request after signing")
        }
        return .verified(accessKeyId: keyId, region: region, service: service)
    }

    // MARK: Canonical forms

    /// Pairs in order, percent-decoded ('+' is not a space in SigV4).
    static func parseQuery(_ raw: String) -> [(String, String)] {
        raw.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (key, value)
        }
    }

    /// botocore encodes the already-encoded path once more (every service but S3).
    static func canonicalPath(_ rawPath: String) -> String {
        rawPath.isEmpty ? "/" : encode(rawPath, keepSlash: true)
    }

    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    static func parseDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: text)
    }

    static func format(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }
}

