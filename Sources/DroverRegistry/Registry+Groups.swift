import Foundation

extension Registry {
    // MARK: Thing groups

    public func createThingGroup(_ caller: Caller, name: String, parent: String?, description: String?,
                                 attributes: [String: String], tags: [String: String] = [:]) async throws -> ThingGroup {
        try Self.checkName(name, "thing group name")
        try Self.checkAttributes(attributes)
        return try await mutate(caller, "CreateThingGroup", "thinggroup/\(name)") { state, changes in
            if let existing = state.thingGroups[name] {
                // AWS answers an identical create with the existing group.
                guard existing.parent == parent, existing.attributes == attributes, existing.description == description else {
                    throw RegistryError(.alreadyExists, "Thing Group \(name) already exists in current account with different properties",
                                        resourceId: existing.id, resourceArn: self.arn(caller.region, "thinggroup/\(name)"))
                }
                return existing
            }
            if let parent {
                guard state.thingGroups[parent] != nil else { throw RegistryError.notFound("thing group", parent) }
                guard state.lineage(ofGroup: parent).count < 7 else {
                    throw RegistryError.invalid("thing groups nest at most 7 deep; \(parent) is already at depth 7")
                }
            }
            let group = ThingGroup(name: name, id: newResourceID(), description: description, attributes: attributes,
                                   parent: parent, version: 1, createdAt: Date().timeIntervalSince1970)
            state.put(group)
            changes.append(Self.record(Kind.thingGroup, name, group))
            Self.putTags(tags, on: "thinggroup/\(name)", &state, &changes)
            return group
        }
    }

    public func describeThingGroup(_ name: String) throws -> (ThingGroup, lineage: [ThingGroup], effectiveAttributes: [String: String]) {
        let state = snapshot
        guard let group = state.thingGroups[name] else { throw RegistryError.notFound("thing group", name) }
        return (group, Array(state.lineage(ofGroup: name).dropFirst().reversed()), state.effectiveAttributes(ofGroup: name))
    }

    public func updateThingGroup(_ caller: Caller, name: String, description: String?, attributes: [String: String]?, merge: Bool,
                                 expectedVersion: Int64?) async throws -> Int64 {
        if let attributes { try Self.checkAttributes(attributes.filter { !$0.value.isEmpty }) }
        return try await mutate(caller, "UpdateThingGroup", "thinggroup/\(name)") { state, changes in
            guard var group = state.thingGroups[name] else { throw RegistryError.notFound("thing group", name) }
            if let expectedVersion, expectedVersion != group.version {
                throw RegistryError(.versionConflict, "thing group \(name) is at version \(group.version), not \(expectedVersion)")
            }
            if let description { group.description = description }
            if let attributes {
                var merged = merge ? group.attributes : [:]
                for (key, value) in attributes { merged[key] = value.isEmpty ? nil : value }
                try Self.checkAttributes(merged)
                group.attributes = merged
            }
            group.version += 1
            state.put(group)
            changes.append(Self.record(Kind.thingGroup, name, group))
            return group.version
        }
    }

    /// A group with child groups stays; its things and policy attachments go with it.
    public func deleteThingGroup(_ caller: Caller, name: String, expectedVersion: Int64?) async throws {
        try await mutate(caller, "DeleteThingGroup", "thinggroup/\(name)") { state, changes in
            guard let group = state.thingGroups[name] else { return }
            if let expectedVersion, expectedVersion != group.version {
                throw RegistryError(.versionConflict, "thing group \(name) is at version \(group.version), not \(expectedVersion)")
            }
            let children = (state.childGroups[name] ?? []).sorted()
            guard children.isEmpty else {
                throw RegistryError.invalid("thing group \(name) has child groups (\(children.joined(separator: ", "))); delete them first")
            }
            state.removeGroup(name)
            changes.append(Self.removal(Kind.thingGroup, name))
            Self.dropTags(of: "thinggroup/\(name)", &state, &changes)
            for thing in (state.groupMembers[name] ?? []).sorted() {
                state.remove(thing: thing, fromGroup: name)
                changes.append(Self.link(Kind.groupMember, name, thing, present: false))
            }
            for policy in state.policyNames(attachedTo: "thinggroup/\(name)") {
                state.detach(policy: policy, from: "thinggroup/\(name)")
                changes.append(Self.link(Kind.policyTarget, policy, "thinggroup/\(name)", present: false))
            }
        }
    }

    public func listThingGroups(parent: String?, namePrefix: String?, recursive: Bool, maxResults: Int?, nextToken: String?) throws -> Page<ThingGroup> {
        let state = snapshot
        if let parent, state.thingGroups[parent] == nil { throw RegistryError.notFound("thing group", parent) }
        let groups = state.thingGroups.values.filter { group in
            if let namePrefix, !group.name.hasPrefix(namePrefix) { return false }
            // Without a parent, recursive=false lists only the top-level groups.
            guard let parent else { return recursive || group.parent == nil }
            if recursive { return group.name != parent && state.lineage(ofGroup: group.name).contains { $0.name == parent } }
            return group.parent == parent
        }
        return try Self.page(groups, key: \.name, maxResults: maxResults, nextToken: nextToken)
    }

    public static func groupName(_ name: String?, arn: String?) throws -> String {
        if let name { return name }
        if let arn, let range = arn.range(of: ":thinggroup/") { return String(arn[range.upperBound...]) }
        throw RegistryError.invalid("give thingGroupName or thingGroupArn")
    }

    public static func thingName(_ name: String?, arn: String?) throws -> String {
        if let name { return name }
        if let arn, let range = arn.range(of: ":thing/") { return String(arn[range.upperBound...]) }
        throw RegistryError.invalid("give thingName or thingArn")
    }

    /// A thing is in at most 10 groups directly.
    public func updateThingGroupsForThing(_ caller: Caller, _ operation: String, thing: String, add: [String], remove: [String]) async throws {
        try await mutate(caller, operation, thing) { state, changes in
            guard state.things[thing] != nil else { throw RegistryError.notFound("thing", thing) }
            for group in add + remove where state.thingGroups[group] == nil { throw RegistryError.notFound("thing group", group) }
            for group in remove where state.remove(thing: thing, fromGroup: group) {
                changes.append(Self.link(Kind.groupMember, group, thing, present: false))
            }
            for group in add where state.add(thing: thing, toGroup: group) {
                changes.append(Self.link(Kind.groupMember, group, thing, present: true))
            }
            let count = state.directGroups[thing]?.count ?? 0
            guard count <= 10 else { throw RegistryError.invalid("a thing can be in at most 10 thing groups; \(thing) would be in \(count)") }
        }
    }

    public func thingsInGroup(_ name: String, recursive: Bool) throws -> [String] {
        let state = snapshot
        guard state.thingGroups[name] != nil else { throw RegistryError.notFound("thing group", name) }
        let groups: Set<String> = recursive ? state.subtree(ofGroup: name) : [name]
        var things = Set<String>()
        for group in groups { things.formUnion(state.groupMembers[group] ?? []) }
        return things.sorted()
    }

    public func groupsOfThing(_ thing: String) throws -> [String] {
        let state = snapshot
        guard state.things[thing] != nil else { throw RegistryError.notFound("thing", thing) }
        return (state.directGroups[thing] ?? []).sorted()
    }
}
