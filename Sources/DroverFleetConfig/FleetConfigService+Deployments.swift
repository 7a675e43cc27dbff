import DroverRegistry
import DroverShadow
import DroverShadowService
import Foundation

/// Deployments: a template version into one shadow of a target's members; updates, rollbacks,
/// status and resets.
extension FleetConfigService {
    public static let defaultShadowName = "config"

    static func noDeployment(_ name: String) -> RegistryError {
        RegistryError(.notFound, "deployment \(name) does not exist")
    }

    public func deployment(_ name: String) throws -> ConfigDeployment {
        guard let deployment = deployments[name] else { throw Self.noDeployment(name) }
        return deployment
    }

    public func deploymentList(template: String?) -> [ConfigDeployment] {
        deployments.values.filter { template == nil || $0.template == template }.sorted { $0.name < $1.name }
    }

    /// Members of the deployment, and how many of them hold its current revision.
    public func rollout(of name: String) throws -> (members: Int, applied: Int, failed: Int) {
        let deployment = try deployment(name)
        let members = Self.members(of: deployment.target, in: registry.snapshot)
        let done = applied[name] ?? [:]
        return (members.count, members.filter { done[$0]?.revision == deployment.revision }.count,
                members.filter { failures[name]?[$0] != nil }.count)
    }

