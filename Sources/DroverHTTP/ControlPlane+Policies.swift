import DroverPolicy
import DroverRegistry
import Foundation
import Hummingbird

/// Policies, their versions and attachments, GetEffectivePolicies and TestAuthorization.
extension ControlPlane {
    struct PolicyInput: Decodable {
        var policyDocument: String
        var tags: [Tag]?
    }

    struct CreatePolicyOutput: Encodable {
        var policyName: String
        var policyArn: String
        var policyDocument: String
        var policyVersionId: String
    }

    func policyArn(_ caller: Caller, _ name: String) -> String { registry.arn(caller.region, "policy/\(name)") }

    func createPolicy(_ call: Call) async throws -> Response {
        let input = try call.decode(PolicyInput.self)
        let policy = try await registry.createPolicy(call.caller, name: try call.parameter("policyName"), document: input.policyDocument,
                                                     tags: try Self.tags(input.tags))
        return Self.json(CreatePolicyOutput(policyName: policy.name, policyArn: policyArn(call.caller, policy.name),
                                            policyDocument: policy.defaultDocument, policyVersionId: "1"))
    }

    struct GetPolicyOutput: Encodable {
        var policyName: String
        var policyArn: String
        var policyDocument: String
        var defaultVersionId: String
        var creationDate: Double
        var lastModifiedDate: Double
        var generationId: String
    }

    func getPolicy(_ call: Call) async throws -> Response {
        let policy = try registry.policy(try call.parameter("policyName"))
        return Self.json(GetPolicyOutput(
            policyName: policy.name, policyArn: policyArn(call.caller, policy.name), policyDocument: policy.defaultDocument,
            defaultVersionId: String(policy.defaultVersion), creationDate: policy.createdAt, lastModifiedDate: policy.modifiedAt,
            generationId: String(Int(policy.modifiedAt * 1000))))
    }

    struct PolicySummary: Encodable {
        var policyName: String
        var policyArn: String
    }

    struct ListPoliciesOutput: Encodable {
        var policies: [PolicySummary]
        var nextMarker: String?
    }

    func listPolicies(_ call: Call) async throws -> Response {
        let page = try registry.listPolicies(pageSize: try call.queryInt("pageSize"), marker: call.query("marker"),
                                             ascending: call.query("isAscendingOrder") != "false")
        return Self.json(ListPoliciesOutput(policies: page.items.map { PolicySummary(policyName: $0.name, policyArn: policyArn(call.caller, $0.name)) },
                                            nextMarker: page.nextToken))
    }

    func deletePolicy(_ call: Call) async throws -> Response {
        try await registry.deletePolicy(call.caller, name: try call.parameter("policyName"))
        return Self.empty()
    }

    struct CreateVersionOutput: Encodable {
        var policyArn: String
        var policyDocument: String
        var policyVersionId: String
        var isDefaultVersion: Bool
    }

    func createPolicyVersion(_ call: Call) async throws -> Response {
        let input = try call.decode(PolicyInput.self)
        let name = try call.parameter("policyName")
        let (policy, id) = try await registry.createPolicyVersion(
            call.caller, name: name, document: input.policyDocument, setAsDefault: call.query("setAsDefault") == "true")
        return Self.json(CreateVersionOutput(policyArn: policyArn(call.caller, name), policyDocument: input.policyDocument,
                                             policyVersionId: String(id), isDefaultVersion: policy.defaultVersion == id))
    }

    struct VersionSummary: Encodable {
        var versionId: String
        var isDefaultVersion: Bool
        var createDate: Double
    }

    struct ListVersionsOutput: Encodable {
        var policyVersions: [VersionSummary]
    }

    func listPolicyVersions(_ call: Call) async throws -> Response {
        let policy = try registry.policy(try call.parameter("policyName"))
        return Self.json(ListVersionsOutput(policyVersions: policy.versions.sorted { $0.id > $1.id }.map {
            VersionSummary(versionId: String($0.id), isDefaultVersion: $0.id == policy.defaultVersion, createDate: $0.createdAt)
        }))
    }

