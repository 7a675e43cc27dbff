import DroverPolicy
import Foundation

extension RegistryState {
    /// Keeps a certificate without its PEM (the database holds it: `Registry.Kind.certificatePEM`),
    /// its CA's id shared with the CA's record rather than a string of its own.
    mutating func put(_ certificate: CertificateRecord) {
        var kept = certificate
        kept.pem = ""
        if let ca = kept.caCertificateId, let shared = caCertificates[ca]?.id { kept.caCertificateId = shared }
        certificates[kept.id] = kept
    }

    /// Applies one stored record (as written, or as read back from the change feed): its value
    /// replaces what the state held under its kind and key, nil removes it, and the indexes
    /// follow. Kinds this version does not know are left alone. A record that does not decode
    /// is an error: the caller keeps the state it had.
    public mutating func apply(_ change: RegistryRecordChange, decoder: JSONDecoder = JSONDecoder()) throws {
        func value<T: Decodable>(_ type: T.Type) throws -> T? {
            try change.value.map { try decoder.decode(T.self, from: Data($0)) }
        }
        let key = change.key
        switch change.kind {
        case Registry.Kind.thing:
            if let thing = try value(Thing.self) { put(thing) } else { removeThing(key) }
        case Registry.Kind.thingType: thingTypes[key] = try value(ThingType.self)
        case Registry.Kind.accessKey:
            put(accessKey: key, try value(AccessKey.self))
        case Registry.Kind.certificate:
            if let record = try value(CertificateRecord.self) { put(record) } else { certificates[key] = nil }
        case Registry.Kind.certificatePEM: break // read from the store when asked for
        case Registry.Kind.certificateByDate, Registry.Kind.certificateByCA: break // indexes read from the store when listing
        case Registry.Kind.caCertificate: caCertificates[key] = try value(CACertificateRecord.self)
        case Registry.Kind.policy:
            let policy = try value(PolicyRecord.self)
            policies[key] = policy
            if let policy, case .success(let document) = PolicyDocument.parse(policy.defaultDocument) {
                parsedPolicies[key] = document
            } else {
                parsedPolicies[key] = nil
            }
        case Registry.Kind.thingPrincipals:
            let wanted = try value(Set<String>.self) ?? []
            let current = (thingPrincipals[key] ?? []).asSet
            for id in current.subtracting(wanted) { detach(certificate: id, fromThing: key) }
            for id in wanted.subtracting(current) { attach(certificate: id, toThing: key) }
        case Registry.Kind.thingGroup:
            if let group = try value(ThingGroup.self) { put(group) } else { removeGroup(key) }
        case Registry.Kind.groupMember:
            guard let (group, thing) = Registry.splitLink(key) else { return }
            if change.value != nil { add(thing: thing, toGroup: group) } else { remove(thing: thing, fromGroup: group) }
        case Registry.Kind.policyTarget:
            guard let (policy, target) = Registry.splitLink(key) else { return }
            if change.value != nil { attach(policy: policy, to: target) } else { detach(policy: policy, from: target) }
        case Registry.Kind.billingGroup: billingGroups[key] = try value(BillingGroup.self)
        case Registry.Kind.exclusivePrincipals:
            let ids = try value(Set<String>.self) ?? []
            exclusivePrincipals[key] = ids.isEmpty ? nil : ids
        case Registry.Kind.tags:
            let tags = try value([String: String].self) ?? [:]
            self.tags[key] = tags.isEmpty ? nil : tags
        case Registry.Kind.roleAlias: roleAliases[key] = try value(RoleAlias.self)
        default: break
        }
    }
}
