import DroverRegistry
import Foundation
import Hummingbird

/// Static thing groups; the JSON shapes are botocore's.
extension ControlPlane {
    struct ThingGroupProperties: Codable {
        var thingGroupDescription: String?
        var attributePayload: AttributePayload?
    }

    struct CreateGroupInput: Decodable {
        var parentGroupName: String?
        var thingGroupProperties: ThingGroupProperties?
        var tags: [Tag]?
    }

    struct CreateGroupOutput: Encodable {
        var thingGroupName: String
        var thingGroupArn: String
        var thingGroupId: String
    }

    func groupArn(_ caller: Caller, _ name: String) -> String { registry.arn(caller.region, "thinggroup/\(name)") }

    func createThingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(CreateGroupInput.self)
        let group = try await registry.createThingGroup(
            call.caller, name: try call.parameter("thingGroupName"), parent: input.parentGroupName,
            description: input.thingGroupProperties?.thingGroupDescription,
            attributes: input.thingGroupProperties?.attributePayload?.attributes ?? [:], tags: try Self.tags(input.tags))
        return Self.json(CreateGroupOutput(thingGroupName: group.name, thingGroupArn: groupArn(call.caller, group.name), thingGroupId: group.id))
    }

    struct NameAndArn: Encodable {
        var groupName: String
        var groupArn: String
    }

    struct GroupMetadata: Encodable {
        var parentGroupName: String?
        var rootToParentThingGroups: [NameAndArn]
        var creationDate: Double
    }

    struct DescribeGroupOutput: Encodable {
        var thingGroupName: String
        var thingGroupId: String
        var thingGroupArn: String
        var version: Int64
        var thingGroupProperties: ThingGroupProperties
        var thingGroupMetadata: GroupMetadata
        /// Drover's addition: the attributes with those inherited from the parent groups.
        var effectiveAttributes: [String: String]
    }

    func describeThingGroup(_ call: Call) async throws -> Response {
        let (group, lineage, effective) = try registry.describeThingGroup(try call.parameter("thingGroupName"))
        return Self.json(DescribeGroupOutput(
            thingGroupName: group.name, thingGroupId: group.id, thingGroupArn: groupArn(call.caller, group.name), version: group.version,
            thingGroupProperties: ThingGroupProperties(thingGroupDescription: group.description,
                                                       attributePayload: group.attributes.isEmpty ? nil : AttributePayload(attributes: group.attributes, merge: nil)),
            thingGroupMetadata: GroupMetadata(
                parentGroupName: group.parent,
                rootToParentThingGroups: lineage.map { NameAndArn(groupName: $0.name, groupArn: groupArn(call.caller, $0.name)) },
                creationDate: group.createdAt),
            effectiveAttributes: effective))
    }

    struct UpdateGroupInput: Decodable {
        var thingGroupProperties: ThingGroupProperties
        var expectedVersion: Int64?
    }

    struct VersionOutput: Encodable {
        var version: Int64
    }

    func updateThingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(UpdateGroupInput.self)
        let version = try await registry.updateThingGroup(
            call.caller, name: try call.parameter("thingGroupName"), description: input.thingGroupProperties.thingGroupDescription,
            attributes: input.thingGroupProperties.attributePayload?.attributes,
            merge: input.thingGroupProperties.attributePayload?.merge ?? false, expectedVersion: input.expectedVersion)
        return Self.json(VersionOutput(version: version))
    }

    func deleteThingGroup(_ call: Call) async throws -> Response {
        let expected = try call.expectedVersion()
        try await registry.deleteThingGroup(call.caller, name: try call.parameter("thingGroupName"), expectedVersion: expected)
        return Self.empty()
    }

    struct GroupsOutput: Encodable {
        var thingGroups: [NameAndArn]
        var nextToken: String?
    }

    func listThingGroups(_ call: Call) async throws -> Response {
        let page = try registry.listThingGroups(
            parent: call.query("parentGroup"), namePrefix: call.query("namePrefixFilter"), recursive: call.query("recursive") != "false",
            maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(GroupsOutput(thingGroups: page.items.map { NameAndArn(groupName: $0.name, groupArn: groupArn(call.caller, $0.name)) },
                                      nextToken: page.nextToken))
    }

    struct MembershipInput: Decodable {
        var thingGroupName: String?
        var thingGroupArn: String?
        var thingName: String?
        var thingArn: String?
    }

    func addThingToThingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(MembershipInput.self)
        try await registry.updateThingGroupsForThing(
            call.caller, "AddThingToThingGroup", thing: try Registry.thingName(input.thingName, arn: input.thingArn),
            add: [try Registry.groupName(input.thingGroupName, arn: input.thingGroupArn)], remove: [])
        return Self.empty()
    }

    func removeThingFromThingGroup(_ call: Call) async throws -> Response {
        let input = try call.decode(MembershipInput.self)
        try await registry.updateThingGroupsForThing(
            call.caller, "RemoveThingFromThingGroup", thing: try Registry.thingName(input.thingName, arn: input.thingArn),
            add: [], remove: [try Registry.groupName(input.thingGroupName, arn: input.thingGroupArn)])
        return Self.empty()
    }

    struct ThingNamesOutput: Encodable {
        var things: [String]
        var nextToken: String?
    }

    func listThingsInThingGroup(_ call: Call) async throws -> Response {
        let things = try registry.thingsInGroup(try call.parameter("thingGroupName"), recursive: call.query("recursive") == "true")
        let page = try Registry.pageOfStrings(things, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(ThingNamesOutput(things: page.items, nextToken: page.nextToken))
    }

    func listThingGroupsForThing(_ call: Call) async throws -> Response {
        let groups = try registry.groupsOfThing(try call.parameter("thingName"))
        let page = try Registry.pageOfStrings(groups, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(GroupsOutput(thingGroups: page.items.map { NameAndArn(groupName: $0, groupArn: groupArn(call.caller, $0)) },
                                      nextToken: page.nextToken))
    }

    struct UpdateGroupsForThingInput: Decodable {
        var thingName: String
        var thingGroupsToAdd: [String]?
        var thingGroupsToRemove: [String]?
    }

    func updateThingGroupsForThing(_ call: Call) async throws -> Response {
        let input = try call.decode(UpdateGroupsForThingInput.self)
        try await registry.updateThingGroupsForThing(
            call.caller, "UpdateThingGroupsForThing", thing: input.thingName, add: input.thingGroupsToAdd ?? [],
            remove: input.thingGroupsToRemove ?? [])
        return Self.empty()
    }
}
