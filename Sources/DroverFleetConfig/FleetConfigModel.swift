/// A named configuration: the latest of its immutable versions, each a desired state.
public struct ConfigTemplate: Codable, Sendable, Hashable {
    public var name: String
    public var description: String?
    public var latestVersion: Int
    public var createdAt: Double
    public var lastModifiedAt: Double
}

/// One version of a template. Never changed once made: an edit makes the next version.
public struct ConfigTemplateVersion: Codable, Sendable, Hashable {
    public var template: String
    public var version: Int
    /// The desired state, as compact JSON.
    public var document: String
    /// The access key that made it.
    public var author: String
    public var comment: String?
    public var createdAt: Double
}

/// What a deployment reaches: every thing in a thing group (and its child groups), or every
/// thing of a thing type, now and later.
public struct ConfigTarget: Codable, Sendable, Hashable, CustomStringConvertible {
    public struct Kind: Codable, Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public static let thingGroup = Kind(name: "THING_GROUP")
        public static let thingType = Kind(name: "THING_TYPE")

        public init?(_ name: String) {
            guard [Kind.thingGroup.name, Kind.thingType.name].contains(name) else { return nil }
            self.name = name
        }

        private init(name: String) { self.name = name }

        public init(from decoder: any Decoder) throws {
            let name = try decoder.singleValueContainer().decode(String.self)
            guard let kind = Kind(name) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "target type \(name)"))
            }
            self = kind
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(name)
        }

        public var description: String { name }
    }

    public var kind: Kind
    public var name: String

    public init(kind: Kind, name: String) {
        self.kind = kind
        self.name = name
    }

    public var description: String { "\(kind == .thingGroup ? "thing group" : "thing type") \(name)" }
}

/// A template deployed into one shadow of a target's members. Each change of the deployed
/// version is a new revision, kept in `history`.
public struct ConfigDeployment: Codable, Sendable, Hashable {
    public var name: String
    public var template: String
    public var target: ConfigTarget
    public var shadowName: String
    /// The current revision: the last entry of `history`.
    public var revision: Int
    public var templateVersion: Int
    public var history: [ConfigRevision]
    public var createdAt: Double
    public var lastModifiedAt: Double

    /// The template version that `revision` deployed.
    public func templateVersion(ofRevision revision: Int) -> Int? {
        history.first { $0.revision == revision }?.templateVersion
    }
}

public struct ConfigRevision: Codable, Sendable, Hashable {
    public struct Action {
        public static let deploy = "DEPLOY"
        public static let update = "UPDATE"
        public static let rollback = "ROLLBACK"
    }

    public var revision: Int
    public var templateVersion: Int
    /// ``Action``: DEPLOY (the first), UPDATE or ROLLBACK.
    public var action: String
    public var author: String
    public var comment: String?
    public var time: Double
}

/// The document a thing of this type goes back to on a factory reset.
public struct FactoryDefault: Codable, Sendable, Hashable {
    public var thingType: String
    public var document: String
    public var author: String
    public var comment: String?
    public var updatedAt: Double
}

/// Where a deployment stands: counts of its members by condition, and each member that is not
/// in sync.
public struct DeploymentStatus: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var thing: String
        public var condition: ConfigDocument.Condition
    }

    public var deployment: ConfigDeployment
    public var members: Int
    public var inSync: Int
    public var pending: Int
    public var drifted: Int
    /// Every member, sorted by thing name.
    public var things: [Member]
}

/// What a reset wrote.
public struct ConfigReset: Sendable, Hashable {
    public struct Source: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        /// The deployed template version that covers the thing.
        public static let template = Source(name: "TEMPLATE")
        /// The factory default of the thing's type.
        public static let factoryDefault = Source(name: "FACTORY_DEFAULT")

        public init?(_ name: String) {
            guard [Source.template.name, Source.factoryDefault.name].contains(name) else { return nil }
            self.name = name
        }

        private init(name: String) { self.name = name }
        public var description: String { name }
    }

    public var thing: String
    public var shadowName: String
    public var source: Source
    public var deployment: String?
    public var templateVersion: Int?
    /// The shadow's version after the reset.
    public var shadowVersion: Int
}
