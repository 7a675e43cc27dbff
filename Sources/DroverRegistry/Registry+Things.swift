import DroverPolicy
import Foundation

/// One page of a listing: the items and the token for the next page (nil on the last).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextToken: String?
}

extension Registry {
    // MARK: Validation (the patterns of botocore's model)

    static func checkName(_ name: String, _ what: String) throws {
        guard (1...128).contains(name.count),
              name.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || ":_-".unicodeScalars.contains($0) })
        else {
            throw RegistryError.invalid("\(what) '\(name)' must be 1 to 128 characters of a-z, A-Z, 0-9, ':', '_' and '-'")
        }
    }

    static func checkAttributes(_ attributes: [String: String]) throws {
        guard attributes.count <= 50 else { throw RegistryError.invalid("a thing has at most 50 attributes") }
        for (name, value) in attributes {
            guard (1...128).contains(name.count),
                  name.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || "_.,@/:#-".unicodeScalars.contains($0) })
            else { throw RegistryError.invalid("attribute name '\(name)' must be 1 to 128 characters of a-z, A-Z, 0-9 and _.,@/:#-") }
            guard value.count <= 800,
                  value.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || "_.,@/:#=[]-".unicodeScalars.contains($0) })
            else { throw RegistryError.invalid("attribute value of '\(name)' must be up to 800 characters of a-z, A-Z, 0-9 and _.,@/:#=[]-") }
        }
    }

    /// Pages through `items`, sorted by `key`; the token is the last key of the previous page.
    static func page<Item: Sendable>(_ items: [Item], key: (Item) -> String, maxResults: Int?, nextToken: String?) throws -> Page<Item> {
        let limit = maxResults ?? 100
        guard (1...250).contains(limit) else { throw RegistryError.invalid("maxResults must be between 1 and 250") }
        let after = try pageToken(nextToken)
        let sorted = items.sorted { key($0) < key($1) }
        let rest = after.map { after in sorted.filter { key($0) > after } } ?? sorted
        let page = Array(rest.prefix(limit))
        let token = rest.count > limit ? page.last.map { Data(key($0).utf8).base64EncodedString() } : nil
        return Page(items: page, nextToken: token)
    }

    static func pageToken(_ nextToken: String?) throws -> String? {
        guard let nextToken else { return nil }
        guard let data = Data(base64Encoded: nextToken), let key = String(data: data, encoding: .utf8) else {
            throw RegistryError.invalid("nextToken is not one that this API returned")
        }
        return key
    }

    /// Pages through the stored records of `kind` whose keys start with `prefix`, in key order,
    /// with what `pick` makes of each key (nil skips it). The store reads the keys from its
    /// index a batch at a time, so a page costs what it holds and what `pick` skips, not what
    /// the registry holds. The token is the last key of the page, without the prefix. With
    /// `descending`, the keys are taken from the last down.
    func pageOfStoredKeys<Item: Sendable>(
        _ kind: String, prefix: String = "", maxResults: Int?, nextToken: String?, descending: Bool = false,
        pick: (String) -> Item?
    ) throws -> Page<Item> {
        let limit = maxResults ?? 100
        guard (1...250).contains(limit) else { throw RegistryError.invalid("maxResults must be between 1 and 250") }
        var after = try Self.pageToken(nextToken).map { prefix + $0 }
        var items: [(key: String, item: Item)] = []
        scan: while items.count <= limit {
            let keys = descending
                ? try store.keys(kind: kind, prefix: prefix, before: after, limit: 256)
                : try store.keys(kind: kind, prefix: prefix, after: after, limit: 256)
            for key in keys {
                if let item = pick(String(key.dropFirst(prefix.count))) { items.append((key, item)) }
                if items.count > limit { break scan }
            }
            guard keys.count == 256, let last = keys.last else { break }
            after = last
        }
        let page = items.prefix(limit)
        let token = items.count > limit ? page.last.map { Data($0.key.dropFirst(prefix.count).utf8).base64EncodedString() } : nil
        return Page(items: page.map(\.item), nextToken: token)
    }

    public static func pageOfStrings(_ items: [String], maxResults: Int?, nextToken: String?) throws -> Page<String> {
        try page(items, key: { $0 }, maxResults: maxResults, nextToken: nextToken)
    }

    // MARK: Things

    public func createThing(_ caller: Caller, name: String, typeName: String?, attributes: [String: String],
                            billingGroupName: String? = nil) async throws -> Thing {
        try Self.checkName(name, "thing name")
        try Self.checkAttributes(attributes)
        return try await mutate(caller, "CreateThing", name) { state, changes in
            if let billingGroupName, state.billingGroups[billingGroupName] == nil {
                throw RegistryError.notFound("billing group", billingGroupName)
            }
            if let typeName {
                guard let type = state.thingTypes[typeName] else { throw RegistryError.notFound("thing type", typeName) }
                guard !type.deprecated else {
                    throw RegistryError.invalid("thing type \(typeName) is deprecated; new things cannot use it")
                }
            }
            if let existing = state.things[name] {
                // AWS answers an identical create with the existing thing.
                guard existing.typeName == typeName && existing.attributes == attributes
                    && (billingGroupName == nil || existing.billingGroupName == billingGroupName)
                else {
                    throw RegistryError(.alreadyExists, "Thing \(name) already exists in current account with different properties",
                                        resourceId: existing.id, resourceArn: self.arn(caller.region, "thing/\(name)"))
                }
                return existing
            }
            let thing = Thing(name: name, id: newResourceID(), typeName: typeName, attributes: attributes,
                              version: 1, createdAt: Date().timeIntervalSince1970, billingGroupName: billingGroupName)
            state.put(thing)
            changes.append(Self.record(Kind.thing, name, thing))
            return thing
        }
    }

    public func describeThing(_ name: String) throws -> Thing {
        guard let thing = snapshot.things[name] else { throw RegistryError.notFound("thing", name) }
        return thing
    }

    /// `attributes` nil leaves them; with `merge` they are merged and an empty value removes a
    /// key, without it they replace the old ones (AWS's AttributePayload).
    public func updateThing(
        _ caller: Caller, name: String, typeName: String?, removeThingType: Bool, attributes: [String: String]?,
        merge: Bool, expectedVersion: Int64?
    ) async throws {
        if let attributes { try Self.checkAttributes(attributes.filter { !$0.value.isEmpty }) }
        if typeName != nil && removeThingType {
            throw RegistryError.invalid("give either thingTypeName or removeThingType, not both")
        }
        try await mutate(caller, "UpdateThing", name) { state, changes in
            guard var thing = state.things[name] else { throw RegistryError.notFound("thing", name) }
            if let expectedVersion, expectedVersion != thing.version {
                throw RegistryError(.versionConflict, "thing \(name) is at version \(thing.version), not \(expectedVersion)")
            }
            if let typeName {
                guard let type = state.thingTypes[typeName] else { throw RegistryError.notFound("thing type", typeName) }
                guard !type.deprecated else { throw RegistryError.invalid("thing type \(typeName) is deprecated") }
                thing.typeName = typeName
            }
            if removeThingType { thing.typeName = nil }
            if let attributes {
                var merged = merge ? thing.attributes : [:]
                for (key, value) in attributes { merged[key] = value.isEmpty ? nil : value }
                try Self.checkAttributes(merged)
                thing.attributes = merged
            }
            thing.version += 1
            state.put(thing)
            changes.append(Self.record(Kind.thing, name, thing))
        }
    }

    /// Deleting a thing that does not exist succeeds, as on AWS.
    public func deleteThing(_ caller: Caller, name: String, expectedVersion: Int64?) async throws {
        try await mutate(caller, "DeleteThing", name) { state, changes in
            guard let thing = state.things[name] else { return }
            if let expectedVersion, expectedVersion != thing.version {
                throw RegistryError(.versionConflict, "thing \(name) is at version \(thing.version), not \(expectedVersion)")
            }
            if let principals = state.thingPrincipals[name], !principals.isEmpty {
                // AWS's text, which clients match on.
                throw RegistryError.invalid("Cannot delete. Thing \(name) is still attached to one or more principals")
            }
            state.removeThing(name)
            changes.append(Self.removal(Kind.thing, name))
            if state.exclusivePrincipals.removeValue(forKey: name) != nil { changes.append(Self.removal(Kind.exclusivePrincipals, name)) }
            Self.dropTags(of: "thing/\(name)", &state, &changes)
            for group in (state.directGroups[name] ?? []).sorted() {
                state.remove(thing: name, fromGroup: group)
                changes.append(Self.link(Kind.groupMember, group, name, present: false))
            }
        }
    }

    public struct ThingFilter: Sendable {
        public var attributeName: String?
        public var attributeValue: String?
        public var usePrefixAttributeValue = false
        public var typeName: String?

        public init(attributeName: String? = nil, attributeValue: String? = nil, usePrefixAttributeValue: Bool = false,
                    typeName: String? = nil) {
            self.attributeName = attributeName
            self.attributeValue = attributeValue
            self.usePrefixAttributeValue = usePrefixAttributeValue
            self.typeName = typeName
        }
    }

    public func listThings(_ filter: ThingFilter, maxResults: Int?, nextToken: String?) throws -> Page<Thing> {
        if filter.attributeValue != nil && filter.attributeName == nil {
            throw RegistryError.invalid("attributeValue needs attributeName")
        }
        let state = snapshot
        return try pageOfStoredKeys(Kind.thing, maxResults: maxResults, nextToken: nextToken) { name in
            guard let thing = state.things[name] else { return nil }
            if let typeName = filter.typeName, thing.typeName != typeName { return nil }
            if let name = filter.attributeName {
                guard let value = thing.attributes[name] else { return nil }
                if let wanted = filter.attributeValue {
                    return (filter.usePrefixAttributeValue ? value.hasPrefix(wanted) : value == wanted) ? thing : nil
                }
            }
            return thing
        }
    }

    // MARK: Thing types

    public func createThingType(_ caller: Caller, name: String, description: String?, searchableAttributes: [String],
                                tags: [String: String] = [:]) async throws -> ThingType {
        try Self.checkName(name, "thing type name")
        guard searchableAttributes.count <= 3 else { throw RegistryError.invalid("a thing type has at most 3 searchable attributes") }
        if let description, description.count > 2028 { throw RegistryError.invalid("thingTypeDescription is longer than 2028 characters") }
        return try await mutate(caller, "CreateThingType", name) { state, changes in
            if let existing = state.thingTypes[name] {
                throw RegistryError(.alreadyExists, "Thing Type \(name) already exists in current account", resourceId: existing.id,
                                    resourceArn: self.arn(caller.region, "thingtype/\(name)"))
            }
            let type = ThingType(name: name, id: newResourceID(), description: description,
                                 searchableAttributes: searchableAttributes, deprecated: false, deprecatedAt: nil,
                                 createdAt: Date().timeIntervalSince1970)
            state.thingTypes[name] = type
            changes.append(Self.record(Kind.thingType, name, type))
            Self.putTags(tags, on: "thingtype/\(name)", &state, &changes)
            return type
        }
    }

    public func describeThingType(_ name: String) throws -> ThingType {
        guard let type = snapshot.thingTypes[name] else { throw RegistryError.notFound("thing type", name) }
        return type
    }

    public func listThingTypes(name: String?, maxResults: Int?, nextToken: String?) throws -> Page<ThingType> {
        // AWS matches the name as a prefix.
        let types = snapshot.thingTypes.values.filter { name == nil || $0.name.hasPrefix(name ?? "") }
        return try Self.page(types, key: \.name, maxResults: maxResults, nextToken: nextToken)
    }

    public func deprecateThingType(_ caller: Caller, name: String, undo: Bool) async throws {
        try await mutate(caller, undo ? "UndeprecateThingType" : "DeprecateThingType", name) { state, changes in
            guard var type = state.thingTypes[name] else { throw RegistryError.notFound("thing type", name) }
            type.deprecated = !undo
            type.deprecatedAt = undo ? nil : Date().timeIntervalSince1970
            state.thingTypes[name] = type
            changes.append(Self.record(Kind.thingType, name, type))
        }
    }

    /// A thing type must be deprecated, and no thing may use it, before it can be deleted.
    public func deleteThingType(_ caller: Caller, name: String) async throws {
        try await mutate(caller, "DeleteThingType", name) { state, changes in
            guard let type = state.thingTypes[name] else { throw RegistryError.notFound("thing type", name) }
            guard type.deprecated else {
                throw RegistryError.invalid("thing type \(name) must be deprecated before it is deleted")
            }
            let users = state.typeMembers[name]?.count ?? 0
            guard users == 0 else {
                throw RegistryError.invalid("thing type \(name) is still used by \(users) thing(s)")
            }
            state.thingTypes[name] = nil
            changes.append(Self.removal(Kind.thingType, name))
            Self.dropTags(of: "thingtype/\(name)", &state, &changes)
        }
    }

    // MARK: Access keys

    /// The active key with this id, for checking a signature.
    /// A temporary key (from the credentials provider) works only until it expires, and only
    /// while the certificate it was issued for stays ACTIVE.
    public func accessKey(_ id: String) -> AccessKey? {
        let state = snapshot
        guard let key = state.accessKeys[id], key.active else { return nil }
        if let expiresAt = key.expiresAt, expiresAt <= Date().timeIntervalSince1970 { return nil }
        if let pair = key.issuedFor {
            let certificateId = pair.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            guard state.certificates[certificateId]?.isActive == true else { return nil }
        }
        return key
    }

    public func createAccessKey(_ caller: Caller, name: String, key: AccessKey? = nil) async throws -> AccessKey {
        let key = key ?? AccessKey.generate(name: name)
        return try await mutate(caller, "CreateAccessKey", "access-key/\(key.id)") { state, changes in
            if let existing = state.accessKeys[key.id] {
                // Configured keys are put again at every start: the same key is no change.
                if existing == key { return existing }
                guard existing.active else { throw RegistryError(.alreadyExists, "access key \(key.id) was revoked") }
                guard existing.secret == key.secret else {
                    throw RegistryError(.alreadyExists, "access key \(key.id) already exists")
                }
            }
            state.put(accessKey: key.id, key)
            changes.append(Self.record(Kind.accessKey, key.id, key))
            return key
        }
    }

    /// The long-lived keys; temporary ones (from the credentials provider) are not listed.
    public func listAccessKeys() -> [AccessKey] {
        snapshot.accessKeys.values.filter { $0.issuedFor == nil }.sorted { $0.createdAt < $1.createdAt }
    }

    /// The parsed policy of `key`; nil for a key without one (full rights) and for a policy
    /// that does not parse (which allows nothing: see ``accessKey(_:allows:)``).
    public func policy(of key: AccessKey) -> APIPolicy? {
        guard let text = key.policy else { return nil }
        if let cached = keyPolicies.withLockedValue({ $0[key.id] }), cached.text == text { return cached.policy }
        let parsed = try? APIPolicy.parse(text).get()
        keyPolicies.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[key.id] = (text, parsed)
        }
        return parsed
    }

    /// Whether the active key `id` may make `request`. A key without a policy (stored before
    /// policies existed, or the configured key) has full rights; a policy that does not parse
    /// allows nothing; an unknown or revoked key nothing either.
    public func accessKey(_ id: String, allows request: APIPolicy.Request) -> Bool {
        guard let key = accessKey(id) else { return false }
        guard key.policy != nil else { return true }
        return policy(of: key)?.allows(request) ?? false
    }

    /// Records a request that the caller's access key policy refused.
    public func recordDenied(_ caller: Caller, operation: String, resource: String, message: String) {
        let entry = AuditEntry(time: Date().timeIntervalSince1970, principal: caller.principal, operation: operation,
                               resource: resource, outcome: "UnauthorizedException", message: message)
        appendAudit(entry)
    }

    /// Revokes a key for good: its record stays, without its secret and marked revoked, so
    /// that a key configured in the file or the admin-credentials file is not put back at the
    /// next start.
    public func revokeAccessKey(_ caller: Caller, id: String) async throws {
        try await mutate(caller, "RevokeAccessKey", "access-key/\(id)") { state, changes in
            guard var key = state.accessKeys[id], key.active else { throw RegistryError.notFound("access key", id) }
            key.active = false
            key.secret = ""
            state.put(accessKey: id, key)
            changes.append(Self.record(Kind.accessKey, id, key))
        }
    }
}

extension Unicode.Scalar {
    var isASCIIAlphanumeric: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self)
    }
}
