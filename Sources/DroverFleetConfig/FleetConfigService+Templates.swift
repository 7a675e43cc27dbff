import DroverRegistry
import DroverShadow
import Foundation

/// Templates and their versions, and the factory defaults of thing types.
extension FleetConfigService {
    static func checkName(_ name: String, _ what: String) throws {
        guard (1...128).contains(name.count),
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || ":_-".unicodeScalars.contains($0)) })
        else { throw RegistryError(.invalidRequest, "\(what) '\(name)' must be 1 to 128 characters of a-z, A-Z, 0-9 and :_-") }
    }

    static func checkComment(_ comment: String?) throws {
        if let comment, comment.count > 2048 { throw RegistryError(.invalidRequest, "comment must be at most 2048 characters") }
    }

    func validate(_ document: JSONValue) throws -> String {
        switch ConfigDocument.validate(document, limits: configuration.limits) {
        case .success(let members): return JSONValue.object(members).jsonString
        case .failure(let problem): throw RegistryError(.invalidRequest, problem.description)
        }
    }

    public func createTemplate(_ caller: Caller, name: String, description: String?, document: JSONValue, comment: String?) throws
        -> ConfigTemplateVersion
    {
        try audited(caller, "CreateConfigTemplate", "configtemplate/\(name)") {
            try Self.checkName(name, "templateName")
            try Self.checkComment(comment)
            if let description, description.count > 2048 { throw RegistryError(.invalidRequest, "description must be at most 2048 characters") }
            guard templates[name] == nil else { throw RegistryError(.alreadyExists, "template \(name) already exists; add a version to change it") }
            let text = try validate(document)
            let time = now().timeIntervalSince1970
            let template = ConfigTemplate(name: name, description: description, latestVersion: 1, createdAt: time, lastModifiedAt: time)
            let version = ConfigTemplateVersion(template: name, version: 1, document: text, author: caller.principal, comment: comment,
                                                createdAt: time)
            try commit(caller, "CreateConfigTemplate", "configtemplate/\(name)", [
                ConfigRecordChange(kind: Kind.template, key: name, value: Self.encode(template)),
                ConfigRecordChange(kind: Kind.templateVersion, key: Self.versionKey(name, 1), value: Self.encode(version)),
            ])
            templates[name] = template
            versions[name] = [1: version]
            return version
        }
    }

    static func versionKey(_ template: String, _ version: Int) -> String { "\(template)/\(version)" }

    /// A new version becomes the latest. Deployments keep the version they deployed until
    /// they are updated to another.
    public func createTemplateVersion(_ caller: Caller, name: String, document: JSONValue, comment: String?) throws -> ConfigTemplateVersion {
        try audited(caller, "CreateConfigTemplateVersion", "configtemplate/\(name)") {
            try Self.checkComment(comment)
            guard var template = templates[name] else { throw Self.noTemplate(name) }
            guard template.latestVersion < configuration.maxVersions else {
                throw RegistryError(.versionsLimitExceeded, "template \(name) has \(configuration.maxVersions) versions, the most it may have")
            }
            let text = try validate(document)
            let time = now().timeIntervalSince1970
            template.latestVersion += 1
            template.lastModifiedAt = time
            let version = ConfigTemplateVersion(template: name, version: template.latestVersion, document: text, author: caller.principal,
                                                comment: comment, createdAt: time)
            try commit(caller, "CreateConfigTemplateVersion", "configtemplate/\(name)", [
                ConfigRecordChange(kind: Kind.template, key: name, value: Self.encode(template)),
                ConfigRecordChange(kind: Kind.templateVersion, key: Self.versionKey(name, version.version), value: Self.encode(version)),
            ])
            templates[name] = template
            versions[name, default: [:]][version.version] = version
            return version
        }
    }

    static func noTemplate(_ name: String) -> RegistryError {
        RegistryError(.notFound, "template \(name) does not exist")
    }

    public func template(_ name: String) throws -> ConfigTemplate {
        guard let template = templates[name] else { throw Self.noTemplate(name) }
        return template
    }

    public func templateList() -> [ConfigTemplate] {
        templates.values.sorted { $0.name < $1.name }
    }

    /// One version; the latest when `version` is nil.
    public func templateVersion(_ name: String, _ version: Int?) throws -> ConfigTemplateVersion {
        let template = try template(name)
        let number = version ?? template.latestVersion
        guard let found = versions[name]?[number] else {
            throw RegistryError(.notFound, "template \(name) has no version \(number); its versions are 1 to \(template.latestVersion)")
        }
        return found
    }

    public func templateVersions(_ name: String) throws -> [ConfigTemplateVersion] {
        _ = try template(name)
        return (versions[name] ?? [:]).values.sorted { $0.version < $1.version }
    }

    /// Refused while a deployment uses the template.
    public func deleteTemplate(_ caller: Caller, name: String) throws {
        try audited(caller, "DeleteConfigTemplate", "configtemplate/\(name)") {
            guard templates[name] != nil else { throw Self.noTemplate(name) }
            let users = deployments.values.filter { $0.template == name }.map(\.name).sorted()
            guard users.isEmpty else {
                throw RegistryError(.deleteConflict, "template \(name) is deployed by \(users.joined(separator: ", ")); delete those deployments first")
            }
            var changes = [ConfigRecordChange(kind: Kind.template, key: name, value: nil)]
            for version in (versions[name] ?? [:]).keys {
                changes.append(ConfigRecordChange(kind: Kind.templateVersion, key: Self.versionKey(name, version), value: nil))
            }
            try commit(caller, "DeleteConfigTemplate", "configtemplate/\(name)", changes)
            templates[name] = nil
            versions[name] = nil
        }
    }

    // MARK: Factory defaults

    public func setFactoryDefault(_ caller: Caller, thingType: String, document: JSONValue, comment: String?) throws -> FactoryDefault {
        try audited(caller, "SetConfigFactoryDefault", "thingtype/\(thingType)") {
            guard registry.snapshot.thingTypes[thingType] != nil else {
                throw RegistryError(.notFound, "thing type \(thingType) does not exist")
            }
            try Self.checkComment(comment)
            let value = FactoryDefault(thingType: thingType, document: try validate(document), author: caller.principal, comment: comment,
                                       updatedAt: now().timeIntervalSince1970)
            try commit(caller, "SetConfigFactoryDefault", "thingtype/\(thingType)",
                       [ConfigRecordChange(kind: Kind.factoryDefault, key: thingType, value: Self.encode(value))])
            factoryDefaults[thingType] = value
            return value
        }
    }

    public func factoryDefault(thingType: String) throws -> FactoryDefault {
        guard let value = factoryDefaults[thingType] else {
            throw RegistryError(.notFound, "thing type \(thingType) has no factory-default configuration")
        }
        return value
    }

    public func deleteFactoryDefault(_ caller: Caller, thingType: String) throws {
        try audited(caller, "DeleteConfigFactoryDefault", "thingtype/\(thingType)") {
            _ = try factoryDefault(thingType: thingType)
            try commit(caller, "DeleteConfigFactoryDefault", "thingtype/\(thingType)",
                       [ConfigRecordChange(kind: Kind.factoryDefault, key: thingType, value: nil)])
            factoryDefaults[thingType] = nil
        }
    }
}
