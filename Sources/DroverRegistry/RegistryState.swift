import DroverPolicy
import HashTreeCollections

/// Everything the registry holds, as one value: readers take a snapshot, writers change a copy.
///
/// The collections are hash tries (`TreeDictionary`, `TreeSet`): a copy shares all of its
/// nodes with the original, and a write to the copy copies only the path to the key it
/// changes. So a write costs O(log n) however many readers still hold the old state, and a
/// snapshot costs nothing. (A `Dictionary` copy would be duplicated whole by its first write.)
///
/// Links (certificates on things, things in groups, policies on targets) and the things of a
/// type, and the children of a group, are kept with their reverse indexes. Change them only
/// through the methods below, which keep both sides; `checkIndexes()` rebuilds the indexes and
/// compares, for the tests.
public struct RegistryState: Sendable {
    public var things: TreeDictionary<String, Thing> { _things }
    public var thingTypes: TreeDictionary<String, ThingType> = [:]
    /// Changed through `put(accessKey:_:)`, which keeps the temporary-key indexes.
    public private(set) var accessKeys: TreeDictionary<String, AccessKey> = [:]
    public var certificates: TreeDictionary<String, CertificateRecord> = [:]
    public var caCertificates: TreeDictionary<String, CACertificateRecord> = [:]
    public var policies: TreeDictionary<String, PolicyRecord> = [:]
    /// The default version of each policy, parsed once.
    public var parsedPolicies: TreeDictionary<String, PolicyDocument> = [:]
    public var thingGroups: TreeDictionary<String, ThingGroup> { _thingGroups }
    public var billingGroups: TreeDictionary<String, BillingGroup> = [:]
    /// Billing group name → its things; derived from `Thing.billingGroupName` (not stored).
    public private(set) var billingGroupMembers: TreeDictionary<String, TreeSet<String>> = [:]
    /// Thing name → the certificates attached to it as EXCLUSIVE_THING (the others are
    /// NON_EXCLUSIVE_THING).
    public var exclusivePrincipals: TreeDictionary<String, Set<String>> = [:]
    /// Resource ("thing/NAME", "policy/NAME", ...: the ARN's resource part) → its tags.
    public var tags: TreeDictionary<String, [String: String]> = [:]
    public var roleAliases: TreeDictionary<String, RoleAlias> = [:]
    /// "CERTIFICATE_ID/ROLE_ALIAS" → the temporary key issued for it; derived (not stored).
    public private(set) var temporaryKeys: TreeDictionary<String, String> = [:]
    /// Certificate id → the ids of every temporary key issued for it (under any role alias,
    /// active or not); derived. The revocation of a certificate looks its keys up here.
    public private(set) var temporaryKeysOfCertificate: TreeDictionary<String, Set<String>> = [:]

    /// Sets (or, with nil, removes) an access key, and the temporary-key indexes with it.
    public mutating func put(accessKey id: String, _ key: AccessKey?) {
        if let old = accessKeys[id], let pair = old.issuedFor {
            if temporaryKeys[pair] == id { temporaryKeys[pair] = nil }
            let certificate = Self.certificate(ofPair: pair)
            var ids = temporaryKeysOfCertificate[certificate] ?? []
            ids.remove(id)
            temporaryKeysOfCertificate[certificate] = ids.isEmpty ? nil : ids
        }
        accessKeys[id] = key
        if let key, let pair = key.issuedFor {
            if key.active { temporaryKeys[pair] = id }
            temporaryKeysOfCertificate[Self.certificate(ofPair: pair), default: []].insert(id)
        }
    }

    /// "CERTIFICATE_ID/ROLE_ALIAS" → the certificate id (ids hold no '/').
    static func certificate(ofPair pair: String) -> String {
        pair.firstIndex(of: "/").map { String(pair[..<$0]) } ?? pair
    }

    /// Thing name → ids of the certificates attached to it.
    public private(set) var thingPrincipals: TreeDictionary<String, LinkSet> = [:]
    /// Certificate id → the things it is attached to (the reverse of `thingPrincipals`).
    public private(set) var certificateThings: TreeDictionary<String, LinkSet> = [:]
    /// Group name → names of the things in it (directly).
    public private(set) var groupMembers: TreeDictionary<String, TreeSet<String>> = [:]
    /// Thing name → the groups it is in directly (the reverse of `groupMembers`).
    public private(set) var directGroups: TreeDictionary<String, LinkSet> = [:]
    /// Policy name → targets: "cert/ID" for certificates, "thinggroup/NAME" for groups.
    public private(set) var policyTargets: TreeDictionary<String, TreeSet<String>> = [:]
    /// Target → the policies attached to it (the reverse of `policyTargets`).
    public private(set) var targetPolicies: TreeDictionary<String, LinkSet> = [:]
    /// Thing type → the things of that type.
    public private(set) var typeMembers: TreeDictionary<String, TreeSet<String>> = [:]
    /// Group → its child groups.
    public private(set) var childGroups: TreeDictionary<String, Set<String>> = [:]

