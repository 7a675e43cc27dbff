import DroverPolicy
import DroverRegistry
import DroverShadow
import Foundation
import Hummingbird

/// Things, thing types and DescribeEndpoint; the JSON shapes are botocore's.
extension ControlPlane {
    struct AttributePayload: Codable, Equatable {
        var attributes: [String: String]?
        var merge: Bool?
    }

    struct CreateThingInput: Decodable, Equatable {
        var thingTypeName: String?
        var attributePayload: AttributePayload?
        var billingGroupName: String?

        /// The body read with the shadow service's parser: `JSONDecoder`'s generic machinery cost
        /// more than the rest of the call. The answers are `decode`'s (tested against it): unknown
        /// members are ignored, `null` is a missing member, the first member of the wrong type (in
        /// the order of the members here; among attributes, any one) is named by its path, and
        /// anything else that is not JSON is refused. A name given twice is
        /// refused too, where `JSONDecoder` would take one of them, and so is nesting deeper than
        /// 64 (in members that CreateThing does not read).
        init(body: [UInt8]) throws {
            guard !body.isEmpty else { return }
            guard case .success(let document) = JSONValue.parse(body, limits: .init(maximumBytes: body.count)) else { throw ControlPlane.notJSON }
            guard let members = document.objectValue else { throw ControlPlane.wrongType("") }
            func string(_ value: JSONValue?, _ path: String) throws -> String? {
                guard let value, !value.isNull else { return nil }
                guard let text = value.stringValue else { throw ControlPlane.wrongType(path) }
                return text
            }
            thingTypeName = try string(members["thingTypeName"], "thingTypeName")
            if let payload = members["attributePayload"], !payload.isNull {
                guard let fields = payload.objectValue else { throw ControlPlane.wrongType("attributePayload") }
                var result = AttributePayload()
                if let attributes = fields["attributes"], !attributes.isNull {
                    guard let map = attributes.objectValue else { throw ControlPlane.wrongType("attributePayload.attributes") }
                    var decoded: [String: String] = [:]
                    decoded.reserveCapacity(map.count)
                    for (key, value) in map {
                        guard let text = value.stringValue else { throw ControlPlane.wrongType("attributePayload.attributes.\(key)") }
                        decoded[key] = text
                    }
                    result.attributes = decoded
                }
                if let merge = fields["merge"], !merge.isNull {
                    guard let flag = merge.boolValue else { throw ControlPlane.wrongType("attributePayload.merge") }
                    result.merge = flag
                }
                attributePayload = result
            }
            billingGroupName = try string(members["billingGroupName"], "billingGroupName")
        }

        init(thingTypeName: String? = nil, attributePayload: AttributePayload? = nil, billingGroupName: String? = nil) {
            self.thingTypeName = thingTypeName
            self.attributePayload = attributePayload
            self.billingGroupName = billingGroupName
        }
    }

    struct ThingOutput: Encodable {
        var defaultClientId: String?
        var thingName: String
        var thingId: String?
        var thingArn: String
        var thingTypeName: String?
        var attributes: [String: String]
        var version: Int64
        var billingGroupName: String?
    }

    func thingOutput(_ thing: Thing, _ caller: Caller, full: Bool) -> ThingOutput {
        ThingOutput(defaultClientId: full ? thing.name : nil, thingName: thing.name, thingId: full ? thing.id : nil,
                    thingArn: registry.arn(caller.region, "thing/\(thing.name)"), thingTypeName: thing.typeName,
                    attributes: thing.attributes, version: thing.version, billingGroupName: full ? thing.billingGroupName : nil)
    }

    func createThing(_ call: Call) async throws -> Response {
        let name = try call.parameter("thingName")
        let input = try CreateThingInput(body: call.body)
        let thing = try await registry.createThing(
            call.caller, name: name, typeName: input.thingTypeName, attributes: input.attributePayload?.attributes ?? [:],
            billingGroupName: input.billingGroupName)
        // By hand: the answer sent most often (CreateThingOutput's members, sorted).
        var answer = JSONObjectWriter()
        answer.add("thingArn", registry.arn(call.caller.region, "thing/\(thing.name)"))
        answer.add("thingId", thing.id)
        answer.add("thingName", thing.name)
        return Self.json(bytes: answer.finish())
    }

    func describeThing(_ call: Call) async throws -> Response {
        let thing = try registry.describeThing(try call.parameter("thingName"))
        return Self.json(thingOutput(thing, call.caller, full: true))
    }

    struct UpdateThingInput: Decodable {
        var thingTypeName: String?
        var attributePayload: AttributePayload?
        var expectedVersion: Int64?
        var removeThingType: Bool?
    }

