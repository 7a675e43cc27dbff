import Foundation

extension Registry {
    // MARK: Billing groups

    public func createBillingGroup(_ caller: Caller, name: String, description: String?, tags: [String: String]) async throws -> BillingGroup {
        try Self.checkName(name, "billing group name")
        if let description, description.count > 2028 { throw RegistryError.invalid("billingGroupDescription is longer than 2028 characters") }
        try Self.checkTags(tags)
        return try await mutate(caller, "CreateBillingGroup", "billinggroup/\(name)") { state, changes in
            if let existing = state.billingGroups[name] {
                guard existing.description == description else {
                    throw RegistryError(.alreadyExists, "Billing Group \(name) already exists in current account with different properties",
                                        resourceId: existing.id, resourceArn: self.arn(caller.region, "billinggroup/\(name)"))
                }
                return existing
            }
            let group = BillingGroup(name: name, id: newResourceID(), description: description, version: 1,
                                     createdAt: Date().timeIntervalSince1970)
            state.billingGroups[name] = group
            changes.append(Self.record(Kind.billingGroup, name, group))
            Self.putTags(tags, on: "billinggroup/\(name)", &state, &changes)
            return group
        }
    }

    public func describeBillingGroup(_ name: String) throws -> BillingGroup {
        guard let group = snapshot.billingGroups[name] else { throw RegistryError.notFound("billing group", name) }
        return group
    }

    public func updateBillingGroup(_ caller: Caller, name: String, description: String?, expectedVersion: Int64?) async throws -> Int64 {
        if let description, description.count > 2028 { throw RegistryError.invalid("billingGroupDescription is longer than 2028 characters") }
        return try await mutate(caller, "UpdateBillingGroup", "billinggroup/\(name)") { state, changes in
            guard var group = state.billingGroups[name] else { throw RegistryError.notFound("billing group", name) }
            if let expectedVersion, expectedVersion != group.version {
                throw RegistryError(.versionConflict, "billing group \(name) is at version \(group.version), not \(expectedVersion)")
            }
            group.description = description
            group.version += 1
            state.billingGroups[name] = group
            changes.append(Self.record(Kind.billingGroup, name, group))
            return group.version
        }
    }

    /// Its things leave it. Deleting a billing group that does not exist succeeds, as on AWS.
    public func deleteBillingGroup(_ caller: Caller, name: String, expectedVersion: Int64?) async throws {
        try await mutate(caller, "DeleteBillingGroup", "billinggroup/\(name)") { state, changes in
            guard let group = state.billingGroups[name] else { return }
            if let expectedVersion, expectedVersion != group.version {
                throw RegistryError(.versionConflict, "billing group \(name) is at version \(group.version), not \(expectedVersion)")
            }
            for member in (state.billingGroupMembers[name] ?? []).sorted() {
                guard var thing = state.things[member] else { continue }
                thing.billingGroupName = nil
                state.put(thing)
                changes.append(Self.record(Kind.thing, member, thing))
            }
            state.billingGroups[name] = nil
            changes.append(Self.removal(Kind.billingGroup, name))
            Self.dropTags(of: "billinggroup/\(name)", &state, &changes)
        }
    }

    public func listBillingGroups(namePrefix: String?, maxResults: Int?, nextToken: String?) throws -> Page<BillingGroup> {
        let groups = snapshot.billingGroups.values.filter { namePrefix == nil || $0.name.hasPrefix(namePrefix ?? "") }
        return try Self.page(groups, key: \.name, maxResults: maxResults, nextToken: nextToken)
    }

    public static func billingGroupName(_ name: String?, arn: String?) throws -> String {
        if let name { return name }
        if let arn, let range = arn.range(of: ":billinggroup/") { return String(arn[range.upperBound...]) }
        throw RegistryError.invalid("give billingGroupName or billingGroupArn")
    }

    /// Puts a thing in a billing group, taking it out of the one it was in; nil takes it out.
    public func setBillingGroup(_ caller: Caller, _ operation: String, thing name: String, group: String?, onlyFrom: String? = nil) async throws {
        try await mutate(caller, operation, name) { state, changes in
            guard var thing = state.things[name] else { throw RegistryError.notFound("thing", name) }
            if let group, state.billingGroups[group] == nil { throw RegistryError.notFound("billing group", group) }
            if let onlyFrom {
                guard state.billingGroups[onlyFrom] != nil else { throw RegistryError.notFound("billing group", onlyFrom) }
                guard thing.billingGroupName == onlyFrom else { return }
            }
            guard thing.billingGroupName != group else { return }
            thing.billingGroupName = group
            state.put(thing)
            changes.append(Self.record(Kind.thing, name, thing))
        }
    }

