import DroverFleetConfig
import DroverRegistry
import DroverShadow
import Foundation
import Hummingbird
import NIOCore

/// Fleet configuration: Drover's own resources, in the control plane's style (SigV4, JSON,
/// AWS error shapes). docs/openapi.yaml describes every operation.
extension ControlPlane {
    func registerConfig(on router: Router<BasicRequestContext>) {
        route(router, .post, "/config/templates/:templateName", "CreateConfigTemplate", createConfigTemplate)
        route(router, .get, "/config/templates", "ListConfigTemplates", listConfigTemplates)
        route(router, .get, "/config/templates/:templateName", "GetConfigTemplate", getConfigTemplate)
        route(router, .delete, "/config/templates/:templateName", "DeleteConfigTemplate", deleteConfigTemplate)
        route(router, .post, "/config/templates/:templateName/versions", "CreateConfigTemplateVersion", createConfigTemplateVersion)
        route(router, .get, "/config/templates/:templateName/versions", "ListConfigTemplateVersions", listConfigTemplateVersions)
        route(router, .get, "/config/templates/:templateName/versions/:version", "GetConfigTemplateVersion", getConfigTemplateVersion)
        route(router, .post, "/config/deployments/:deploymentName", "CreateConfigDeployment", createConfigDeployment)
        route(router, .get, "/config/deployments", "ListConfigDeployments", listConfigDeployments)
        route(router, .get, "/config/deployments/:deploymentName", "GetConfigDeployment", getConfigDeployment)
        route(router, .patch, "/config/deployments/:deploymentName", "UpdateConfigDeployment", updateConfigDeployment)
        route(router, .post, "/config/deployments/:deploymentName/rollback", "RollbackConfigDeployment", rollbackConfigDeployment)
        route(router, .delete, "/config/deployments/:deploymentName", "DeleteConfigDeployment", deleteConfigDeployment)
        route(router, .get, "/config/deployments/:deploymentName/status", "GetConfigDeploymentStatus", getConfigDeploymentStatus)
        route(router, .post, "/config/things/:thingName/reset", "ResetThingConfig", resetThingConfig)
        route(router, .put, "/config/thing-types/:thingTypeName/factory-default", "SetConfigFactoryDefault", setConfigFactoryDefault)
        route(router, .get, "/config/thing-types/:thingTypeName/factory-default", "GetConfigFactoryDefault", getConfigFactoryDefault)
        route(router, .delete, "/config/thing-types/:thingTypeName/factory-default", "DeleteConfigFactoryDefault", deleteConfigFactoryDefault)
    }

    var fleetConfig: FleetConfigService {
        get throws {
            guard let service = configuration.fleetConfig else { throw RegistryError(.internalFailure, "fleet configuration is not enabled") }
            return service
        }
    }

    /// The request body as JSON values, so that documents keep their numbers as they were.
    struct Body {
        let members: [String: JSONValue]

        init(_ call: Call) throws {
            if call.body.isEmpty {
                members = [:]
                return
            }
            switch JSONValue.parse(call.body) {
            case .success(.object(let members)): self.members = members
            case .success: throw RegistryError(.invalidRequest, "the body must be a JSON object")
            case .failure(let error): throw RegistryError(.invalidRequest, "the body is not valid JSON: \(error.message)")
            }
        }

        func string(_ name: String) throws -> String? {
            guard let value = members[name], !value.isNull else { return nil }
            guard let text = value.stringValue else { throw RegistryError(.invalidRequest, "\(name) must be a string") }
            return text
        }

        func required(_ name: String) throws -> String {
            guard let text = try string(name) else { throw RegistryError(.invalidRequest, "\(name) is missing") }
            return text
        }

        func int(_ name: String) throws -> Int? {
            guard let value = members[name], !value.isNull else { return nil }
            guard let number = value.numberValue?.int64Value, number > 0, number <= Int.max else {
                throw RegistryError(.invalidRequest, "\(name) must be a positive whole number")
            }
            return Int(number)
        }

        func document() throws -> JSONValue {
            guard let value = members["document"] else {
                throw RegistryError(.invalidRequest, "document is missing: give the desired state as a JSON object")
            }
            return value
        }
    }

