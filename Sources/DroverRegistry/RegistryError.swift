/// A refused registry operation. The HTTP edge maps each kind to the AWS error of the same name;
/// the message says what to fix.
public struct RegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        enum Code: String, Sendable { 
            case notFound = "ResourceNotFoundException"
            case alreadyExists = "ResourceAlreadyExistsException"
            case invalidRequest = "InvalidRequestException"
            case versionConflict = "VersionConflictException"
            case deleteConflict = "DeleteConflictException"
            case certificateState = "CertificateStateException"
            case malformedPolicy = "MalformedPolicyException"
            case limitExceeded = "LimitExceededException"
            case unauthorized = "UnauthorizedException"
            case conflictingResourceUpdate = "ConflictingResourceUpdateException"
            case internalFailure = "InternalFailureException"
            case versionsLimitExceeded = "VersionsLimitExceededException"
            case certificateValidation = "CertificateValidationException"
        }
        let code: Code
        public static let notFound = Kind(code: .notFound)
        public static let alreadyExists = Kind(code: .alreadyExists)
        public static let invalidRequest = Kind(code: .invalidRequest)
        public static let versionConflict = Kind(code: .versionConflict)
        public static let deleteConflict = Kind(code: .deleteConflict)
        public static let certificateState = Kind(code: .certificateState)
        public static let malformedPolicy = Kind(code: .malformedPolicy)
        public static let limitExceeded = Kind(code: .limitExceeded)
        public static let unauthorized = Kind(code: .unauthorized)
        public static let internalFailure = Kind(code: .internalFailure)
        public static let versionsLimitExceeded = Kind(code: .versionsLimitExceeded)
        public static let certificateValidation = Kind(code: .certificateValidation)
        /// The AWS error type name, e.g. "ResourceNotFoundException".
        public var awsName: String { code.rawValue }
        public var description: String { code.rawValue }
    }

    public let kind: Kind
    public let message: String
    /// For "already exists": the existing resource, as AWS reports it.
    public var resourceId: String?
    public var resourceArn: String?

    public init(_ kind: Kind, _ message: String, resourceId: String? = nil, resourceArn: String? = nil) {
        self.kind = kind
        self.message = message
        self.resourceId = resourceId
        self.resourceArn = resourceArn
    }

    public var description: String { "\(kind.awsName): \(message)" }

    static func notFound(_ what: String, _ name: String) -> RegistryError {
        RegistryError(.notFound, "\(what) \(name) does not exist")
    }

    static func invalid(_ message: String) -> RegistryError { RegistryError(.invalidRequest, message) }
}
