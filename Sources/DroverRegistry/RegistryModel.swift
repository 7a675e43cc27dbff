import DroverPolicy
import Foundation

/// A device in the registry (AWS IoT "thing").
public struct Thing: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var typeName: String?
    public var attributes: [String: String]
    /// Starts at 1 and goes up by one with every update (AWS's `version`).
    public var version: Int64
    public var createdAt: Double
    /// The billing group the thing is in; a thing is in at most one.
    public var billingGroupName: String?
}

extension Thing {
    /// The thing as its stored record: what `JSONEncoder` with sorted keys writes for it.
    public var recordJSON: [UInt8] {
        var writer = JSONObjectWriter(capacity: 160 + attributes.count * 32)
        writer.add("attributes", attributes)
        writer.add("billingGroupName", billingGroupName)
        writer.add("createdAt", createdAt)
        writer.add("id", id)
        writer.add("name", name)
        writer.add("typeName", typeName)
        writer.add("version", version)
        return writer.finish()
    }
}

/// A billing group (AWS's): a flat set of things, each in at most one billing group.
public struct BillingGroup: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var description: String?
    public var version: Int64
    public var createdAt: Double
}

/// A role alias (AWS's): the name devices ask the credentials provider for, and the role whose
/// rights the temporary keys get.
public struct RoleAlias: Codable, Sendable, Hashable {
    public var name: String
    /// `arn:aws:iam::ACCOUNT:role/NAME`, where NAME is one of Drover's ready-made API roles.
    public var roleArn: String
    public var credentialDurationSeconds: Int
    public var createdAt: Double
    public var modifiedAt: Double
}

public struct ThingType: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var description: String?
    public var searchableAttributes: [String]
    public var deprecated: Bool
    public var deprecatedAt: Double?
    public var createdAt: Double
}

/// An API credential: the access key id and the secret that SigV4 signatures are checked with.
public struct AccessKey: Codable, Sendable, Hashable {
    public var id: String
    public var secret: String
    public var name: String
    public var createdAt: Double
    public var active: Bool
    /// What the key may do: an IAM-style policy document (see `APIPolicy`). Keys stored before
    /// policies existed have none and keep the full rights they had.
    public var policy: String?
    /// The ready-made role the policy came from, if any (`admin`, `operator`, ...).
    public var role: String?
    /// Temporary keys (from the credentials provider): when the key stops working, epoch seconds.
    public var expiresAt: Double?
    /// Temporary keys: the session token that every signed request must carry
    /// (`X-Amz-Security-Token`), as with AWS's temporary credentials.
    public var sessionToken: String?
    /// Temporary keys: "CERTIFICATE_ID/ROLE_ALIAS", the pair they were issued for. A new key
    /// for the same pair replaces the old one, so a fleet holds one key per device and alias.
    public var issuedFor: String?

    public init(
        id: String, secret: String, name: String, createdAt: Double, active: Bool = true, policy: String? = nil,
        role: String? = nil
    ) {
        self.id = id
        self.secret = secret
        self.name = name
        self.createdAt = createdAt
        self.active = active
        self.policy = policy
        self.role = role
    }

    /// A new key: "DRVR" and 16 characters of base 32 for the id (20, as AWS's), 40 for the secret.
    public static func generate(name: String, policy: String? = nil, role: String? = nil, now: Date = Date()) -> AccessKey {
        let upper = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        let any = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var generator = SystemRandomNumberGenerator()
        // The alphabets are not empty: randomElement cannot be nil.
        let id = "DRVR" + String((0..<16).map { _ in upper.randomElement(using: &generator) ?? "A" })
        let secret = String((0..<40).map { _ in any.randomElement(using: &generator) ?? "A" })
        return AccessKey(id: id, secret: secret, name: name, createdAt: now.timeIntervalSince1970, policy: policy, role: role)
    }
}

/// One change made through the control plane, or refused by it.
public struct AuditEntry: Codable, Sendable, Hashable {
    public var id: Int64?
    public var time: Double
    /// The access key that signed the request.
    public var principal: String
    /// The API operation, e.g. "CreateThing".
    public var operation: String
    /// The resource it acted on: a thing name, a certificate id, "policy/p1", ...
    public var resource: String
    /// "success", or the AWS error type.
    public var outcome: String
    public var message: String?

    public init(time: Double, principal: String, operation: String, resource: String, outcome: String, message: String? = nil) {
        self.time = time
        self.principal = principal
        self.operation = operation
        self.resource = resource
        self.outcome = outcome
        self.message = message
    }
}

public struct AuditQuery: Sendable, Hashable {
    public var from: Double?
    public var to: Double?
    public var resource: String?
    public var principal: String?
    public var operation: String?
    public var limit: Int = 100
    /// Entries with an id below this one (for paging backwards from the newest).
    public var before: Int64?

    public init(from: Double? = nil, to: Double? = nil, resource: String? = nil, principal: String? = nil,
                operation: String? = nil, limit: Int = 100, before: Int64? = nil) {
        self.from = from
        self.to = to
        self.resource = resource
        self.principal = principal
        self.operation = operation
        self.limit = limit
        self.before = before
    }
}

