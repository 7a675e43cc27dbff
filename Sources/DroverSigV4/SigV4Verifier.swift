import Crypto
import Foundation
import Synchronization

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

    /// What a request must be signed for. An empty set allows any value (unit tests, tools).
    public struct Scope: Sendable, Hashable {
        /// The signing names the route takes: `iot` for the control plane, `iotdata` for shadows
        /// and publishing.
        public var services: Set<String>
        /// The regions this server answers for.
        public var regions: Set<String>
        /// The host names (without port) this server answers to; the signed Host must be one.
        public var hosts: Set<String>
        /// A presigned URL without `X-Amz-Expires` is taken, with the 15 minutes of skew of a
        /// signed header: the AWS IoT Device SDKs sign the MQTT-over-WebSocket upgrade so, and
        /// AWS IoT accepts it. Only that route sets it.
        public var presignedWithoutExpiry: Bool

        public init(
            services: Set<String> = [], regions: Set<String> = [], hosts: Set<String> = [], presignedWithoutExpiry: Bool = false
        ) {
            self.services = services
            self.regions = regions
            self.hosts = hosts
            self.presignedWithoutExpiry = presignedWithoutExpiry
        }
    }

    /// A request whose signature can be checked once the SHA-256 of its body is known: everything
    /// that does not depend on the body has been checked already.
    public struct SignedRequest: Sendable {
        public let accessKeyId: String
        public let region: String
        public let service: String
        /// The `x-amz-content-sha256` header, when the client sent one (it is signed): the
        /// signature can then be checked before the body is read.
        public let declaredPayloadHash: String?
        fileprivate let canonicalPrefix: String
        fileprivate let amzDate: String
        fileprivate let scope: String
        fileprivate let signingKey: SymmetricKey
        fileprivate let signature: String

        /// Checks the signature for a body whose SHA-256 (lowercase hex) is `payloadHash`.
        public func verify(payloadHash: String) -> Outcome {
            if let declaredPayloadHash, declaredPayloadHash != payloadHash {
                return .refused(code: "InvalidSignatureException",
                                message: "the x-amz-content-sha256 header does not match the SHA-256 of the body")
            }
            let canonicalRequest = canonicalPrefix + payloadHash
            let stringToSign = [
                "AWS4-HMAC-SHA256", amzDate, scope, SigV4Verifier.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
            ].joined(separator: "\n")
            let expected = SigV4Verifier.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey))
            guard SigV4Verifier.constantTimeEqual(expected, signature.lowercased()) else {
                return .refused(code: "InvalidSignatureException",
                                message: "the request signature does not match: check the secret access key, and that nothing changed the request after signing")
            }
            return .verified(accessKeyId: accessKeyId, region: region, service: service)
        }

        /// The signature checked with the declared payload hash, before the body is read; nil
        /// when there is none and the body is needed.
        public func verifyBeforeBody() -> Outcome? {
            declaredPayloadHash.map { verify(payloadHash: $0) }
        }
    }

    public enum Checked: Sendable {
        case refused(code: String, message: String)
        case signed(SignedRequest)
    }

    /// The largest difference allowed between the request's date and ours.
    public var maxSkew: TimeInterval = 15 * 60
    /// The services, regions and hosts a signature must name.
    public var scope: Scope

    public init(scope: Scope = Scope()) {
        self.scope = scope
    }

    /// Checks a request and its body.
    public func verify(_ request: Request, now: Date, secret: (String) -> String?) -> Outcome {
        switch check(request, now: now, secret: secret) {
        case .refused(let code, let message): return .refused(code: code, message: message)
        case .signed(let signed): return signed.verify(payloadHash: Self.payloadHash(of: request.body))
        }
    }

    /// Checks everything about a request but its body (`request.body` is not read): the form of
    /// the signature, the key, the date, the scope and the host.
    public func check(_ request: Request, now: Date, secret: (String) -> String?) -> Checked {
        let query = Self.parseQuery(request.rawQuery)
        let header = request.headers.first { $0.0 == "authorization" }?.1
        let presigned = query.contains { $0.0 == "X-Amz-Signature" }
        let credential: String, signedHeaders: String, signature: String, amzDate: String
        var expiresAfter: TimeInterval?
        if let header, !presigned {
            guard header.hasPrefix("AWS4-HMAC-SHA256 ") else {
                return .refused(code: "IncompleteSignatureException",
                                message: "the Authorization header must use AWS4-HMAC-SHA256 (Signature Version 4)")
            }
            var parts: [String: String] = [:]
            for part in Self.pieces(header.dropFirst("AWS4-HMAC-SHA256 ".count), ",") {
                let pair = Self.pieces(Self.trimmed(part), "=", maxSplits: 1)
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
            if let expiresText = value("X-Amz-Expires") {
                guard let seconds = Int(expiresText), (1...604_800).contains(seconds) else {
                    return .refused(code: "AuthorizationQueryParametersError",
                                    message: "X-Amz-Expires must be a number of seconds from 1 to 604800")
                }
                expiresAfter = TimeInterval(seconds)
            } else if !scope.presignedWithoutExpiry {
                return .refused(code: "AuthorizationQueryParametersError",
                                message: "X-Amz-Expires must be a number of seconds from 1 to 604800")
            }
        } else {
            return .refused(code: "MissingAuthenticationTokenException",
                            message: "the request is not signed: sign it with Signature Version 4 and a Drover access key (see data_dir/admin-credentials)")
        }

        let parts = Self.pieces(credential[...], "/", omittingEmpty: false).map(String.init)
        guard parts.count == 5, parts[4] == "aws4_request" else {
            return .refused(code: "IncompleteSignatureException",
                            message: "the credential must be KEYID/DATE/REGION/SERVICE/aws4_request, not '\(credential.clippedForMessage)'")
        }
        let (keyId, day, region, service) = (parts[0], parts[1], parts[2], parts[3])
        guard let date = Self.parseDate(amzDate) else {
            return .refused(code: "IncompleteSignatureException",
                            message: "X-Amz-Date '\(amzDate.clippedForMessage)' is not of the form 20260101T120000Z")
        }
        guard amzDate.hasPrefix(day), day.count == 8 else {
            return .refused(code: "InvalidSignatureException",
                            message: "the credential's date \(day.clippedForMessage) is not the day of X-Amz-Date \(amzDate)")
        }
        if let expires = expiresAfter {
            if now.timeIntervalSince(date) > expires {
                return .refused(code: "InvalidSignatureException",
                                message: "the presigned URL expired at \(Self.format(date.addingTimeInterval(expires)))")
            }
            if date.timeIntervalSince(now) > maxSkew {
                return .refused(code: "InvalidSignatureException",
                                message: "the presigned URL is dated \(amzDate), more than 15 minutes after the server's \(Self.format(now)); check the client's clock")
            }
        } else if abs(date.timeIntervalSince(now)) > maxSkew {
            return .refused(code: "InvalidSignatureException",
                            message: "signature expired: the request's date \(amzDate) is more than 15 minutes from the server's \(Self.format(now)); check the client's clock")
        }
        if !scope.regions.isEmpty && !scope.regions.contains(region) {
            return .refused(code: "InvalidSignatureException",
                            message: "Credential should be scoped to a valid region: this server answers for \(scope.regions.sorted().joined(separator: ", ")), not '\(region.clippedForMessage)' (api.regions)")
        }
        if !scope.services.isEmpty && !scope.services.contains(service) {
            return .refused(code: "InvalidSignatureException",
                            message: "Credential should be scoped to correct service: '\(scope.services.sorted().joined(separator: "' or '"))', not '\(service.clippedForMessage)'")
        }

        // botocore signs the path with its dot segments removed, so the signature would not
        // cover them: `/things/a/../b` would pass as `/things/b` and route elsewhere.
        if Self.pieces(request.rawPath[...], "/").contains(where: { $0 == "." || $0 == ".." }) {
            return .refused(code: "InvalidSignatureException",
                            message: "the path may not have '.' or '..' segments, which the signature does not cover")
        }
        let names = Self.pieces(signedHeaders[...], ";", omittingEmpty: false).map(String.init)
        guard names.contains("host") else {
            return .refused(code: "InvalidSignatureException", message: "the signed headers must include host")
        }
        guard names == names.sorted(), Set(names).count == names.count, !names.contains(where: \.isEmpty) else {
            return .refused(code: "IncompleteSignatureException",
                            message: "SignedHeaders must name each header once, in lowercase, sorted, separated by ';'")
        }
        let hosts = request.headers.filter { $0.0 == "host" }
        guard hosts.count == 1, let host = hosts.first?.1 else {
            return .refused(code: "InvalidSignatureException", message: "the request needs exactly one Host header")
        }
        if !scope.hosts.isEmpty && !scope.hosts.contains(Self.hostName(host).lowercased()) {
            return .refused(code: "InvalidSignatureException",
                            message: "the Host '\(host.clippedForMessage)' is not one of this server's names (api.host_names)")
        }
        let contentHashes = request.headers.filter { $0.0 == "x-amz-content-sha256" }
        var declared: String?
        if !contentHashes.isEmpty {
            guard contentHashes.count == 1, names.contains("x-amz-content-sha256") else {
                return .refused(code: "InvalidSignatureException",
                                message: "x-amz-content-sha256 must be sent once and be one of the signed headers")
            }
            let value = Self.trimAll(contentHashes[0].1)
            if value == "UNSIGNED-PAYLOAD" || value.hasPrefix("STREAMING-") {
                return .refused(code: "InvalidSignatureException",
                                message: "the payload must be signed: x-amz-content-sha256 '\(value.clippedForMessage)' is not accepted")
            }
            guard value.utf8.count == 64, value.utf8.allSatisfy({ Self.isLowerHex($0) }) else {
                return .refused(code: "InvalidSignatureException",
                                message: "x-amz-content-sha256 must be the SHA-256 of the body in lowercase hex")
            }
            declared = value
        }
        guard let secret = secret(keyId) else {
            return .refused(code: "UnrecognizedClientException",
                            message: "the access key id \(keyId.clippedForMessage) is not a valid Drover access key")
        }

        // One pass over the headers: each signed one's values, in the order they came.
        var signedValues = [[String]](repeating: [], count: names.count)
        let positions = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, value) in request.headers {
            if let position = positions[name] { signedValues[position].append(Self.trimAll(value)) }
        }
        var canonicalHeaders = ""
        for (name, values) in zip(names, signedValues) {
            canonicalHeaders += name + ":" + values.joined(separator: ",") + "\n"
        }
        var pairs: [(key: String, value: String)] = []
        for (key, value) in query where key != "X-Amz-Signature" {
            pairs.append((Self.encode(key), Self.encode(value)))
        }
        pairs.sort { (a: (key: String, value: String), b: (key: String, value: String)) -> Bool in
            a.key == b.key ? a.value < b.value : a.key < b.key
        }
        let canonicalQuery = pairs.map { pair -> String in pair.key + "=" + pair.value }.joined(separator: "&")
        let prefix = [
            request.method, Self.canonicalPath(request.rawPath), canonicalQuery, canonicalHeaders, signedHeaders, "",
        ].joined(separator: "\n")
        let key = Self.signingKey(secret: secret, day: day, region: region, service: service)
        return .signed(SignedRequest(
            accessKeyId: keyId, region: region, service: service, declaredPayloadHash: declared, canonicalPrefix: prefix,
            amzDate: amzDate, scope: "\(day)/\(region)/\(service)/aws4_request", signingKey: key, signature: signature))
    }

    /// The signing keys derived lately, by secret, day, region and service: a client signs every
    /// request of a day with the same key, so it is derived (four HMACs) once, not per request.
    /// Bounded: emptied when it holds `maxCachedKeys`.
    private static let derivedKeys = Mutex<[String: SymmetricKey]>([:])
    static let maxCachedKeys = 1024

    /// `HMAC("AWS4" + secret, day, region, service, "aws4_request")`, as SigV4 derives it.
    public static func signingKey(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        let cacheKey = secret + "\u{0}" + day + "\u{0}" + region + "\u{0}" + service
        if let known = derivedKeys.withLock({ $0[cacheKey] }) { return known }
        var key = SymmetricKey(data: Array("AWS4\(secret)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        derivedKeys.withLock { keys in
            if keys.count >= maxCachedKeys { keys.removeAll(keepingCapacity: true) }
            keys[cacheKey] = key
        }
        return key
    }

    /// The SHA-256 of a body in lowercase hex, as the canonical request carries it.
    public static func payloadHash(of body: [UInt8]) -> String {
        hex(SHA256.hash(data: body))
    }

    /// `host` without a port: `example.com:8443` → `example.com`, `[::1]:8443` → `::1`.
    static func hostName(_ host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            return String(host[host.index(after: host.startIndex)..<close])
        }
        if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon { return String(host[..<colon]) }
        return host
    }

    /// `text` cut at an ASCII separator, on its bytes: `String.split` compares Characters, which
    /// costs several times more, and every request splits its signature's fields so.
    static func pieces(_ text: Substring, _ separator: Unicode.Scalar, maxSplits: Int = .max,
                       omittingEmpty: Bool = true) -> [Substring] {
        text.utf8.split(separator: UInt8(ascii: separator), maxSplits: maxSplits,
                        omittingEmptySubsequences: omittingEmpty).map { Substring($0) }
    }

    static func isLowerHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    // MARK: Canonical forms

    /// Pairs in order, percent-decoded ('+' is not a space in SigV4).
    static func parseQuery(_ raw: String) -> [(String, String)] {
        pieces(raw[...], "&").map { pair in
            let parts = pieces(pair, "=", maxSplits: 1, omittingEmpty: false)
            let key = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (key, value)
        }
    }

    /// As botocore makes it for every service but S3: dot segments and repeated slashes
    /// removed (RFC 3986 5.2.4), then the already-encoded path encoded once more.
    static func canonicalPath(_ rawPath: String) -> String {
        encode(removeDotSegments(rawPath), keepSlash: true)
    }

    /// botocore's `normalize_url_path`: `/a/./b/../c//d/` is `/a/c/d/`, and an empty path `/`.
    static func removeDotSegments(_ path: String) -> String {
        guard !path.isEmpty else { return "/" }
        if isNormal(path) { return path }
        var output: [Substring] = []
        for segment in path.split(separator: "/") where segment != "." {
            if segment == ".." {
                _ = output.popLast()
            } else {
                output.append(segment)
            }
        }
        let first = path.hasPrefix("/") ? "/" : ""
        let last = path.hasSuffix("/") && !output.isEmpty ? "/" : ""
        return first + output.joined(separator: "/") + last
    }

    /// Whether `path` starts with '/' and has no empty, '.' or '..' segment (the last may be
    /// empty: a trailing slash), so that removing dot segments would leave it as it is.
    static func isNormal(_ path: String) -> Bool {
        let bytes = path.utf8
        guard bytes.first == UInt8(ascii: "/") else { return false }
        var segmentLength = 0
        var dots = 0
        var first = true
        for byte in bytes {
            if byte == UInt8(ascii: "/") {
                if !first && (segmentLength == 0 || (segmentLength == dots && dots <= 2)) { return false }
                first = false
                segmentLength = 0
                dots = 0
            } else {
                segmentLength += 1
                if byte == UInt8(ascii: ".") { dots += 1 }
            }
        }
        // The last segment: empty (a trailing slash) is kept; "." or ".." is not normal.
        return !(segmentLength > 0 && segmentLength == dots && dots <= 2)
    }

    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(upperHexDigits[Int(byte >> 4)])
                out.append(upperHexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Without the spaces and tabs at either end.
    static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }

    /// Blanks at either end removed, and each run of blanks inside made one space, as SigV4's
    /// canonical headers want. Most values have none: they are returned as they are.
    static func trimAll(_ value: String) -> String {
        var previousBlank = true
        var clean = true
        for byte in value.utf8 {
            let blank = byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
            if blank && (previousBlank || byte == UInt8(ascii: "\t")) {
                clean = false
                break
            }
            previousBlank = blank
        }
        if clean && !previousBlank { return value }
        if value.isEmpty { return value }
        return value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    private static let lowerHexDigits = Array("0123456789abcdef".utf8)
    private static let upperHexDigits = Array("0123456789ABCDEF".utf8)

    /// Lowercase hex, two digits a byte (by table: this runs several times for every request).
    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(lowerHexDigits[Int(byte >> 4)])
            out.append(lowerHexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }

    /// `20260101T120000Z` (ISO 8601 basic, UTC), strictly: 16 ASCII characters, a real day of
    /// the Gregorian calendar, hours 00-23, minutes and seconds 00-59. By arithmetic, not a
    /// DateFormatter (whose set-up cost more than the rest of the signature check).
    static func parseDate(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour < 24, minute < 60, second < 60
        else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3_600 + minute * 60 + second))
    }

    /// `date` as X-Amz-Date writes it (whole seconds, UTC).
    static func format(_ date: Date) -> String {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let inDay = seconds - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(repeating: "0", count: max(0, 4 - "\(year)".count)) + "\(year)"
        return yearText + two(month) + two(day) + "T" + two(inDay / 3_600) + two(inDay / 60 % 60) + two(inDay % 60) + "Z"
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days from 1970-01-01 to a day of the proleptic Gregorian calendar (Howard Hinnant's
    /// `days_from_civil`).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of ``daysSinceEpoch(year:month:day:)`` (`civil_from_days`).
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension String {
    /// At most 64 characters of client input, for an error message.
    var clippedForMessage: String {
        count <= 64 ? self : String(prefix(64)) + "..."
    }
}