    struct GetVersionOutput: Encodable {
        var policyArn: String
        var policyName: String
        var policyDocument: String
        var policyVersionId: String
        var isDefaultVersion: Bool
        var creationDate: Double
        var lastModifiedDate: Double
        var generationId: String
    }

    func getPolicyVersion(_ call: Call) async throws -> Response {
        let policy = try registry.policy(try call.parameter("policyName"))
        let text = try call.parameter("policyVersionId")
        guard let version = policy.versions.first(where: { String($0.id) == text }) else {
            throw RegistryError(.notFound, "version \(text) of policy \(policy.name) does not exist")
        }
        return Self.json(GetVersionOutput(
            policyArn: policyArn(call.caller, policy.name), policyName: policy.name, policyDocument: version.document,
            policyVersionId: text, isDefaultVersion: version.id == policy.defaultVersion, creationDate: version.createdAt,
            lastModifiedDate: version.createdAt, generationId: String(Int(version.createdAt * 1000))))
    }

    func setDefaultPolicyVersion(_ call: Call) async throws -> Response {
        try await registry.setDefaultPolicyVersion(call.caller, name: try call.parameter("policyName"),
                                                   version: try call.parameter("policyVersionId"))
        return Self.empty()
    }

    func deletePolicyVersion(_ call: Call) async throws -> Response {
        try await registry.deletePolicyVersion(call.caller, name: try call.parameter("policyName"),
                                               version: try call.parameter("policyVersionId"))
        return Self.empty()
    }

    // MARK: Attachments

    struct TargetInput: Decodable {
        var target: String
    }

    func attachPolicy(_ call: Call) async throws -> Response {
        try await registry.attachPolicy(call.caller, name: try call.parameter("policyName"), target: try call.decode(TargetInput.self).target)
        return Self.empty()
    }

    func detachPolicy(_ call: Call) async throws -> Response {
        try await registry.detachPolicy(call.caller, name: try call.parameter("policyName"), target: try call.decode(TargetInput.self).target)
        return Self.empty()
    }

    func listAttachedPolicies(_ call: Call) async throws -> Response {
        let policies = try registry.attachedPolicies(target: try call.parameter("target"))
        let page = try Registry.pageOfStrings(policies.map(\.name), maxResults: try call.queryInt("pageSize"), nextToken: call.query("marker"))
        return Self.json(ListPoliciesOutput(policies: page.items.map { PolicySummary(policyName: $0, policyArn: policyArn(call.caller, $0)) },
                                            nextMarker: page.nextToken))
    }

    struct TargetsOutput: Encodable {
        var targets: [String]
        var nextMarker: String?
    }

    func listTargetsForPolicy(_ call: Call) async throws -> Response {
        let keys = try registry.targets(ofPolicy: try call.parameter("policyName"))
        let page = try Registry.pageOfStrings(keys, maxResults: try call.queryInt("pageSize"), nextToken: call.query("marker"))
        return Self.json(TargetsOutput(targets: page.items.map { registry.arn(call.caller.region, $0) }, nextMarker: page.nextToken))
    }

    // MARK: Effective policies and TestAuthorization

    struct EffectiveInput: Decodable {
        var principal: String?
    }

    struct EffectivePolicy: Encodable {
        var policyName: String
        var policyArn: String
        var policyDocument: String
    }

    struct EffectiveOutput: Encodable {
        var effectivePolicies: [EffectivePolicy]
    }

    func getEffectivePolicies(_ call: Call) async throws -> Response {
        let input = try call.decode(EffectiveInput.self)
        guard let principal = input.principal else { throw RegistryError(.invalidRequest, "principal is required") }
        var policies = try registry.attachedPolicies(target: principal)
        // With a thing: the policies of its groups (and their ancestors) too.
        if let thing = call.query("thingName") {
            for group in try registry.groupsOfThing(thing) {
                for ancestor in registry.snapshot.lineage(ofGroup: group) {
                    for policy in try registry.attachedPolicies(target: "arn:aws:iot:::thinggroup/\(ancestor.name)")
                    where !policies.contains(where: { $0.name == policy.name }) {
                        policies.append(policy)
                    }
                }
            }
        }
        return Self.json(EffectiveOutput(effectivePolicies: policies.map {
            EffectivePolicy(policyName: $0.name, policyArn: policyArn(call.caller, $0.name), policyDocument: $0.defaultDocument)
        }))
    }