    func updateThing(_ call: Call) async throws -> Response {
        let input = try call.decode(UpdateThingInput.self)
        try await registry.updateThing(
            call.caller, name: try call.parameter("thingName"), typeName: input.thingTypeName,
            removeThingType: input.removeThingType ?? false, attributes: input.attributePayload?.attributes,
            merge: input.attributePayload?.merge ?? false, expectedVersion: input.expectedVersion)
        return Self.empty()
    }

    func deleteThing(_ call: Call) async throws -> Response {
        let expected = try call.expectedVersion()
        try await registry.deleteThing(call.caller, name: try call.parameter("thingName"), expectedVersion: expected)
        return Self.empty()
    }

    struct ListThingsOutput: Encodable {
        var things: [ThingOutput]
        var nextToken: String?
    }

    func listThings(_ call: Call) async throws -> Response {
        let filter = Registry.ThingFilter(
            attributeName: call.query("attributeName"), attributeValue: call.query("attributeValue"),
            usePrefixAttributeValue: call.query("usePrefixAttributeValue") == "true", typeName: call.query("thingTypeName"))
        let page = try registry.listThings(filter, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(ListThingsOutput(things: page.items.map { thingOutput($0, call.caller, full: false) },
                                          nextToken: page.nextToken))
    }

    // MARK: Thing types

    struct ThingTypeProperties: Codable {
        var thingTypeDescription: String?
        var searchableAttributes: [String]?
    }

    struct CreateThingTypeInput: Decodable {
        var thingTypeProperties: ThingTypeProperties?
        var tags: [Tag]?
    }

    struct CreateThingTypeOutput: Encodable {
        var thingTypeName: String
        var thingTypeArn: String
        var thingTypeId: String
    }

    struct ThingTypeMetadata: Encodable {
        var deprecated: Bool
        var deprecationDate: Double?
        var creationDate: Double
    }

    struct ThingTypeOutput: Encodable {
        var thingTypeName: String
        var thingTypeId: String?
        var thingTypeArn: String
        var thingTypeProperties: ThingTypeProperties
        var thingTypeMetadata: ThingTypeMetadata
    }

    func thingTypeOutput(_ type: ThingType, _ caller: Caller, full: Bool) -> ThingTypeOutput {
        ThingTypeOutput(
            thingTypeName: type.name, thingTypeId: full ? type.id : nil,
            thingTypeArn: registry.arn(caller.region, "thingtype/\(type.name)"),
            thingTypeProperties: .init(thingTypeDescription: type.description,
                                       searchableAttributes: type.searchableAttributes.isEmpty ? nil : type.searchableAttributes),
            thingTypeMetadata: .init(deprecated: type.deprecated, deprecationDate: type.deprecatedAt, creationDate: type.createdAt))
    }

    func createThingType(_ call: Call) async throws -> Response {
        let input = try call.decode(CreateThingTypeInput.self)
        let type = try await registry.createThingType(
            call.caller, name: try call.parameter("thingTypeName"),
            description: input.thingTypeProperties?.thingTypeDescription,
            searchableAttributes: input.thingTypeProperties?.searchableAttributes ?? [], tags: try Self.tags(input.tags))
        return Self.json(CreateThingTypeOutput(thingTypeName: type.name, thingTypeArn: registry.arn(call.caller.region, "thingtype/\(type.name)"),
                                               thingTypeId: type.id))
    }

    func describeThingType(_ call: Call) async throws -> Response {
        Self.json(thingTypeOutput(try registry.describeThingType(try call.parameter("thingTypeName")), call.caller, full: true))
    }

    struct DeprecateInput: Decodable {
        var undoDeprecate: Bool?
    }

    func deprecateThingType(_ call: Call) async throws -> Response {
        let input = try call.decode(DeprecateInput.self)
        try await registry.deprecateThingType(call.caller, name: try call.parameter("thingTypeName"), undo: input.undoDeprecate ?? false)
        return Self.empty()
    }

    func deleteThingType(_ call: Call) async throws -> Response {
        try await registry.deleteThingType(call.caller, name: try call.parameter("thingTypeName"))
        return Self.empty()
    }

    struct ListThingTypesOutput: Encodable {
        var thingTypes: [ThingTypeOutput]
        var nextToken: String?
    }

    func listThingTypes(_ call: Call) async throws -> Response {
        let page = try registry.listThingTypes(name: call.query("thingTypeName"), maxResults: try call.queryInt("maxResults"),
                                               nextToken: call.query("nextToken"))
        return Self.json(ListThingTypesOutput(thingTypes: page.items.map { thingTypeOutput($0, call.caller, full: false) },
                                              nextToken: page.nextToken))
    }

    // MARK: Endpoint

    struct EndpointOutput: Encodable {
        var endpointAddress: String
    }

    func describeEndpoint(_ call: Call) async throws -> Response {
        let type = call.query("endpointType") ?? "iot:Data-ATS"
        let known = ["iot:Data", "iot:Data-ATS", "iot:CredentialProvider", "iot:Jobs"]
        guard known.contains(type) else {
            throw RegistryError(.invalidRequest, "endpointType must be one of \(known.joined(separator: ", "))")
        }
        return Self.json(EndpointOutput(endpointAddress: configuration.endpointAddress))
    }

    // MARK: Drover: audit log and access keys

    struct AuditOutput: Encodable {
        var entries: [AuditEntry]
        var nextToken: String?
    }

    func queryAudit(_ call: Call) async throws -> Response {
        func time(_ name: String) throws -> Double? {
            guard let text = call.query(name) else { return nil }
            if let seconds = Double(text) { return seconds }
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw RegistryError(.invalidRequest, "\(name) must be epoch seconds or ISO 8601 (2026-11-21T10:00:00Z)")
            }
            return date.timeIntervalSince1970
        }
        let limit = try call.queryInt("maxResults") ?? 100
        guard (1...1000).contains(limit) else { throw RegistryError(.invalidRequest, "maxResults must be between 1 and 1000") }
        var before: Int64?
        if let token = call.query("nextToken") {
            guard let value = Int64(token) else { throw RegistryError(.invalidRequest, "nextToken is not one that this API returned") }
            before = value
        }
        let query = AuditQuery(from: try time("from"), to: try time("to"), resource: call.query("resource"),
                               principal: call.query("principal"), operation: call.query("operation"), limit: limit, before: before)
        let entries = try await registry.auditLog(query)
        let next = entries.count == limit ? entries.last?.id.map(String.init) : nil
        return Self.json(AuditOutput(entries: entries, nextToken: next))
    }