    static func send(_ value: JSONValue) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.jsonBytes)))
    }

    static func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
    static func time(_ value: Double) -> JSONValue { .number(JSONNumber(value) ?? JSONNumber(0)) }
    static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    static func documentValue(_ text: String) -> JSONValue { (try? JSONValue.parse(text).get()) ?? .object([:]) }

    func versionValue(_ version: ConfigTemplateVersion, withDocument: Bool) -> JSONValue {
        var members: [String: JSONValue] = [
            "templateName": .string(version.template), "version": Self.number(version.version), "author": .string(version.author),
            "comment": Self.optional(version.comment), "creationDate": Self.time(version.createdAt),
        ]
        if withDocument { members["document"] = Self.documentValue(version.document) }
        return .object(members.filter { !$0.value.isNull })
    }

    func templateArn(_ call: Call, _ name: String) -> String { registry.arn(call.caller.region, "configtemplate/\(name)") }
    func deploymentArn(_ call: Call, _ name: String) -> String { registry.arn(call.caller.region, "configdeployment/\(name)") }

    // MARK: Templates

    func createConfigTemplate(_ call: Call) async throws -> Response {
        let body = try Body(call)
        let name = try call.parameter("templateName")
        let version = try await fleetConfig.createTemplate(
            call.caller, name: name, description: try body.string("description"), document: try body.document(),
            comment: try body.string("comment"))
        return Self.send(.object([
            "templateName": .string(name), "templateArn": .string(templateArn(call, name)), "version": Self.number(version.version),
        ]))
    }

    func createConfigTemplateVersion(_ call: Call) async throws -> Response {
        let body = try Body(call)
        let name = try call.parameter("templateName")
        let version = try await fleetConfig.createTemplateVersion(
            call.caller, name: name, document: try body.document(), comment: try body.string("comment"))
        return Self.send(.object([
            "templateName": .string(name), "templateArn": .string(templateArn(call, name)), "version": Self.number(version.version),
        ]))
    }

    func getConfigTemplate(_ call: Call) async throws -> Response {
        let name = try call.parameter("templateName")
        let service = try fleetConfig
        let template = try await service.template(name)
        let version = try await service.templateVersion(name, try call.queryInt("version"))
        var members = versionValue(version, withDocument: true).objectValue ?? [:]
        members["templateArn"] = .string(templateArn(call, name))
        members["latestVersion"] = Self.number(template.latestVersion)
        members["lastModifiedDate"] = Self.time(template.lastModifiedAt)
        members["templateCreationDate"] = Self.time(template.createdAt)
        if let description = template.description { members["description"] = .string(description) }
        return Self.send(.object(members))
    }

    func listConfigTemplates(_ call: Call) async throws -> Response {
        let templates = try await fleetConfig.templateList()
        let page = try Registry.pageOfStrings(templates.map(\.name), maxResults: try call.queryInt("maxResults"),
                                              nextToken: call.query("nextToken"))
        let byName = Dictionary(uniqueKeysWithValues: templates.map { ($0.name, $0) })
        let items: [JSONValue] = page.items.compactMap { byName[$0] }.map { template in
            .object([
                "templateName": .string(template.name), "templateArn": .string(templateArn(call, template.name)),
                "latestVersion": Self.number(template.latestVersion), "description": Self.optional(template.description),
                "lastModifiedDate": Self.time(template.lastModifiedAt),
            ].filter { !$0.value.isNull })
        }
        return Self.send(.object(["templates": .array(items), "nextToken": Self.optional(page.nextToken)].filter { !$0.value.isNull }))
    }

    func listConfigTemplateVersions(_ call: Call) async throws -> Response {
        let versions = try await fleetConfig.templateVersions(try call.parameter("templateName"))
        // Newest first, as ListPolicyVersions.
        let keyed = Dictionary(uniqueKeysWithValues: versions.map { (String(format: "%010d", 1_000_000_000 - $0.version), $0) })
        let page = try Registry.pageOfStrings(Array(keyed.keys), maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        let items = page.items.compactMap { keyed[$0] }.map { versionValue($0, withDocument: false) }
        return Self.send(.object(["versions": .array(items), "nextToken": Self.optional(page.nextToken)].filter { !$0.value.isNull }))
    }

    func getConfigTemplateVersion(_ call: Call) async throws -> Response {
        let text = try call.parameter("version")
        guard let number = Int(text), number > 0 else { throw RegistryError(.invalidRequest, "version must be a positive whole number, not '\(text)'") }
        let version = try await fleetConfig.templateVersion(try call.parameter("templateName"), number)
        return Self.send(versionValue(version, withDocument: true))
    }

    func deleteConfigTemplate(_ call: Call) async throws -> Response {
        try await fleetConfig.deleteTemplate(call.caller, name: try call.parameter("templateName"))
        return Self.empty()
    }

    // MARK: Deployments

    func deploymentValue(_ call: Call, _ deployment: ConfigDeployment, rollout: (members: Int, applied: Int, failed: Int)?) -> JSONValue {
        var members: [String: JSONValue] = [
            "deploymentName": .string(deployment.name), "deploymentArn": .string(deploymentArn(call, deployment.name)),
            "templateName": .string(deployment.template), "templateVersion": Self.number(deployment.templateVersion),
            "targetType": .string(deployment.target.kind.name), "targetName": .string(deployment.target.name),
            "shadowName": .string(deployment.shadowName), "revision": Self.number(deployment.revision),
            "creationDate": Self.time(deployment.createdAt), "lastModifiedDate": Self.time(deployment.lastModifiedAt),
        ]
        members["history"] = .array(deployment.history.map { revision in
            .object([
                "revision": Self.number(revision.revision), "templateVersion": Self.number(revision.templateVersion),
                "action": .string(revision.action), "author": .string(revision.author), "comment": Self.optional(revision.comment),
                "time": Self.time(revision.time),
            ].filter { !$0.value.isNull })
        })
        if let rollout {
            members["rollout"] = .object([
                "members": Self.number(rollout.members), "applied": Self.number(rollout.applied), "failed": Self.number(rollout.failed),
                "status": .string(rollout.applied == rollout.members ? "COMPLETED" : "IN_PROGRESS"),
            ])
        }
        return .object(members)
    }

    func createConfigDeployment(_ call: Call) async throws -> Response {
        let body = try Body(call)
        let typeName = try body.required("targetType")
        guard let kind = ConfigTarget.Kind(typeName) else {
            throw RegistryError(.invalidRequest, "targetType must be THING_GROUP or THING_TYPE, not '\(typeName)'")
        }
        let service = try fleetConfig
        let deployment = try await service.createDeployment(
            call.caller, name: try call.parameter("deploymentName"), template: try body.required("templateName"),
            version: try body.int("templateVersion"), target: ConfigTarget(kind: kind, name: try body.required("targetName")),
            shadowName: try body.string("shadowName"), comment: try body.string("comment"))
        return Self.send(deploymentValue(call, deployment, rollout: nil))
    }

    func getConfigDeployment(_ call: Call) async throws -> Response {
        let name = try call.parameter("deploymentName")
        let service = try fleetConfig
        let deployment = try await service.deployment(name)
        return Self.send(deploymentValue(call, deployment, rollout: try await service.rollout(of: name)))
    }

    func listConfigDeployments(_ call: Call) async throws -> Response {
        let deployments = try await fleetConfig.deploymentList(template: call.query("templateName"))
        let page = try Registry.pageOfStrings(deployments.map(\.name), maxResults: try call.queryInt("maxResults"),
                                              nextToken: call.query("nextToken"))
        let byName = Dictionary(uniqueKeysWithValues: deployments.map { ($0.name, $0) })
        let items: [JSONValue] = page.items.compactMap { byName[$0] }.map { deployment in
            .object([
                "deploymentName": .string(deployment.name), "deploymentArn": .string(deploymentArn(call, deployment.name)),
                "templateName": .string(deployment.template), "templateVersion": Self.number(deployment.templateVersion),
                "targetType": .string(deployment.target.kind.name), "targetName": .string(deployment.target.name),
                "shadowName": .string(deployment.shadowName), "revision": Self.number(deployment.revision),
                "lastModifiedDate": Self.time(deployment.lastModifiedAt),
            ])
        }
        return Self.send(.object(["deployments": .array(items), "nextToken": Self.optional(page.nextToken)].filter { !$0.value.isNull }))
    }

    func redeploy(_ call: Call, rollback: Bool) async throws -> Response {
        let body = try Body(call)
        let deployment = try await fleetConfig.redeploy(
            call.caller, name: try call.parameter("deploymentName"), version: try body.int("templateVersion"), rollback: rollback,
            comment: try body.string("comment"))
        return Self.send(deploymentValue(call, deployment, rollout: nil))
    }

    func updateConfigDeployment(_ call: Call) async throws -> Response { try await redeploy(call, rollback: false) }
    func rollbackConfigDeployment(_ call: Call) async throws -> Response { try await redeploy(call, rollback: true) }

    func deleteConfigDeployment(_ call: Call) async throws -> Response {
        try await fleetConfig.deleteDeployment(call.caller, name: try call.parameter("deploymentName"))
        return Self.empty()
    }

    /// Counts for every member; the things of one state (DRIFTED by default) page by page.
    func getConfigDeploymentStatus(_ call: Call) async throws -> Response {
        let stateName = call.query("state") ?? "DRIFTED"
        guard ["DRIFTED", "PENDING", "IN_SYNC"].contains(stateName) else {
            throw RegistryError(.invalidRequest, "state must be DRIFTED, PENDING or IN_SYNC, not '\(stateName)'")
        }
        let status = try await fleetConfig.status(try call.parameter("deploymentName"))
        let chosen = status.things.filter { $0.condition.state.description == stateName }
        let page = try Registry.pageOfStrings(chosen.map(\.thing), maxResults: try call.queryInt("maxResults"),
                                              nextToken: call.query("nextToken"))
        let byThing = Dictionary(uniqueKeysWithValues: chosen.map { ($0.thing, $0) })
        let things: [JSONValue] = page.items.compactMap { byThing[$0] }.map { member in
            .object([
                "thingName": .string(member.thing), "state": .string(member.condition.state.description),
                "reason": Self.optional(member.condition.reason), "keys": .array(member.condition.keys.map(JSONValue.string)),
            ].filter { !$0.value.isNull })
        }
        return Self.send(.object([
            "deploymentName": .string(status.deployment.name), "templateName": .string(status.deployment.template),
            "templateVersion": Self.number(status.deployment.templateVersion), "revision": Self.number(status.deployment.revision),
            "members": Self.number(status.members), "inSync": Self.number(status.inSync), "pending": Self.number(status.pending),
            "drifted": Self.number(status.drifted), "state": .string(stateName), "things": .array(things),
            "nextToken": Self.optional(page.nextToken),
        ].filter { !$0.value.isNull }))
    }

    // MARK: Reset and factory defaults

    func resetThingConfig(_ call: Call) async throws -> Response {
        let body = try Body(call)
        let sourceName = try body.string("source") ?? ConfigReset.Source.template.name
        guard let source = ConfigReset.Source(sourceName) else {
            throw RegistryError(.invalidRequest, "source must be TEMPLATE or FACTORY_DEFAULT, not '\(sourceName)'")
        }
        let reset = try await fleetConfig.reset(
            call.caller, thing: try call.parameter("thingName"), shadowName: try body.string("shadowName"), source: source,
            deploymentName: try body.string("deploymentName"))
        return Self.send(.object([
            "thingName": .string(reset.thing), "shadowName": .string(reset.shadowName), "source": .string(reset.source.name),
            "deploymentName": Self.optional(reset.deployment), "templateVersion": reset.templateVersion.map(Self.number) ?? .null,
            "shadowVersion": Self.number(reset.shadowVersion),
        ].filter { !$0.value.isNull }))
    }

    func factoryDefaultValue(_ value: FactoryDefault) -> JSONValue {
        .object([
            "thingTypeName": .string(value.thingType), "document": Self.documentValue(value.document), "author": .string(value.author),
            "comment": Self.optional(value.comment), "lastModifiedDate": Self.time(value.updatedAt),
        ].filter { !$0.value.isNull })
    }

    func setConfigFactoryDefault(_ call: Call) async throws -> Response {
        let body = try Body(call)
        let value = try await fleetConfig.setFactoryDefault(
            call.caller, thingType: try call.parameter("thingTypeName"), document: try body.document(), comment: try body.string("comment"))
        return Self.send(factoryDefaultValue(value))
    }

    func getConfigFactoryDefault(_ call: Call) async throws -> Response {
        Self.send(factoryDefaultValue(try await fleetConfig.factoryDefault(thingType: try call.parameter("thingTypeName"))))
    }

    func deleteConfigFactoryDefault(_ call: Call) async throws -> Response {
        try await fleetConfig.deleteFactoryDefault(call.caller, thingType: try call.parameter("thingTypeName"))
        return Self.empty()
    }
}