    struct AuthInfo: Codable {
        var actionType: String?
        var resources: [String]
    }

    struct TestAuthorizationInput: Decodable {
        var principal: String?
        var authInfos: [AuthInfo]
        var policyNamesToAdd: [String]?
        var policyNamesToSkip: [String]?
    }

    struct PolicyList: Encodable {
        var policies: [PolicySummary]
    }

    struct Denied: Encodable {
        var implicitDeny: PolicyList
        var explicitDeny: PolicyList
    }

    struct AuthResult: Encodable {
        var authInfo: AuthInfo
        var allowed: PolicyList
        var denied: Denied
        var authDecision: String
        var missingContextValues: [String]
        /// Drover's addition: which statement decided, and why.
        var explanation: String
    }

    struct TestAuthorizationOutput: Encodable {
        var authResults: [AuthResult]
    }

    func testAuthorization(_ call: Call) async throws -> Response {
        let input = try call.decode(TestAuthorizationInput.self)
        guard let principal = input.principal else { throw RegistryError(.invalidRequest, "principal (a certificate ARN) is required") }
        let certificateId = try Registry.certificateTarget(principal)
        let state = registry.snapshot
        guard state.certificates[certificateId] != nil else { throw RegistryError(.notFound, "certificate \(certificateId) does not exist") }
        var (context, policies) = state.policyContext(
            certificateId: certificateId, clientId: call.query("clientId"), region: call.caller.region,
            account: registry.configuration.account)
        let skip = Set(input.policyNamesToSkip ?? [])
        policies.removeAll { skip.contains($0.name) }
        for name in input.policyNamesToAdd ?? [] where !policies.contains(where: { $0.name == name }) {
            guard let document = state.parsedPolicies[name] else { throw RegistryError(.notFound, "policy \(name) does not exist") }
            policies.append(NamedPolicy(name: name, document: document))
        }
        var results: [AuthResult] = []
        for info in input.authInfos {
            let actions = ["PUBLISH": PolicyAction.publish, "SUBSCRIBE": .subscribe, "RECEIVE": .receive, "CONNECT": .connect]
            guard let type = info.actionType, let action = actions[type] else {
                throw RegistryError(.invalidRequest, "actionType must be PUBLISH, SUBSCRIBE, RECEIVE or CONNECT")
            }
            for resource in info.resources {
                let decision = evaluate(policies, PolicyRequest(action: action, resource: resource), context: context)
                let decidingPolicy = decision.statement.map { [PolicySummary(policyName: $0.policyName, policyArn: policyArn(call.caller, $0.policyName))] } ?? []
                let decisionName: String = switch decision.outcome {
                case .allowed: "ALLOWED"
                case .explicitDeny: "EXPLICIT_DENY"
                case .implicitDeny: "IMPLICIT_DENY"
                }
                results.append(AuthResult(
                    authInfo: AuthInfo(actionType: type, resources: [resource]),
                    allowed: PolicyList(policies: decision.outcome == .allowed ? decidingPolicy : []),
                    denied: Denied(
                        implicitDeny: PolicyList(policies: decision.outcome == .implicitDeny
                                                 ? policies.map { PolicySummary(policyName: $0.name, policyArn: policyArn(call.caller, $0.name)) } : []),
                        explicitDeny: PolicyList(policies: decision.outcome == .explicitDeny ? decidingPolicy : [])),
                    authDecision: decisionName, missingContextValues: [], explanation: decision.explanation))
            }
        }
        return Self.json(TestAuthorizationOutput(authResults: results))
    }
}