    private var _things: TreeDictionary<String, Thing> = [:]
    private var _thingGroups: TreeDictionary<String, ThingGroup> = [:]

    public init() {}

    // MARK: Things and groups

    /// Stores a thing (new or changed), keeping its type's and billing group's members.
    public mutating func put(_ thing: Thing) {
        let old = _things.updateValue(thing, forKey: thing.name)
        if old?.typeName != thing.typeName {
            if let type = old?.typeName { Self.remove(thing.name, from: type, in: &typeMembers) }
            if let type = thing.typeName { typeMembers[type, default: []].insert(thing.name) }
        }
        if old?.billingGroupName != thing.billingGroupName {
            if let group = old?.billingGroupName { Self.remove(thing.name, from: group, in: &billingGroupMembers) }
            if let group = thing.billingGroupName { billingGroupMembers[group, default: []].insert(thing.name) }
        }
    }

    /// Removes a thing from the things, its type and its billing group. Its links must be gone first.
    @discardableResult
    public mutating func removeThing(_ name: String) -> Thing? {
        guard let old = _things.removeValue(forKey: name) else { return nil }
        if let type = old.typeName { Self.remove(name, from: type, in: &typeMembers) }
        if let group = old.billingGroupName { Self.remove(name, from: group, in: &billingGroupMembers) }
        return old
    }

    public mutating func put(_ group: ThingGroup) {
        let old = _thingGroups.updateValue(group, forKey: group.name)
        if old?.parent != group.parent {
            if let parent = old?.parent { Self.remove(group.name, from: parent, in: &childGroups) }
            if let parent = group.parent { childGroups[parent, default: []].insert(group.name) }
        }
    }

    @discardableResult
    public mutating func removeGroup(_ name: String) -> ThingGroup? {
        guard let old = _thingGroups.removeValue(forKey: name) else { return nil }
        if let parent = old.parent { Self.remove(name, from: parent, in: &childGroups) }
        return old
    }

    // MARK: Links

    /// Attaches a certificate to a thing; false if it was attached already.
    @discardableResult
    public mutating func attach(certificate id: String, toThing thing: String) -> Bool {
        // The id and name as the certificate's and thing's records hold them: one string each,
        // not one more copy per index.
        let id = certificates.index(forKey: id).map { certificates[$0].key } ?? id
        let thing = _things.index(forKey: thing).map { _things[$0].key } ?? thing
        guard thingPrincipals[thing, default: []].insert(id).inserted else { return false }
        certificateThings[id, default: []].insert(thing)
        return true
    }

    /// Detaches a certificate from a thing; false if it was not attached.
    @discardableResult
    public mutating func detach(certificate id: String, fromThing thing: String) -> Bool {
        guard Self.remove(id, from: thing, in: &thingPrincipals) else { return false }
        Self.remove(thing, from: id, in: &certificateThings)
        return true
    }

    /// Puts a thing in a group directly; false if it was in it.
    @discardableResult
    public mutating func add(thing: String, toGroup group: String) -> Bool {
        let thing = _things.index(forKey: thing).map { _things[$0].key } ?? thing
        guard groupMembers[group, default: []].insert(thing).inserted else { return false }
        directGroups[thing, default: []].insert(group)
        return true
    }

    @discardableResult
    public mutating func remove(thing: String, fromGroup group: String) -> Bool {
        guard Self.remove(thing, from: group, in: &groupMembers) else { return false }
        Self.remove(group, from: thing, in: &directGroups)
        return true
    }

    /// Attaches a policy to a target ("cert/ID", "thinggroup/NAME"); false if it was attached.
    @discardableResult
    public mutating func attach(policy name: String, to target: String) -> Bool {
        guard policyTargets[name, default: []].insert(target).inserted else { return false }
        targetPolicies[target, default: []].insert(name)
        return true
    }

    @discardableResult
    public mutating func detach(policy name: String, from target: String) -> Bool {
        guard Self.remove(target, from: name, in: &policyTargets) else { return false }
        Self.remove(name, from: target, in: &targetPolicies)
        return true
    }

