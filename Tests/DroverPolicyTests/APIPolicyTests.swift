@testable import DroverPolicy
import Testing

@Suite("Access key policies")
struct APIPolicyTests {
    func policy(_ text: String) throws -> APIPolicy { try APIPolicy.parse(text).get() }

    func request(_ action: String, _ resource: String = "*") -> APIPolicy.Request {
        let parts = action.split(separator: ":", maxSplits: 1).map(String.init)
        return APIPolicy.Request(service: parts[0], operation: parts[1], resource: resource)
    }

    @Test("default deny, explicit deny wins, wildcards in actions and resources")
    func evaluation() throws {
        let p = try policy(#"""
            {"Version":"2012-10-17","Statement":[
             {"Effect":"Allow","Action":["iot:Describe*","iot:Update?hing"],"Resource":"arn:aws:iot:*:*:thing/s-*"},
             {"Effect":"Deny","Action":"iot:DescribeThing","Resource":"arn:aws:iot:*:*:thing/s-secret"}]}
            """#)
        let arn = "arn:aws:iot:us-east-1:123456789012:thing/"
        #expect(p.allows(request("iot:DescribeThing", arn + "s-1")))
        #expect(p.allows(request("iot:UpdateThing", arn + "s-1")))
        #expect(!p.allows(request("iot:DescribeThing", arn + "s-secret")))
        #expect(!p.allows(request("iot:DescribeThing", arn + "other")))
        #expect(!p.allows(request("iot:DeleteThing", arn + "s-1")))
        #expect(!p.allows(request("drover:CreateAccessKey")))
    }

    @Test("iot: names the data plane as well; iotdata: only the data plane")
    func dataPlane() throws {
        let iot = try policy(#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Get*","Resource":"*"}]}"#)
        #expect(iot.allows(request("iotdata:GetThingShadow")))
        let data = try policy(#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iotdata:*","Resource":"*"}]}"#)
        #expect(data.allows(request("iotdata:UpdateThingShadow")))
        #expect(!data.allows(request("iot:CreateThing")))
    }

    @Test("a pattern covers another only symbol for symbol")
    func globCovers() {
        #expect(Glob.covers("iot:*", "iot:Describe*"))
        #expect(Glob.covers("iot:Describe*", "iot:DescribeThing"))
        #expect(Glob.covers("iot:Describe*", "iot:Describe*"))
        #expect(!Glob.covers("iot:Describe*", "iot:*"))
        #expect(!Glob.covers("iot:D?", "iot:D*"))
        #expect(Glob.covers("iot:D*", "iot:D?"))
        #expect(Glob.covers("*", "drover:*"))
        #expect(!Glob.covers("iot:DescribeThing", "iot:DescribeThin?"))
    }

    @Test("a key's policy covers what it may hand out, Deny statements included")
    func covers() throws {
        let mine = try policy(#"""
            {"Version":"2012-10-17","Statement":[
             {"Effect":"Allow","Action":["iot:Describe*","drover:CreateAccessKey"],"Resource":"*"},
             {"Effect":"Deny","Action":"iot:DescribeCertificate","Resource":"*"}]}
            """#)
        let narrower = try policy(#"""
            {"Version":"2012-10-17","Statement":[
             {"Effect":"Allow","Action":"iot:DescribeThing","Resource":"arn:aws:iot:*:*:thing/a"},
             {"Effect":"Deny","Action":"iot:DescribeCertificate","Resource":"*"}]}
            """#)
        #expect(mine.covers(narrower))
        let withoutDeny = try policy(#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:DescribeThing","Resource":"*"}]}"#)
        #expect(!mine.covers(withoutDeny))
        #expect(!mine.covers(try policy(APIRole.admin.document)))
        #expect(try policy(APIRole.admin.document).covers(mine))
        for role in APIRole.allCases {
            #expect(try policy(APIRole.admin.document).covers(try policy(role.document)))
        }
    }

    @Test("bad documents are refused with the reason", arguments: [
        (#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#, "invalid action"),
        (#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"thing/x"}]}"#, "ARN"),
        (#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*","Condition":{}}]}"#, "Condition"),
        (#"{"Version":"2012-10-17","Statement":[{"Action":"iot:*","Resource":"*"}]}"#, "Effect, Action and Resource"),
        (#"{"Version":"2013","Statement":[]}"#, "Version"),
        (#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#, "1 to 256"),
    ])
    func refused(text: String, fragment: String) {
        guard case .failure(let error) = APIPolicy.parse(text) else {
            Issue.record("accepted: \(text)")
            return
        }
        #expect(error.message.contains(fragment), "\(error.message)")
    }
}
