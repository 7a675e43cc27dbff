@testable import DroverSigV4
import Foundation
import Testing

@Suite("Signature Version 4")
struct SigV4Tests {
    /// AWS's published test suite, "get-vanilla": AKIDEXAMPLE, 2015-08-30T12:36:00Z.
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    let date = Date(timeIntervalSince1970: 1_440_938_160)
    let vanilla = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"

    func request(signature: String, date amzDate: String = "20150830T123600Z") -> SigV4Verifier.Request {
        SigV4Verifier.Request(
            method: "GET", rawPath: "/", rawQuery: "",
            headers: [
                ("host", "example.amazonaws.com"), ("x-amz-date", amzDate),
                ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(signature)"),
            ],
            body: [])
    }

    @Test("AWS's get-vanilla vector verifies")
    func vanillaVector() {
        let outcome = SigV4Verifier().verify(request(signature: vanilla), now: date) { $0 == "AKIDEXAMPLE" ? secret : nil }
        #expect(outcome == .verified(accessKeyId: "AKIDEXAMPLE", region: "us-east-1", service: "service"))
    }

    @Test("the signer produces the get-vanilla signature")
    func signerMatchesVector() {
        let headers = SigV4Signer(accessKeyId: "AKIDEXAMPLE", secretAccessKey: secret, region: "us-east-1", service: "service")
            .headers(method: "GET", host: "example.amazonaws.com", path: "/", query: "", body: [], now: date)
        #expect(headers["Authorization"]?.hasSuffix("Signature=\(vanilla)") == true)
    }

    @Test("a wrong signature, an unknown key, a skewed clock and a missing header are each refused with a reason")
    func refusals() {
        let verifier = SigV4Verifier()
        let lookup: (String) -> String? = { $0 == "AKIDEXAMPLE" ? secret : nil }
        guard case .refused(let code, _) = verifier.verify(request(signature: String(repeating: "0", count: 64)), now: date, secret: lookup) else {
            Issue.record("a wrong signature verified")
            return
        }
        #expect(code == "InvalidSignatureException")
        let noKeys: (String) -> String? = { _ in nil }
        guard case .refused(let code, _) = verifier.verify(request(signature: vanilla), now: date, secret: noKeys) else {
            Issue.record("an unknown key verified")
            return
        }
        #expect(code == "UnrecognizedClientException")
        guard case .refused(let code, let message) = verifier.verify(request(signature: vanilla), now: date.addingTimeInterval(16 * 60), secret: lookup) else {
            Issue.record("a request 16 minutes old verified")
            return
        }
        #expect(code == "InvalidSignatureException" && message.contains("15 minutes"))
        let unsigned = SigV4Verifier.Request(method: "GET", rawPath: "/", rawQuery: "", headers: [("host", "h")], body: [])
        guard case .refused(let code, _) = verifier.verify(unsigned, now: date, secret: lookup) else {
            Issue.record("an unsigned request verified")
            return
        }
        #expect(code == "MissingAuthenticationTokenException")
    }

    @Test("canonical forms: the path is encoded once more, the query sorted and encoded")
    func canonicalForms() {
        #expect(SigV4Verifier.canonicalPath("/things/a%20b") == "/things/a%2520b")
        #expect(SigV4Verifier.encode("a b/c~") == "a%20b%2Fc~")
        #expect(SigV4Verifier.parseQuery("b=2&a=1&c").map(\.0) == ["b", "a", "c"])
    }

    @Test("X-Amz-Date is read strictly and written back the same, by arithmetic")
    func dates() {
        #expect(SigV4Verifier.parseDate("20150830T123600Z") == date)
        #expect(SigV4Verifier.format(date) == "20150830T123600Z")
        #expect(SigV4Verifier.parseDate("19700101T000000Z") == Date(timeIntervalSince1970: 0))
        // Leap days: 2024 and 2000 have one, 2100 and 2023 do not.
        #expect(SigV4Verifier.parseDate("20240229T235959Z") == Date(timeIntervalSince1970: 1_709_251_199))
        #expect(SigV4Verifier.parseDate("20000229T000000Z") == Date(timeIntervalSince1970: 951_782_400))
        for bad in ["20230229T000000Z", "21000229T000000Z", "20261301T000000Z", "20260100T000000Z", "20260431T000000Z",
                    "20260101T240000Z", "20260101T126000Z", "20260101T120060Z", "20260101T120000", "20260101 120000Z",
                    "2026010aT120000Z", "+0260101T120000Z", "20260101T120000Z ", "", "２０２６0101T120000Z"] {
            #expect(SigV4Verifier.parseDate(bad) == nil, "\(bad)")
        }
        // Every day for 60 years around now comes back as it went.
        var day = Date(timeIntervalSince1970: 946_684_800 + 45_296)
        for _ in 0..<(60 * 366 / 7) {
            let text = SigV4Verifier.format(day)
            #expect(SigV4Verifier.parseDate(text) == day, "\(text)")
            day.addTimeInterval(7 * 86_400 + 3_601)
        }
        #expect(SigV4Verifier.format(Date(timeIntervalSince1970: 1_440_938_160.9)) == "20150830T123600Z")
    }

    @Test("hex and percent-encoding by table")
    func tables() {
        #expect(SigV4Verifier.hex([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(SigV4Verifier.hex([]) == "")
        #expect(SigV4Verifier.encode("é/\u{0}", keepSlash: true) == "%C3%A9/%00")
        #expect(SigV4Verifier.payloadHash(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("the fast paths (a clean header value, a normal path) agree with the general rules on every input")
    func fastPaths() {
        func slowTrim(_ value: String) -> String {
            value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        }
        func slowRemove(_ path: String) -> String {
            guard !path.isEmpty else { return "/" }
            var output: [Substring] = []
            for segment in path.split(separator: "/") where segment != "." {
                if segment == ".." { _ = output.popLast() } else { output.append(segment) }
            }
            let first = path.hasPrefix("/") ? "/" : ""
            let last = path.hasSuffix("/") && !output.isEmpty ? "/" : ""
            return first + output.joined(separator: "/") + last
        }
        // Every string of up to 6 characters from a small alphabet.
        let alphabet: [Character] = ["a", ".", "/", " ", "\t"]
        var strings = [""]
        var frontier = [""]
        for _ in 0..<6 {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + String($0) } }
            strings += frontier
        }
        for text in strings {
            #expect(SigV4Verifier.trimAll(text) == slowTrim(text), "\(Array(text.utf8))")
            #expect(SigV4Verifier.removeDotSegments(text) == slowRemove(text), "\(text)")
        }
        #expect(SigV4Verifier.trimAll("application/x-amz-json-1.1") == "application/x-amz-json-1.1")
        #expect(SigV4Verifier.removeDotSegments("/things/my...thing/") == "/things/my...thing/")
        #expect(SigV4Verifier.removeDotSegments("/things/.../x") == "/things/.../x")
    }
}
