import DroverPolicy
import Foundation

extension Registry {
    static func checkPolicyName(_ name: String) throws {
        guard (1...128).contains(name.count),
              name.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || "_+=,.@-".unicodeScalars.contains($0) })
        else { throw RegistryError.invalid("policy name '\(name)' must be 1 to 128 characters of a-z, A-Z, 0-9 and _+=,.@-") }
    }

    static func parse(_ document: String) throws -> PolicyDocument {
        switch PolicyDocument.parse(document) {
        case .success(let parsed): return parsed
        case .failure(let error): throw RegistryError(.malformedPolicy, "the policy document is not valid: \(error)")
        }
    }

    /// A principal in API form (a certificate ARN, or a bare certificate id) as a target key.
    public static func certificateTarget(_ principal: String) throws -> String {
        let id = principal.split(separator: "/").last.map(String.init) ?? principal
        guard principal.hasPrefix("arn:") ? principal.contains(":cert/") : true else {
            throw RegistryError.invalid("the principal must be a certificate ARN (arn:aws:iot:REGION:ACCOUNT:cert/ID), not '\(principal)'")
        }
        try checkCertificateId(id)
        return id
    }

    // MARK: Policies

    public func createPolicy(_ caller: Caller, name: String, document: String, tags: [String: String] = [:]) async throws -> PolicyRecord {
        try Self.checkPolicyName(name)
        let parsed = try Self.parse(document)
        return try await mutate(caller, "CreatePolicy", "policy/\(name)") { state, changes in
            if state.policies[name] != nil {
                throw RegistryError(.alreadyExists, "Policy cannot be created - name already exists (name=\(name))", resourceId: name,
                                    resourceArn: self.arn(caller.region, "policy/\(name)"))
            }
            let now = Date().timeIntervalSince1970
            let policy = PolicyRecord(name: name, versions: [.init(id: 1, document: document, createdAt: now)], defaultVersion: 1,
                                      nextVersion: 2, createdAt: now, modifiedAt: now)
            state.policies[name] = policy
            state.parsedPolicies[name] = parsed
            changes.append(Self.record(Kind.policy, name, policy))
            Self.putTags(tags, on: "policy/\(name)", &state, &changes)
            return policy
        }
    }

    public func policy(_ name: String) throws -> PolicyRecord {
        guard let policy = snapshot.policies[name] else { throw RegistryError.notFound("policy", name) }
        return policy
    }

    public func listPolicies(pageSize: Int?, marker: String?, ascending: Bool) throws -> Page<PolicyRecord> {
        let items = Array(snapshot.policies.values)
        if ascending { return try Self.page(items, key: \.name, maxResults: pageSize, nextToken: marker) }
        let descending = try Self.page(items.map { Reversed($0, $0.name) }, key: \.inverted, maxResults: pageSize, nextToken: marker)
        return Page(items: descending.items.map(\.value), nextToken: descending.nextToken)
    }

    /// AWS's rules: a policy with targets, or with versions other than the default, stays.
    public func deletePolicy(_ caller: Caller, name: String) async throws {
        try await mutate(caller, "DeletePolicy", "policy/\(name)") { state, changes in
            guard let policy = state.policies[name] else { throw RegistryError.notFound("policy", name) }
            if let targets = state.policyTargets[name], !targets.isEmpty {
                throw RegistryError(.deleteConflict, "The policy cannot be deleted as the policy is attached to one or more principals (name=\(name))")
            }
            guard policy.versions.count == 1 else {
                throw RegistryError(.deleteConflict, "policy \(name) has \(policy.versions.count - 1) version(s) besides the default; delete them first")
            }
            state.policies[name] = nil
            state.parsedPolicies[name] = nil
            changes.append(Self.removal(Kind.policy, name))
            Self.dropTags(of: "policy/\(name)", &state, &changes)
        }
    }

    public func createPolicyVersion(_ caller: Caller, name: String, document: String, setAsDefault: Bool) async throws -> (PolicyRecord, Int) {
        let parsed = try Self.parse(document)
        return try await mutate(caller, "CreatePolicyVersion", "policy/\(name)") { state, changes in
            guard var policy = state.policies[name] else { throw RegistryError.notFound("policy", name) }
            guard policy.versions.count < 5 else {
                throw RegistryError(.versionsLimitExceeded, "The policy \(name) already has the maximum number of versions (5)")
            }
            let now = Date().timeIntervalSince1970
            let id = policy.nextVersion
            policy.versions.append(.init(id: id, document: document, createdAt: now))
            policy.nextVersion += 1
            policy.modifiedAt = now
            if setAsDefault {
                policy.defaultVersion = id
                state.parsedPolicies[name] = parsed
            }
            state.policies[name] = policy
            changes.append(Self.record(Kind.policy, name, policy))
            return (policy, id)
        }
    }

    static func versionNumber(_ text: String) throws -> Int {
        guard let number = Int(text), number > 0 else { throw RegistryError.invalid("policyVersionId must be a positive number, not '\(text)'") }
        return number
    }

    public func setDefaultPolicyVersion(_ caller: Caller, name: String, version: String) async throws {
        let number = try Self.versionNumber(version)
        try await mutate(caller, "SetDefaultPolicyVersion", "policy/\(name)") { state, changes in
            guard var policy = state.policies[name] else { throw RegistryError.notFound("policy", name) }
            guard let chosen = policy.versions.first(where: { $0.id == number }) else {
                throw RegistryError.notFound("version \(number) of policy", name)
            }
            policy.defaultVersion = number
            policy.modifiedAt = Date().timeIntervalSince1970
            state.parsedPolicies[name] = try Self.parse(chosen.document)
            state.policies[name] = policy
            changes.append(Self.record(Kind.policy, name, policy))
        }
    }

    public func deletePolicyVersion(_ caller: Caller, name: String, version: String) async throws {
        let number = try Self.versionNumber(version)
        try await mutate(caller, "DeletePolicyVersion", "policy/\(name)") { state, changes in
            guard var policy = state.policies[name] else { throw RegistryError.notFound("policy", name) }
            guard policy.versions.contains(where: { $0.id == number }) else {
                throw RegistryError.notFound("version \(number) of policy", name)
            }
            guard policy.defaultVersion != number else {
                throw RegistryError(.deleteConflict, "version \(number) is the default version of policy \(name); make another the default first")
            }
            policy.versions.removeAll { $0.id == number }
            state.policies[name] = policy
            changes.append(Self.record(Kind.policy, name, policy))
        }
    }

    // MARK: Attachments

    /// A target as a key: "cert/ID" for a certificate ARN (or id), "thinggroup/NAME" for a
    /// thing group ARN.
    static func targetKey(_ target: String) throws -> String {
        if let range = target.range(of: ":thinggroup/") { return "thinggroup/" + target[range.upperBound...] }
        return "cert/" + (try certificateTarget(target))
    }

    static func checkTarget(_ key: String, _ state: RegistryState) throws {
        if key.hasPrefix("thinggroup/") {
            let group = String(key.dropFirst("thinggroup/".count))
            guard state.thingGroups[group] != nil else { throw RegistryError.notFound("thing group", group) }
        } else {
            let id = String(key.dropFirst(5))
            guard state.certificates[id] != nil else { throw RegistryError.notFound("certificate", id) }
        }
    }

    public func attachPolicy(_ caller: Caller, name: String, target: String) async throws {
        let key = try Self.targetKey(target)
        try await mutate(caller, "AttachPolicy", "policy/\(name)") { state, changes in
            guard state.policies[name] != nil else { throw RegistryError.notFound("policy", name) }
            try Self.checkTarget(key, state)
            let attached = state.targetPolicies[key] ?? []
            guard attached.count < 10 || attached.contains(name) else {
                throw RegistryError(.limitExceeded, "a target can have at most 10 policies attached")
            }
            if state.attach(policy: name, to: key) { changes.append(Self.link(Kind.policyTarget, name, key, present: true)) }
        }
    }

    public func detachPolicy(_ caller: Caller, name: String, target: String) async throws {
        let key = try Self.targetKey(target)
        try await mutate(caller, "DetachPolicy", "policy/\(name)") { state, changes in
            guard state.policies[name] != nil else { throw RegistryError.notFound("policy", name) }
            guard state.detach(policy: name, from: key) else {
                throw RegistryError.invalid("policy \(name) is not attached to \(target)")
            }
            changes.append(Self.link(Kind.policyTarget, name, key, present: false))
        }
    }

    public func attachedPolicies(target: String) throws -> [PolicyRecord] {
        let key = try Self.targetKey(target)
        let state = snapshot
        try Self.checkTarget(key, state)
        return state.policyNames(attachedTo: key).compactMap { state.policies[$0] }
    }

    /// The targets as keys ("cert/ID", "thinggroup/NAME").
    public func targets(ofPolicy name: String) throws -> [String] {
        let state = snapshot
        guard state.policies[name] != nil else { throw RegistryError(.notFound, "Policy not found") }
        return (state.policyTargets[name] ?? []).sorted()
    }

    /// `exclusive` is AWS's EXCLUSIVE_THING: the certificate may then be attached to no other
    /// thing, and a certificate attached exclusively elsewhere cannot be attached here.
    public func attachThingPrincipal(_ caller: Caller, thing: String, principal: String, exclusive: Bool = false) async throws {
        let id = try Self.certificateTarget(principal)
        try await mutate(caller, "AttachThingPrincipal", thing) { state, changes in
            guard state.things[thing] != nil else { throw RegistryError.notFound("thing", thing) }
            guard state.certificates[id] != nil else { throw RegistryError.notFound("certificate", id) }
            let others = state.things(ofCertificate: id).filter { $0 != thing }
            let attachedHere = state.thingPrincipals[thing]?.contains(id) == true
            if let holder = others.first(where: { state.exclusivePrincipals[$0]?.contains(id) == true }) {
                throw RegistryError.invalid("certificate \(id) is attached to thing \(holder) as EXCLUSIVE_THING; detach it there first")
            }
            if exclusive, let other = others.first {
                throw RegistryError.invalid("certificate \(id) is attached to thing \(other); an EXCLUSIVE_THING principal has only one thing")
            }
            if !attachedHere {
                state.attach(certificate: id, toThing: thing)
                changes.append(Self.record(Kind.thingPrincipals, thing, state.thingPrincipals[thing] ?? []))
            }
            let wasExclusive = state.exclusivePrincipals[thing]?.contains(id) == true
            if exclusive != wasExclusive {
                if exclusive { state.exclusivePrincipals[thing, default: []].insert(id) } else { state.exclusivePrincipals[thing]?.remove(id) }
                changes.append(Self.record(Kind.exclusivePrincipals, thing, state.exclusivePrincipals[thing] ?? []))
            }
        }
    }

    public func detachThingPrincipal(_ caller: Caller, thing: String, principal: String) async throws {
        let id = try Self.certificateTarget(principal)
        try await mutate(caller, "DetachThingPrincipal", thing) { state, changes in
            guard state.things[thing] != nil else { throw RegistryError.notFound("thing", thing) }
            guard state.detach(certificate: id, fromThing: thing) else {
                throw RegistryError.notFound("attachment of certificate \(id) to thing", thing)
            }
            changes.append(Self.record(Kind.thingPrincipals, thing, state.thingPrincipals[thing] ?? []))
            if state.exclusivePrincipals[thing]?.remove(id) != nil {
                changes.append(Self.record(Kind.exclusivePrincipals, thing, state.exclusivePrincipals[thing] ?? []))
            }
        }
    }

    public func thingPrincipals(_ thing: String) throws -> [String] {
        let state = snapshot
        guard state.things[thing] != nil else {
            throw RegistryError(.notFound, "Failed to list principals for thing \(thing) because the thing does not exist in your account")
        }
        return (state.thingPrincipals[thing] ?? []).sorted()
    }

    /// The certificates attached to a thing, each with whether it is attached exclusively.
    public func thingPrincipalObjects(_ thing: String) throws -> [(id: String, exclusive: Bool)] {
        let state = snapshot
        let ids = try thingPrincipals(thing)
        return ids.map { ($0, state.exclusivePrincipals[thing]?.contains($0) == true) }
    }

    public func principalThings(_ principal: String) throws -> [String] {
        let id = try Self.certificateTarget(principal)
        let state = snapshot
        guard state.certificates[id] != nil else { throw RegistryError.notFound("certificate", id) }
        return state.things(ofCertificate: id)
    }
}

extension RegistryState {
    /// The thing a connection with this certificate acts as: the attached thing named like the
    /// client id, or else the only attached thing (AWS's rule); nil if neither.
    public func connectionThing(certificateId: String, clientId: String?) -> Thing? {
        let attached = things(ofCertificate: certificateId)
        if let clientId, attached.contains(clientId) { return things[clientId] }
        return attached.count == 1 ? things[attached[0]] : nil
    }

    /// What the policy variables of a connection resolve to, and the policies that apply.
    public func policyContext(certificateId: String, clientId: String?, region: String, account: String) -> (PolicyContext, [NamedPolicy]) {
        let thing = connectionThing(certificateId: certificateId, clientId: clientId)
        let context = PolicyContext(
            clientId: clientId, thingName: thing?.name, thingTypeName: thing?.typeName, thingAttributes: thing?.attributes ?? [:],
            isAttached: thing != nil, certificateCommonName: certificates[certificateId]?.commonName, region: region,
            account: account)
        var targets: Set<String> = ["cert/\(certificateId)"]
        if let thing { for group in groups(ofThing: thing.name) { targets.insert("thinggroup/\(group)") } }
        return (context, policies(attachedTo: targets))
    }
}