    @discardableResult
    private static func remove(_ element: String, from key: String, in index: inout TreeDictionary<String, LinkSet>) -> Bool {
        guard index[key]?.remove(element) != nil else { return false }
        if index[key]?.isEmpty == true { index[key] = nil }
        return true
    }

    @discardableResult
    private static func remove<S: SetAlgebra>(_ element: String, from key: String, in index: inout TreeDictionary<String, S>) -> Bool
    where S.Element == String {
        guard index[key]?.remove(element) != nil else { return false }
        if index[key]?.isEmpty == true { index[key] = nil }
        return true
    }

    // MARK: Questions (each costs what its answer holds, not what the registry holds)

    /// The things a certificate is attached to, in name order.
    public func things(ofCertificate id: String) -> [String] {
        (certificateThings[id] ?? []).sorted()
    }

    /// The policies attached to any of `targets` ("cert/ID", "thinggroup/NAME"), parsed, in name order.
    public func policies(attachedTo targets: Set<String>) -> [NamedPolicy] {
        var names = Set<String>()
        for target in targets { names.formUnion(targetPolicies[target] ?? []) }
        return names.sorted().compactMap { name in parsedPolicies[name].map { NamedPolicy(name: name, document: $0) } }
    }

    /// The names of the policies attached to one target, in name order.
    public func policyNames(attachedTo target: String) -> [String] {
        (targetPolicies[target] ?? []).sorted()
    }

    /// A group and its ancestors, from the group up to the root.
    public func lineage(ofGroup name: String) -> [ThingGroup] {
        var result: [ThingGroup] = []
        var next: String? = name
        while let current = next, let group = thingGroups[current], result.count < 16 {
            result.append(group)
            next = group.parent
        }
        return result
    }

    /// A group and all the groups below it.
    public func subtree(ofGroup name: String) -> Set<String> {
        guard thingGroups[name] != nil else { return [] }
        var result: Set<String> = [name]
        var level: [String] = [name]
        // Groups nest at most 7 deep (AWS's limit); 16 levels bound a damaged tree.
        for _ in 0..<16 where !level.isEmpty {
            level = level.flatMap { childGroups[$0] ?? [] }.filter { result.insert($0).inserted }
        }
        return result
    }

    /// The groups a thing is in directly, and their ancestors.
    public func groups(ofThing thing: String) -> Set<String> {
        var names = Set<String>()
        for group in directGroups[thing] ?? [] {
            for ancestor in lineage(ofGroup: group) { names.insert(ancestor.name) }
        }
        return names
    }

    /// A group's attributes with those inherited from its ancestors (the nearest wins).
    public func effectiveAttributes(ofGroup name: String) -> [String: String] {
        var attributes: [String: String] = [:]
        for group in lineage(ofGroup: name).reversed() { attributes.merge(group.attributes) { _, new in new } }
        return attributes
    }

    // MARK: Checks

    /// Rebuilds every reverse index from the forward records; nil if they agree, else what differs.
    public func checkIndexes() -> String? {
        var rebuilt = RegistryState()
        for thing in things.values { rebuilt.put(thing) }
        for group in thingGroups.values { rebuilt.put(group) }
        for (thing, ids) in thingPrincipals { for id in ids { rebuilt.attach(certificate: id, toThing: thing) } }
        for (group, members) in groupMembers { for thing in members { rebuilt.add(thing: thing, toGroup: group) } }
        for (policy, targets) in policyTargets { for target in targets { rebuilt.attach(policy: policy, to: target) } }
        for (id, key) in accessKeys { rebuilt.put(accessKey: id, key) }
        if rebuilt.temporaryKeysOfCertificate != temporaryKeysOfCertificate { return "temporaryKeysOfCertificate" }
        if rebuilt.certificateThings != certificateThings { return "certificateThings" }
        if rebuilt.directGroups != directGroups { return "directGroups" }
        if rebuilt.targetPolicies != targetPolicies { return "targetPolicies" }
        if rebuilt.typeMembers != typeMembers { return "typeMembers" }
        if rebuilt.childGroups != childGroups { return "childGroups" }
        if rebuilt.billingGroupMembers != billingGroupMembers { return "billingGroupMembers" }
        if rebuilt.thingPrincipals.contains(where: { $0.value.isEmpty }) || groupMembers.contains(where: { $0.value.isEmpty }) {
            return "empty link sets"
        }
        return nil
    }
}
