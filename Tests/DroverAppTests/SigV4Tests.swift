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
}