    struct AccessKeyOutput: Encodable {
        var accessKeyId: String
        var secretAccessKey: String?
        var name: String
        var creationDate: Double
        /// The role the policy came from, if it came from one.
        var role: String?
        /// The policy document; absent for a key with full rights from before policies.
        var policy: String?
        var status: String

        init(_ key: AccessKey, secret: Bool = false) {
            accessKeyId = key.id
            secretAccessKey = secret ? key.secret : nil
            name = key.name
            creationDate = key.createdAt
            role = key.role ?? (key.policy == nil ? "admin" : nil)
            policy = key.policy
            status = key.active ? "Active" : "Revoked"
        }
    }

    struct AccessKeysOutput: Encodable {
        var accessKeys: [AccessKeyOutput]
    }

    func listAccessKeys(_ call: Call) async throws -> Response {
        Self.json(AccessKeysOutput(accessKeys: registry.listAccessKeys().map { AccessKeyOutput($0) }))
    }

    struct CreateAccessKeyInput: Decodable {
        var name: String?
        /// A ready-made role: admin, operator, provisioner or read-only.
        var role: String?
        /// An IAM-style policy document, as JSON text.
        var policy: String?
    }

    /// Creates a key with a role or a policy; never with more rights than the caller's own key.
    func createAccessKey(_ call: Call) async throws -> Response {
        let input = try call.decode(CreateAccessKeyInput.self)
        let text: String
        switch (input.role, input.policy) {
        case (let role?, nil):
            guard let known = APIRole(rawValue: role) else {
                throw RegistryError(.invalidRequest, "role must be one of \(APIRole.allCases.map(\.rawValue).joined(separator: ", ")), not '\(role.prefix(64))'")
            }
            text = known.document
        case (nil, let policy?):
            text = policy
        case (nil, nil):
            throw RegistryError(.invalidRequest, "give the new key a role (\(APIRole.allCases.map(\.rawValue).joined(separator: ", "))) or a policy")
        case (_?, _?):
            throw RegistryError(.invalidRequest, "give the new key a role or a policy, not both")
        }
        let policy: APIPolicy
        switch APIPolicy.parse(text) {
        case .success(let parsed): policy = parsed
        case .failure(let error): throw RegistryError(.malformedPolicy, "the policy is not valid: \(error)")
        }
        // A key cannot hand out more than it holds.
        if let caller = registry.accessKey(call.caller.principal), let mine = registry.policy(of: caller), !mine.covers(policy) {
            let message = "access key \(caller.id) cannot create a key with rights it does not have itself"
            registry.recordDenied(call.caller, operation: "CreateAccessKey", resource: "*", message: message)
            throw RegistryError(.unauthorized, message)
        }
        let key = try await registry.createAccessKey(
            call.caller, name: input.name ?? "", key: AccessKey.generate(name: input.name ?? "", policy: text, role: input.role))
        return Self.json(AccessKeyOutput(key, secret: true))
    }

    func revokeAccessKey(_ call: Call) async throws -> Response {
        try await registry.revokeAccessKey(call.caller, id: try call.parameter("accessKeyId"))
        return Self.empty()
    }
}
