import DroverPolicy
import Foundation

extension Registry {
    // MARK: Role aliases

    /// The ready-made API role an IAM role ARN names: `arn:aws:iam::ACCOUNT:role/NAME`.
    public func apiRole(ofRoleArn arn: String) throws -> APIRole {
        let prefix = "arn:aws:iam::\(configuration.account):role/"
        guard arn.hasPrefix(prefix), let role = APIRole(rawValue: String(arn.dropFirst(prefix.count))) else {
            let names = APIRole.allCases.map(\.rawValue).joined(separator: ", ")
            throw RegistryError.invalid("roleArn must be \(prefix)NAME, where NAME is one of Drover's API roles (\(names)), not '\(arn.prefix(256))'")
        }
        return role
    }

    static func checkRoleAliasName(_ name: String) throws {
        guard (1...128).contains(name.count),
              name.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || "_=,@-".unicodeScalars.contains($0) })
        else { throw RegistryError.invalid("role alias '\(name.prefix(128))' must be 1 to 128 characters of a-z, A-Z, 0-9 and _=,@-") }
    }

    static func checkDuration(_ seconds: Int) throws {
        guard (900...43_200).contains(seconds) else {
            throw RegistryError.invalid("credentialDurationSeconds must be between 900 and 43200, not \(seconds)")
        }
    }

    public func createRoleAlias(_ caller: Caller, name: String, roleArn: String, duration: Int?, tags: [String: String]) async throws -> RoleAlias {
        try Self.checkRoleAliasName(name)
        _ = try apiRole(ofRoleArn: roleArn)
        try Self.checkDuration(duration ?? 3600)
        try Self.checkTags(tags)
        return try await mutate(caller, "CreateRoleAlias", "rolealias/\(name)") { state, changes in
            if state.roleAliases[name] != nil {
                throw RegistryError(.alreadyExists, "Role alias \(name) already exists", resourceId: name,
                                    resourceArn: self.arn(caller.region, "rolealias/\(name)"))
            }
            let now = Date().timeIntervalSince1970
            let alias = RoleAlias(name: name, roleArn: roleArn, credentialDurationSeconds: duration ?? 3600, createdAt: now, modifiedAt: now)
            state.roleAliases[name] = alias
            changes.append(Self.record(Kind.roleAlias, name, alias))
            Self.putTags(tags, on: "rolealias/\(name)", &state, &changes)
            return alias
        }
    }

    public func roleAlias(_ name: String) throws -> RoleAlias {
        guard let alias = snapshot.roleAliases[name] else { throw RegistryError.notFound("role alias", name) }
        return alias
    }

    public func updateRoleAlias(_ caller: Caller, name: String, roleArn: String?, duration: Int?) async throws -> RoleAlias {
        if let roleArn { _ = try apiRole(ofRoleArn: roleArn) }
        if let duration { try Self.checkDuration(duration) }
        return try await mutate(caller, "UpdateRoleAlias", "rolealias/\(name)") { state, changes in
            guard var alias = state.roleAliases[name] else { throw RegistryError.notFound("role alias", name) }
            if let roleArn { alias.roleArn = roleArn }
            if let duration { alias.credentialDurationSeconds = duration }
            alias.modifiedAt = Date().timeIntervalSince1970
            state.roleAliases[name] = alias
            changes.append(Self.record(Kind.roleAlias, name, alias))
            return alias
        }
    }

    /// Keys already issued through the alias keep working until they expire, as on AWS.
    public func deleteRoleAlias(_ caller: Caller, name: String) async throws {
        try await mutate(caller, "DeleteRoleAlias", "rolealias/\(name)") { state, changes in
            guard state.roleAliases[name] != nil else { throw RegistryError.notFound("role alias", name) }
            state.roleAliases[name] = nil
            changes.append(Self.removal(Kind.roleAlias, name))
            Self.dropTags(of: "rolealias/\(name)", &state, &changes)
        }
    }

    public func listRoleAliases(pageSize: Int?, marker: String?, ascending: Bool) throws -> Page<String> {
        let names = Array(snapshot.roleAliases.keys)
        if ascending { return try Self.pageOfStrings(names, maxResults: pageSize, nextToken: marker) }
        let descending = try Self.page(names.map { Reversed($0, $0) }, key: \.inverted, maxResults: pageSize, nextToken: marker)
        return Page(items: descending.items.map(\.value), nextToken: descending.nextToken)
    }

    // MARK: The credentials provider

    /// What the credentials provider answers a device with.
    public struct TemporaryCredentials: Sendable {
        public var key: AccessKey
        public var expiration: Date
    }

    /// Issues temporary keys to the device whose (verified, ACTIVE) certificate is
    /// `certificateId`, with the rights of the alias's role. With `thingName`, the thing must
    /// be attached to the certificate (AWS's `x-amzn-iot-thingname`). The key replaces the one
    /// issued before for the same certificate and alias.
    public func issueCredentials(certificateId: String, alias name: String, thingName: String?) async throws -> TemporaryCredentials {
        let caller = Caller(principal: "cert/\(certificateId)", region: "")
        return try await mutate(caller, "GetCredentials", "rolealias/\(name.clipped)") { state, changes in
            guard let certificate = state.certificates[certificateId], certificate.isActive else {
                throw RegistryError(.unauthorized, "the certificate is not registered or not ACTIVE")
            }
            guard let alias = state.roleAliases[name] else { throw RegistryError(.notFound, "Role alias \(name.clipped) does not exist") }
            if let thingName, state.thingPrincipals[thingName]?.contains(certificateId) != true {
                throw RegistryError(.unauthorized, "thing \(thingName.clipped) is not attached to the certificate")
            }
            let role = try self.apiRole(ofRoleArn: alias.roleArn)
            let now = Date()
            let expiration = now.addingTimeInterval(TimeInterval(alias.credentialDurationSeconds))
            var key = AccessKey.generate(name: "role alias \(name)", policy: role.document, role: role.rawValue, now: now)
            key.id = "ASIA" + key.id.dropFirst(4)
            key.expiresAt = expiration.timeIntervalSince1970
            key.sessionToken = Self.randomToken()
            let pair = "\(certificateId)/\(name)"
            key.issuedFor = pair
            if let old = state.temporaryKeys[pair] {
                state.put(accessKey: old, nil)
                changes.append(Self.removal(Kind.accessKey, old))
            }
            state.put(accessKey: key.id, key)
            changes.append(Self.record(Kind.accessKey, key.id, key))
            return TemporaryCredentials(key: key, expiration: expiration)
        }
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<48).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
    }
}