    /// Writes the template version (the latest if nil) into `shadowName` of every member of
    /// `target`, and of every thing that becomes one.
    public func createDeployment(_ caller: Caller, name: String, template: String, version: Int?, target: ConfigTarget,
                                 shadowName: String?, comment: String?) throws -> ConfigDeployment {
        try audited(caller, "CreateConfigDeployment", "configdeployment/\(name)") {
            try Self.checkName(name, "deploymentName")
            try Self.checkComment(comment)
            let shadow = shadowName ?? Self.defaultShadowName
            guard (1...64).contains(shadow.count),
                  shadow.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ":_-".unicodeScalars.contains($0)) })
            else { throw RegistryError(.invalidRequest, "shadowName '\(shadow)' must be 1 to 64 characters of a-z, A-Z, 0-9 and :_-") }
            guard deployments[name] == nil else { throw RegistryError(.alreadyExists, "deployment \(name) already exists") }
            let state = registry.snapshot
            switch target.kind {
            case .thingType where state.thingTypes[target.name] == nil:
                throw RegistryError(.notFound, "thing type \(target.name) does not exist")
            case .thingGroup where state.thingGroups[target.name] == nil:
                throw RegistryError(.notFound, "thing group \(target.name) does not exist")
            default: break
            }
            if let other = deployments.values.first(where: { $0.target == target && $0.shadowName == shadow }) {
                throw RegistryError(.alreadyExists, "deployment \(other.name) already configures shadow \(shadow) of \(target); update or roll back that one")
            }
            let version = try templateVersion(template, version)
            let time = now().timeIntervalSince1970
            let deployment = ConfigDeployment(
                name: name, template: template, target: target, shadowName: shadow, revision: 1, templateVersion: version.version,
                history: [ConfigRevision(revision: 1, templateVersion: version.version, action: ConfigRevision.Action.deploy,
                                         author: caller.principal, comment: comment, time: time)],
                createdAt: time, lastModifiedAt: time)
            try commit(caller, "CreateConfigDeployment", "configdeployment/\(name)",
                       [ConfigRecordChange(kind: Kind.deployment, key: name, value: Self.encode(deployment))])
            deployments[name] = deployment
            schedule(name)
            return deployment
        }
    }

    /// Deploys another version of the same template (UPDATE), or an earlier one (ROLLBACK; by
    /// default the version deployed before the current one).
    public func redeploy(_ caller: Caller, name: String, version: Int?, rollback: Bool, comment: String?) throws -> ConfigDeployment {
        let operation = rollback ? "RollbackConfigDeployment" : "UpdateConfigDeployment"
        return try audited(caller, operation, "configdeployment/\(name)") {
            try Self.checkComment(comment)
            guard var deployment = deployments[name] else { throw Self.noDeployment(name) }
            guard deployment.revision < configuration.maxVersions else {
                throw RegistryError(.limitExceeded, "deployment \(name) has \(configuration.maxVersions) revisions; create a new deployment")
            }
            let number: Int
            if let version {
                number = version
            } else if rollback {
                guard let previous = deployment.history.last(where: { $0.templateVersion < deployment.templateVersion }) else {
                    throw RegistryError(.invalidRequest, "deployment \(name) has deployed no version earlier than \(deployment.templateVersion); give templateVersion")
                }
                number = previous.templateVersion
            } else {
                number = try template(deployment.template).latestVersion
            }
            let target = try templateVersion(deployment.template, number)
            if rollback && target.version >= deployment.templateVersion {
                throw RegistryError(.invalidRequest, "a rollback goes to an earlier version than \(deployment.templateVersion), not \(target.version)")
            }
            guard target.version != deployment.templateVersion else {
                throw RegistryError(.invalidRequest, "deployment \(name) already deploys version \(target.version)")
            }
            let time = now().timeIntervalSince1970
            deployment.revision += 1
            deployment.templateVersion = target.version
            deployment.lastModifiedAt = time
            deployment.history.append(ConfigRevision(
                revision: deployment.revision, templateVersion: target.version,
                action: rollback ? ConfigRevision.Action.rollback : ConfigRevision.Action.update, author: caller.principal,
                comment: comment, time: time))
            try commit(caller, operation, "configdeployment/\(name)",
                       [ConfigRecordChange(kind: Kind.deployment, key: name, value: Self.encode(deployment))])
            deployments[name] = deployment
            schedule(name)
            return deployment
        }
    }

    /// Stops following the target; what was written stays in the shadows.
    public func deleteDeployment(_ caller: Caller, name: String) throws {
        try audited(caller, "DeleteConfigDeployment", "configdeployment/\(name)") {
            guard deployments[name] != nil else { throw Self.noDeployment(name) }
            var changes = [ConfigRecordChange(kind: Kind.deployment, key: name, value: nil)]
            for thing in (applied[name] ?? [:]).keys {
                changes.append(ConfigRecordChange(kind: Kind.applied, key: "\(name)/\(thing)", value: nil))
            }
            try commit(caller, "DeleteConfigDeployment", "configdeployment/\(name)", changes)
            deployments[name] = nil
            applied[name] = nil
            failures[name] = nil
        }
    }

    /// Each member's condition, read from its shadow now.
    public func status(_ name: String) async throws -> DeploymentStatus {
        let deployment = try deployment(name)
        guard let configuration = document(deployment.template, deployment.templateVersion) else {
            throw RegistryError(.internalFailure, "template \(deployment.template) version \(deployment.templateVersion) is missing")
        }
        let members = Self.members(of: deployment.target, in: registry.snapshot).sorted()
        let documents = try await readShadows(members, deployment.shadowName)
        // Read after the await: the rollout may have moved on meanwhile.
        let done = applied[name] ?? [:]
        let failed = failures[name] ?? [:]
        var status = DeploymentStatus(deployment: deployment, members: members.count, inSync: 0, pending: 0, drifted: 0, things: [])
        for thing in members {
            let condition: ConfigDocument.Condition
            if done[thing]?.revision != deployment.revision {
                condition = failed[thing].map { ConfigDocument.Condition(state: .pending, reason: "\(ConfigDocument.Reason.applyFailed): \($0)", keys: []) }
                    ?? ConfigDocument.Condition(state: .pending, reason: ConfigDocument.Reason.notApplied, keys: [])
            } else {
                condition = ConfigDocument.condition(of: documents[thing] ?? nil, against: configuration,
                                                     writtenVersion: done[thing]?.shadowVersion)
            }
            switch condition.state {
            case .inSync: status.inSync += 1
            case .drifted: status.drifted += 1
            default: status.pending += 1
            }
            status.things.append(.init(thing: thing, condition: condition))
        }
        return status
    }

    func readShadows(_ things: [String], _ name: String) async throws -> [String: ShadowDocument?] {
        do { return try await shadows.documents(things: things, name: name) } catch {
            logger.error("shadow store read failed", metadata: ["error": "\(error)"])
            throw RegistryError(.internalFailure, "the shadows could not be read; try again")
        }
    }

    // MARK: Reset

    /// Sets a thing's configuration back to a known-good document: the template version that
    /// its deployment deploys, or its thing type's factory default. Desired becomes exactly that
    /// document (keys it does not set are removed); the device gets the delta.
    public func reset(_ caller: Caller, thing: String, shadowName: String?, source: ConfigReset.Source, deploymentName: String?)
        async throws -> ConfigReset
    {
        let shadow = shadowName ?? Self.defaultShadowName
        do {
            let state = registry.snapshot
            guard let record = state.things[thing] else { throw RegistryError(.notFound, "thing \(thing) does not exist") }
            var result = ConfigReset(thing: thing, shadowName: shadow, source: source, deployment: nil, templateVersion: nil, shadowVersion: 0)
            let target: [String: JSONValue]
            var revision: (String, Int)?
            if source == .factoryDefault {
                guard let type = record.typeName else {
                    throw RegistryError(.invalidRequest, "thing \(thing) has no thing type, so it has no factory default")
                }
                guard let value = factoryDefaults[type], case .object(let members)? = try? JSONValue.parse(value.document).get() else {
                    throw RegistryError(.notFound, "thing type \(type) has no factory-default configuration; set one first")
                }
                target = members
            } else {
                let covering = deployments.values.filter {
                    $0.shadowName == shadow && Self.reaches($0.target, thing, in: state)
                }.sorted { $0.name < $1.name }
                let chosen: ConfigDeployment
                if let deploymentName {
                    guard let found = covering.first(where: { $0.name == deploymentName }) else {
                        _ = try deployment(deploymentName)
                        throw RegistryError(.invalidRequest, "deployment \(deploymentName) does not configure shadow \(shadow) of thing \(thing)")
                    }
                    chosen = found
                } else {
                    guard let only = covering.first else {
                        throw RegistryError(.notFound, "no deployment configures shadow \(shadow) of thing \(thing); deploy a template to one of its groups or its thing type, or reset to its factory default")
                    }
                    guard covering.count == 1 else {
                        throw RegistryError(.invalidRequest, "deployments \(covering.map(\.name).joined(separator: ", ")) all configure shadow \(shadow) of thing \(thing); give deploymentName")
                    }
                    chosen = only
                }
                guard let members = document(chosen.template, chosen.templateVersion) else {
                    throw RegistryError(.internalFailure, "template \(chosen.template) version \(chosen.templateVersion) is missing")
                }
                target = members
                revision = (chosen.name, chosen.revision)
                result.deployment = chosen.name
                result.templateVersion = chosen.templateVersion
            }
            // Read, then write with that version: a change in between is a conflict, and the
            // reset starts again from what is there.
            for _ in 0..<5 {
                let current = try await readShadows([thing], shadow)[thing] ?? nil
                let request = ConfigDocument.updateRequest(ConfigDocument.patch(from: current?.desired, to: target),
                                                           version: current?.version)
                let answer = await shadows.update(thing: thing, name: shadow, payload: request)
                if answer.status == 409 { continue }
                guard answer.status == 200 else {
                    throw RegistryError(answer.status == 413 ? .invalidRequest : .internalFailure,
                                        "the shadow refused the reset: \(Self.message(of: answer))")
                }
                result.shadowVersion = Self.version(of: answer)
                if let (name, number) = revision, deployments[name]?.revision == number {
                    let marker = AppliedMarker(revision: number, shadowVersion: result.shadowVersion)
                    applied[name, default: [:]][thing] = marker
                    failures[name]?[thing] = nil
                    persist([ConfigRecordChange(kind: Kind.applied, key: "\(name)/\(thing)", value: Self.encode(marker))])
                }
                registry.audit(caller, "ResetThingConfig", thing, message: "\(source) \(shadow)")
                return result
            }
            throw RegistryError(.versionConflict, "shadow \(shadow) of thing \(thing) kept changing during the reset; try again")
        } catch let error as RegistryError {
            registry.audit(caller, "ResetThingConfig", thing, outcome: error.kind.awsName, message: error.message)
            throw error
        }
    }
}