/// A device (or server) certificate known to the registry. The facts come from the certificate
/// itself; the registry adds its status.
public struct CertificateRecord: Codable, Sendable, Hashable {
    public struct Status: Sendable, Hashable {
        public let rawValue: String
        public static let active = Status(rawValue: "ACTIVE")
        public static let inactive = Status(rawValue: "INACTIVE")
        public static let revoked = Status(rawValue: "REVOKED")
        public static let pendingActivation = Status(rawValue: "PENDING_ACTIVATION")
        static let all: [Status] = [.active, .inactive, .revoked, .pendingActivation]

        public init?(_ name: String) {
            guard let status = Status.all.first(where: { $0.rawValue == name }) else { return nil }
            self = status
        }

        private init(rawValue: String) { self.rawValue = rawValue }
    }

    /// Lowercase hex SHA-256 of the DER, 64 characters, as AWS IoT's certificate ids.
    public var id: String
    public var pem: String
    public var status: String
    /// The registered CA that issued it; nil when registered without a CA.
    public var caCertificateId: String?
    public var subject: String
    public var commonName: String?
    public var notBefore: Double
    public var notAfter: Double
    public var createdAt: Double
    public var modifiedAt: Double
    /// "DEFAULT" (issued by a registered CA) or "SNI_ONLY" (registered without one).
    public var mode: String

    public init(id: String, pem: String, status: String, caCertificateId: String?, subject: String, commonName: String?,
                notBefore: Double, notAfter: Double, createdAt: Double, mode: String) {
        self.id = id
        self.pem = pem
        self.status = status
        self.caCertificateId = caCertificateId
        self.subject = subject
        self.commonName = commonName
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.createdAt = createdAt
        self.modifiedAt = createdAt
        self.mode = mode
    }

    public var isActive: Bool { status == Status.active.rawValue }

    private enum CodingKeys: String, CodingKey {
        case id, pem, status, caCertificateId, subject, commonName, notBefore, notAfter, createdAt, modifiedAt, mode
    }

    /// Records written since PEMs have records of their own hold no `pem`: it reads as "".
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        pem = try container.decodeIfPresent(String.self, forKey: .pem) ?? ""
        status = try container.decode(String.self, forKey: .status)
        caCertificateId = try container.decodeIfPresent(String.self, forKey: .caCertificateId)
        subject = try container.decode(String.self, forKey: .subject)
        commonName = try container.decodeIfPresent(String.self, forKey: .commonName)
        notBefore = try container.decode(Double.self, forKey: .notBefore)
        notAfter = try container.decode(Double.self, forKey: .notAfter)
        createdAt = try container.decode(Double.self, forKey: .createdAt)
        modifiedAt = try container.decode(Double.self, forKey: .modifiedAt)
        mode = try container.decode(String.self, forKey: .mode)
    }

    /// The certificate as its stored record: the members `JSONEncoder` with sorted keys writes,
    /// in its order (a '/' is written as itself, where the encoder wrote `\/`), except the PEM,
    /// which has a record of its own (`Registry.Kind.certificatePEM`).
    public var recordJSON: [UInt8] {
        var writer = JSONObjectWriter(capacity: subject.utf8.count + (commonName?.utf8.count ?? 0) + 320)
        writer.add("caCertificateId", caCertificateId)
        writer.add("commonName", commonName)
        writer.add("createdAt", createdAt)
        writer.add("id", id)
        writer.add("mode", mode)
        writer.add("modifiedAt", modifiedAt)
        writer.add("notAfter", notAfter)
        writer.add("notBefore", notBefore)
        writer.add("status", status)
        writer.add("subject", subject)
        return writer.finish()
    }
}

/// A CA whose device certificates the registry accepts.
public struct CACertificateRecord: Codable, Sendable, Hashable {
    public var id: String
    public var pem: String
    /// "ACTIVE" or "INACTIVE".
    public var status: String
    public var autoRegistration: String
    public var subject: String
    public var notBefore: Double
    public var notAfter: Double
    public var createdAt: Double
    public var modifiedAt: Double
    /// Drover's own CA: it cannot be deleted through the API.
    public var builtIn: Bool

    public init(id: String, pem: String, status: String, autoRegistration: String = "DISABLE", subject: String,
                notBefore: Double, notAfter: Double, createdAt: Double, builtIn: Bool) {
        self.id = id
        self.pem = pem
        self.status = status
        self.autoRegistration = autoRegistration
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.createdAt = createdAt
        self.modifiedAt = createdAt
        self.builtIn = builtIn
    }
}

public struct PolicyVersionRecord: Codable, Sendable, Hashable {
    public var id: Int
    public var document: String
    public var createdAt: Double
}

public struct PolicyRecord: Codable, Sendable, Hashable {
    public var name: String
    public var versions: [PolicyVersionRecord]
    public var defaultVersion: Int
    public var nextVersion: Int
    public var createdAt: Double
    public var modifiedAt: Double

    public var defaultDocument: String { versions.first { $0.id == defaultVersion }?.document ?? "" }
}

/// A static thing group. Groups form trees through `parent`; a group's attributes are inherited by
/// its children (a child's own value wins), and policies attached to a group apply to the
/// certificates of every thing in it or in its descendants.
public struct ThingGroup: Codable, Sendable, Hashable {
    public var name: String
    public var id: String
    public var description: String?
    public var attributes: [String: String]
    public var parent: String?
    public var version: Int64
    public var createdAt: Double
}
