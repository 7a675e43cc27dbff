import DroverRegistry
import Foundation
import HTTPTypes
import Hummingbird

/// Billing groups, tags, ListThingPrincipalsV2, and the older principal-policy operations that
/// scripts written for AWS still call; the JSON shapes are botocore's.
extension ControlPlane {
    func registerBillingGroupsAndTags(on router: Router<BasicRequestContext>) {
        // The fixed paths before the :billingGroupName ones.
        route(router, .put, "/billing-groups/addThingToBillingGroup", "AddThingToBillingGroup", addThingToBillingGroup)
        route(router, .put, "/billing-groups/removeThingFromBillingGroup", "RemoveThingFromBillingGroup", removeThingFromBillingGroup)
        route(router, .post, "/billing-groups/:billingGroupName", "CreateBillingGroup", createBillingGroup)
        route(router, .get, "/billing-groups/:billingGroupName", "DescribeBillingGroup", describeBillingGroup)
        route(router, .patch, "/billing-groups/:billingGroupName", "UpdateBillingGroup", updateBillingGroup)
        route(router, .delete, "/billing-groups/:billingGroupName", "DeleteBillingGroup", deleteBillingGroup)
        route(router, .get, "/billing-groups", "ListBillingGroups", listBillingGroups)
        route(router, .get, "/billing-groups/:billingGroupName/things", "ListThingsInBillingGroup", listThingsInBillingGroup)
        route(router, .post, "/tags", "TagResource", tagResource)
        route(router, .post, "/untag", "UntagResource", untagResource)
        route(router, .get, "/tags", "ListTagsForResource", listTagsForResource)
        route(router, .get, "/things/:thingName/principals-v2", "ListThingPrincipalsV2", listThingPrincipalsV2)
        route(router, .put, "/principal-policies/:policyName", "AttachPrincipalPolicy", attachPrincipalPolicy)
        route(router, .delete, "/principal-policies/:policyName", "DetachPrincipalPolicy", detachPrincipalPolicy)
        route(router, .get, "/principal-policies", "ListPrincipalPolicies", listPrincipalPolicies)
        route(router, .get, "/policy-principals", "ListPolicyPrincipals", listPolicyPrincipals)
    }

    // MARK: Tags

    struct Tag: Codable {
        var Key: String
        var Value: String?
    }

    static func tags(_ list: [Tag]?) throws -> [String: String] {
        try Registry.tags((list ?? []).map { ($0.Key, $0.Value) })
    }

    struct TagResourceInput: Decodable {
        var resourceArn: String
        var tags: [Tag]
    }

    func tagResource(_ call: Call) async throws -> Response {
        let input = try call.decode(TagResourceInput.self)
        try await registry.tagResource(call.caller, arn: input.resourceArn, tags: try Self.tags(input.tags))
        return Self.empty()
    }

    struct UntagResourceInput: Decodable {
        var resourceArn: String
        var tagKeys: [String]
    }

    func untagResource(_ call: Call) async throws -> Response {
        let input = try call.decode(UntagResourceInput.self)
        guard input.tagKeys.count <= 50 else { throw RegistryError(.invalidRequest, "tagKeys has at most 50 keys") }
        try await registry.untagResource(call.caller, arn: input.resourceArn, keys: input.tagKeys)
        return Self.empty()
    }

    struct TagsOutput: Encodable {
        var tags: [Tag]
        var nextToken: String?
    }

    func listTagsForResource(_ call: Call) async throws -> Response {
        guard let arn = call.query("resourceArn") else { throw RegistryError(.invalidRequest, "resourceArn is required") }
        let tags = try registry.tags(ofResource: arn)
        // At most 50 tags: one page holds them all.
        return Self.json(TagsOutput(tags: tags.keys.sorted().map { Tag(Key: $0, Value: tags[$0]) }, nextToken: nil))
    }

    // MARK: Billing groups

    struct BillingGroupProperties: Codable {
        var billingGroupDescription: String?
    }