    public func thingsInBillingGroup(_ name: String) throws -> [String] {
        let state = snapshot
        guard state.billingGroups[name] != nil else { throw RegistryError.notFound("billing group", name) }
        return (state.billingGroupMembers[name] ?? []).sorted()
    }

    // MARK: Tags

    /// AWS's bounds: at most 50 tags; keys of 1 to 128 characters that do not start with `aws:`;
    /// values of at most 256.
    static func checkTags(_ tags: [String: String]) throws {
        guard tags.count <= 50 else { throw RegistryError.invalid("a resource has at most 50 tags") }
        for (key, value) in tags {
            guard (1...128).contains(key.count) else { throw RegistryError.invalid("a tag key must be 1 to 128 characters") }
            guard !key.lowercased().hasPrefix("aws:") else { throw RegistryError.invalid("tag keys starting with 'aws:' are reserved") }
            guard value.count <= 256 else { throw RegistryError.invalid("the value of tag '\(key.prefix(128))' is longer than 256 characters") }
        }
    }

    /// The tags of `list` (AWS's `[{"Key": ..., "Value": ...}]`); a key given twice is refused.
    public static func tags(_ list: [(key: String, value: String?)]) throws -> [String: String] {
        var tags: [String: String] = [:]
        for (key, value) in list {
            guard tags.updateValue(value ?? "", forKey: key) == nil else {
                throw RegistryError.invalid("tag key '\(key.prefix(128))' is given twice")
            }
        }
        try checkTags(tags)
        return tags
    }

    static func putTags(_ tags: [String: String], on resource: String, _ state: inout RegistryState, _ changes: inout [RegistryRecordChange]) {
        guard !tags.isEmpty else { return }
        state.tags[resource, default: [:]].merge(tags) { _, new in new }
        changes.append(record(Kind.tags, resource, state.tags[resource] ?? [:]))
    }

    static func dropTags(of resource: String, _ state: inout RegistryState, _ changes: inout [RegistryRecordChange]) {
        if state.tags.removeValue(forKey: resource) != nil { changes.append(removal(Kind.tags, resource)) }
    }

    /// The resource part of one of this account's IoT ARNs (`thing/NAME`), if the resource
    /// exists and can carry tags.
    func taggable(_ arn: String, in state: RegistryState) throws -> String {
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "iot", parts[4] == configuration.account else {
            throw RegistryError.invalid("resourceArn must be an AWS IoT ARN of this account (arn:aws:iot:REGION:\(configuration.account):thing/NAME), not '\(arn.prefix(256))'")
        }
        let resource = String(parts[5])
        guard let slash = resource.firstIndex(of: "/") else { throw RegistryError.invalid("resourceArn names no resource: '\(arn.prefix(256))'") }
        let type = String(resource[..<slash]), name = String(resource[resource.index(after: slash)...])
        let exists: Bool
        switch type {
        case "thing": exists = state.things[name] != nil
        case "thinggroup": exists = state.thingGroups[name] != nil
        case "thingtype": exists = state.thingTypes[name] != nil
        case "billinggroup": exists = state.billingGroups[name] != nil
        case "policy": exists = state.policies[name] != nil
        case "cacert": exists = state.caCertificates[name] != nil
        case "rolealias": exists = state.roleAliases[name] != nil
        default: throw RegistryError.invalid("resources of type '\(type.prefix(64))' cannot be tagged")
        }
        guard exists else { throw RegistryError(.notFound, "\(arn.prefix(256)) does not exist") }
        return resource
    }

    public func tagResource(_ caller: Caller, arn: String, tags: [String: String]) async throws {
        try await mutate(caller, "TagResource", arn.clipped) { state, changes in
            let resource = try self.taggable(arn, in: state)
            var merged = state.tags[resource] ?? [:]
            merged.merge(tags) { _, new in new }
            guard merged.count <= 50 else { throw RegistryError(.limitExceeded, "a resource has at most 50 tags; this would make \(merged.count)") }
            Self.putTags(tags, on: resource, &state, &changes)
        }
    }

    public func untagResource(_ caller: Caller, arn: String, keys: [String]) async throws {
        try await mutate(caller, "UntagResource", arn.clipped) { state, changes in
            let resource = try self.taggable(arn, in: state)
            guard var tags = state.tags[resource] else { return }
            for key in keys { tags[key] = nil }
            state.tags[resource] = tags.isEmpty ? nil : tags
            changes.append(tags.isEmpty ? Self.removal(Kind.tags, resource) : Self.record(Kind.tags, resource, tags))
        }
    }

    public func tags(ofResource arn: String) throws -> [String: String] {
        let state = snapshot
        return state.tags[try taggable(arn, in: state)] ?? [:]
    }
}

extension String {
    /// A resource name for the audit log, cut to a sane length.
    var clipped: String { count <= 256 ? self : String(prefix(256)) }
}