    struct CreateBillingGroupInput: Decodable {
        var billingGroupProperties: BillingGroupProperties?
        var tags: [Tag]?
    }

    struct CreateBillingGroupOutput: Encodable {
        var billingGroupName: String
        var billingGroupArn: String
        var billingGroupId: String
    }

    func billingGroupArn(_ caller: Caller, _ name: String) -> String { registry.arn(caller.region, "billinggroup/\(name)") }

    func createBillingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(CreateBillingGroupInput.self)
        let group = try await registry.createBillingGroup(
            call.caller, name: try call.parameter("billingGroupName"),
            description: input.billingGroupProperties?.billingGroupDescription, tags: try Self.tags(input.tags))
        return Self.json(CreateBillingGroupOutput(
            billingGroupName: group.name, billingGroupArn: billingGroupArn(call.caller, group.name), billingGroupId: group.id))
    }

    struct BillingGroupMetadata: Encodable {
        var creationDate: Double
    }

    struct DescribeBillingGroupOutput: Encodable {
        var billingGroupName: String
        var billingGroupId: String
        var billingGroupArn: String
        var version: Int64
        var billingGroupProperties: BillingGroupProperties
        var billingGroupMetadata: BillingGroupMetadata
    }

    func describeBillingGroup(_ call: Call) async throws -> Response {
        let group = try registry.describeBillingGroup(try call.parameter("billingGroupName"))
        return Self.json(DescribeBillingGroupOutput(
            billingGroupName: group.name, billingGroupId: group.id, billingGroupArn: billingGroupArn(call.caller, group.name),
            version: group.version, billingGroupProperties: BillingGroupProperties(billingGroupDescription: group.description),
            billingGroupMetadata: BillingGroupMetadata(creationDate: group.createdAt)))
    }

    struct UpdateBillingGroupInput: Decodable {
        var billingGroupProperties: BillingGroupProperties
        var expectedVersion: Int64?
    }

    func updateBillingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(UpdateBillingGroupInput.self)
        let version = try await registry.updateBillingGroup(
            call.caller, name: try call.parameter("billingGroupName"),
            description: input.billingGroupProperties.billingGroupDescription, expectedVersion: input.expectedVersion)
        return Self.json(VersionOutput(version: version))
    }

    func deleteBillingGroup(_ call: Call) async throws -> Response {
        let expected = try call.expectedVersion()
        try await registry.deleteBillingGroup(call.caller, name: try call.parameter("billingGroupName"), expectedVersion: expected)
        return Self.empty()
    }

    struct BillingGroupsOutput: Encodable {
        var billingGroups: [NameAndArn]
        var nextToken: String?
    }

    func listBillingGroups(_ call: Call) async throws -> Response {
        let page = try registry.listBillingGroups(
            namePrefix: call.query("namePrefixFilter"), maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(BillingGroupsOutput(
            billingGroups: page.items.map { NameAndArn(groupName: $0.name, groupArn: billingGroupArn(call.caller, $0.name)) },
            nextToken: page.nextToken))
    }

    struct BillingMembershipInput: Decodable {
        var billingGroupName: String?
        var billingGroupArn: String?
        var thingName: String?
        var thingArn: String?
    }

    func addThingToBillingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(BillingMembershipInput.self)
        try await registry.setBillingGroup(
            call.caller, "AddThingToBillingGroup", thing: try Registry.thingName(input.thingName, arn: input.thingArn),
            group: try Registry.billingGroupName(input.billingGroupName, arn: input.billingGroupArn))
        return Self.empty()
    }

    func removeThingFromBillingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(BillingMembershipInput.self)
        try await registry.setBillingGroup(
            call.caller, "RemoveThingFromBillingGroup", thing: try Registry.thingName(input.thingName, arn: input.thingArn),
            group: nil, onlyFrom: try Registry.billingGroupName(input.billingGroupName, arn: input.billingGroupArn))
        return Self.empty()
    }

    func listThingsInBillingGroup(_ call: Call) async throws -> Response {
        let things = try registry.thingsInBillingGroup(try call.parameter("billingGroupName"))
        let page = try Registry.pageOfStrings(things, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(ThingNamesOutput(things: page.items, nextToken: page.nextToken))
    }

    // MARK: Principals

    static func exclusive(_ call: Call) throws -> Bool {
        switch call.query("thingPrincipalType") {
        case nil, "NON_EXCLUSIVE_THING": return false
        case "EXCLUSIVE_THING": return true
        case let other?:
            throw RegistryError(.invalidRequest, "thingPrincipalType must be EXCLUSIVE_THING or NON_EXCLUSIVE_THING, not '\(other.prefix(64))'")
        }
    }

    struct ThingPrincipalObject: Encodable {
        var principal: String
        var thingPrincipalType: String
    }

    struct PrincipalsV2Output: Encodable {
        var thingPrincipalObjects: [ThingPrincipalObject]
        var nextToken: String?
    }

    func listThingPrincipalsV2(_ call: Call) async throws -> Response {
        var objects = try registry.thingPrincipalObjects(try call.parameter("thingName"))
        if call.query("thingPrincipalType") != nil {
            let exclusive = try Self.exclusive(call)
            objects = objects.filter { $0.exclusive == exclusive }
        }
        let page = try Registry.pageOfStrings(objects.map(\.id), maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        let exclusiveIds = Set(objects.filter(\.exclusive).map(\.id))
        return Self.json(PrincipalsV2Output(
            thingPrincipalObjects: page.items.map {
                ThingPrincipalObject(principal: certArn(call.caller, $0),
                                     thingPrincipalType: exclusiveIds.contains($0) ? "EXCLUSIVE_THING" : "NON_EXCLUSIVE_THING")
            },
            nextToken: page.nextToken))
    }

    func header(_ call: Call, _ name: String, _ field: String) throws -> String {
        guard let value = call.request.headers[HTTPField.Name(name)!] else {
            throw RegistryError(.invalidRequest, "\(field) (the \(name) header) is required")
        }
        return value
    }

    /// The older form of AttachPolicy, for a certificate principal.
    func attachPrincipalPolicy(_ call: Call) async throws -> Response {
        try await registry.attachPolicy(call.caller, name: try call.parameter("policyName"),
                                        target: try header(call, "x-amzn-iot-principal", "principal"))
        return Self.empty()
    }

    func detachPrincipalPolicy(_ call: Call) async throws -> Response {
        try await registry.detachPolicy(call.caller, name: try call.parameter("policyName"),
                                        target: try header(call, "x-amzn-iot-principal", "principal"))
        return Self.empty()
    }

    func listPrincipalPolicies(_ call: Call) async throws -> Response {
        let policies = try registry.attachedPolicies(target: try header(call, "x-amzn-iot-principal", "principal"))
        let page = try Registry.pageOfStrings(policies.map(\.name), maxResults: try call.queryInt("pageSize"), nextToken: call.query("marker"))
        let names = call.query("isAscendingOrder") == "false" ? page.items.reversed() : page.items
        return Self.json(ListPoliciesOutput(policies: names.map { PolicySummary(policyName: $0, policyArn: policyArn(call.caller, $0)) },
                                            nextMarker: page.nextToken))
    }

    struct PolicyPrincipalsOutput: Encodable {
        var principals: [String]
        var nextMarker: String?
    }

    /// The certificates a policy is attached to, as ARNs (the operation predates group targets).
    func listPolicyPrincipals(_ call: Call) async throws -> Response {
        let name = try header(call, "x-amzn-iot-policy", "policyName")
        let ids = try registry.targets(ofPolicy: name).filter { $0.hasPrefix("cert/") }.map { String($0.dropFirst(5)) }
        let page = try Registry.pageOfStrings(ids, maxResults: try call.queryInt("pageSize"), nextToken: call.query("marker"))
        return Self.json(PolicyPrincipalsOutput(principals: page.items.map { certArn(call.caller, $0) }, nextMarker: page.nextToken))
    }
}
