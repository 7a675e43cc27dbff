import DroverIdentity
import DroverPolicy
import DroverRegistry
import Foundation
import HTTPTypes
import Hummingbird
import X509

/// Certificates, CA certificates and thing principals; the JSON shapes are botocore's.
extension ControlPlane {
    /// How device certificates are issued.
    public struct Issuing: Sendable {
        public var authority: CertificateAuthority
        /// The registry id of `authority`'s certificate.
        public var authorityId: String
        public let subject: CertificateSubject
        public var validityDays: Int
        /// The key CreateKeysAndCertificate makes when the request names none: RSA 2048, as
        /// AWS makes (boto3 and the AWS CLI cannot ask for another).
        public var defaultKeyAlgorithm: DeviceKeyPair.Algorithm
        /// `subject` as an X.509 name, its RFC 4514 text and its common name, made once rather
        /// than per certificate; nil when the subject is invalid (issuing then says why).
        let issuedSubject: (name: DistinguishedName, text: String, commonName: String?)?

        public init(authority: CertificateAuthority, authorityId: String, subject: CertificateSubject, validityDays: Int,
                    defaultKeyAlgorithm: DeviceKeyPair.Algorithm = .rsa2048) {
            self.authority = authority
            self.authorityId = authorityId
            self.subject = subject
            self.validityDays = validityDays
            self.defaultKeyAlgorithm = defaultKeyAlgorithm
            self.issuedSubject = (try? subject.distinguishedName()).map { ($0, $0.description, $0.firstCommonName) }
        }

        /// A device certificate for `publicKey`, with the facts the registry keeps, taken from
        /// what was issued rather than parsed back out of it.
        func issue(publicKey: Certificate.PublicKey) throws -> CertificateFacts {
            guard let issuedSubject else {
                _ = try subject.distinguishedName()
                throw RegistryError(.internalFailure, "the device certificate subject is not valid")
            }
            let certificate = try authority.issueDeviceCertificate(
                publicKey: publicKey, subject: issuedSubject.name, validityDays: validityDays, now: Date())
            let info = CertificateInfo(certificate: certificate)
            return CertificateFacts(id: info.certificateId, pem: info.pem, subject: issuedSubject.text,
                                    commonName: issuedSubject.commonName,
                                    notBefore: certificate.notValidBefore.timeIntervalSince1970,
                                    notAfter: certificate.notValidAfter.timeIntervalSince1970, isCA: false)
        }
    }

    public static func facts(_ info: CertificateInfo) -> CertificateFacts {
        CertificateFacts(id: info.certificateId, pem: info.pem, subject: info.subject, commonName: info.commonName,
                         notBefore: info.notBefore.timeIntervalSince1970, notAfter: info.notAfter.timeIntervalSince1970,
                         isCA: info.isCA)
    }

    static func parsePEM(_ pem: String, _ field: String) throws -> CertificateInfo {
        do {
            return try CertificateInfo(pem: pem)
        } catch {
            throw RegistryError(.certificateValidation, "\(field) is not a PEM certificate: \(error)")
        }
    }

    func issuing() throws -> Issuing {
        guard let issuing = configuration.issuing else {
            throw RegistryError(.internalFailure, "this server has no certificate authority configured")
        }
        return issuing
    }

    func certArn(_ caller: Caller, _ id: String) -> String { registry.arn(caller.region, "cert/\(id)") }

    /// CreateKeysAndCertificate's and CreateCertificateFromCsr's answer, by hand (one per device
    /// made): botocore's members, sorted, with the key pair's only when keys were made here.
    func certificateOutput(_ call: Call, _ record: CertificateRecord, keys: DeviceKeyPair?) -> Response {
        var answer = JSONObjectWriter(capacity: record.pem.utf8.count * 2 + 512)
        answer.add("certificateArn", certArn(call.caller, record.id))
        answer.add("certificateId", record.id)
        answer.add("certificatePem", record.pem)
        answer.add("keyPair", object: keys.map { keys in
            var pair = JSONObjectWriter(capacity: keys.privateKeyPEM.utf8.count + keys.publicKeyPEM.utf8.count + 64)
            pair.add("PrivateKey", keys.privateKeyPEM)
            pair.add("PublicKey", keys.publicKeyPEM)
            return pair
        })
        return Self.json(bytes: answer.finish())
    }

    func setAsActive(_ call: Call) -> CertificateRecord.Status {
        call.query("setAsActive") == "true" ? .active : .inactive
    }

    func createKeysAndCertificate(_ call: Call) async throws -> Response {
        let issuing = try issuing()
        // `keyAlgorithm` is Drover's addition (the `drover` CLI sends it); AWS has no such parameter.
        var algorithm = issuing.defaultKeyAlgorithm
        if let name = call.query("keyAlgorithm") {
            guard let named = DeviceKeyPair.Algorithm(awsName: name) else {
                let names = DeviceKeyPair.Algorithm.all.map(\.awsName).joined(separator: " or ")
                throw RegistryError(.invalidRequest, "keyAlgorithm must be \(names), not '\(name.prefix(64))'")
            }
            algorithm = named
        }
        // An RSA key takes tens of milliseconds of searching for primes: off the concurrency pool.
        // A P-256 key takes microseconds: made here, without the two thread hand-offs.
        let chosen = algorithm
        let keys: DeviceKeyPair
        if chosen == .rsa2048 {
            keys = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<DeviceKeyPair, any Error>) in
                DispatchQueue.global().async { continuation.resume(with: Result { try DeviceKeyPair.generate(chosen) }) }
            }
        } else {
            keys = try DeviceKeyPair.generate(chosen)
        }
        let record = try await registry.registerCertificate(
            call.caller, "CreateKeysAndCertificate", facts: issuing.issue(publicKey: keys.publicKey), status: setAsActive(call),
            caCertificateId: issuing.authorityId)
        return certificateOutput(call, record, keys: keys)
    }

    struct CreateFromCsrInput: Decodable {
        var certificateSigningRequest: String
    }

    func createCertificateFromCsr(_ call: Call) async throws -> Response {
        let issuing = try issuing()
        let input = try call.decode(CreateFromCsrInput.self)
        let certificate: Certificate
        do {
            certificate = try issuing.authority.issueFromCSR(pem: input.certificateSigningRequest,
                                                             validityDays: issuing.validityDays, now: Date())
        } catch {
            throw RegistryError(.invalidRequest, "the certificate signing request was refused: \(error)")
        }
        let info = CertificateInfo(certificate: certificate)
        let record = try await registry.registerCertificate(
            call.caller, "CreateCertificateFromCsr", facts: Self.facts(info), status: setAsActive(call),
            caCertificateId: issuing.authorityId)
        return certificateOutput(call, record, keys: nil)
    }

    struct RegisterInput: Decodable {
        var certificatePem: String
        var caCertificatePem: String?
        var status: String?
    }

    struct RegisterOutput: Encodable {
        var certificateArn: String
        var certificateId: String
    }

    func status(_ call: Call, _ given: String?) throws -> CertificateRecord.Status {
        if call.query("setAsActive") == "true" { return .active }
        guard let given else { return .inactive }
        guard let status = CertificateRecord.Status(given), status != .revoked else {
            throw RegistryError(.invalidRequest, "status must be ACTIVE or INACTIVE, not '\(given)'")
        }
        return status
    }

    /// The certificate must be signed by a registered CA (the given one, or any).
    func registerCertificate(_ call: Call) async throws -> Response {
        let input = try call.decode(RegisterInput.self)
        let info = try Self.parsePEM(input.certificatePem, "certificatePem")
        var candidates = Array(registry.snapshot.caCertificates.values)
        if let caPem = input.caCertificatePem {
            let ca = try Self.parsePEM(caPem, "caCertificatePem")
            guard registry.snapshot.caCertificates[ca.certificateId] != nil else {
                throw RegistryError(.notFound, "the CA certificate \(ca.certificateId) is not registered; register it with RegisterCACertificate")
            }
            candidates = candidates.filter { $0.id == ca.certificateId }
        }
        let issuer = candidates.first { ca in
            (try? CertificateInfo(pem: ca.pem)).map { isSigned(info.certificate, by: $0.certificate) } ?? false
        }
        guard let issuer else {
            throw RegistryError(.certificateValidation, "the certificate is not signed by a registered CA; register its CA first, or use RegisterCertificateWithoutCA")
        }
        let record = try await registry.registerCertificate(
            call.caller, "RegisterCertificate", facts: Self.facts(info), status: try status(call, input.status),
            caCertificateId: issuer.id)
        return Self.json(RegisterOutput(certificateArn: certArn(call.caller, record.id), certificateId: record.id))
    }

    func registerCertificateWithoutCA(_ call: Call) async throws -> Response {
        let input = try call.decode(RegisterInput.self)
        let info = try Self.parsePEM(input.certificatePem, "certificatePem")
        let record = try await registry.registerCertificate(
            call.caller, "RegisterCertificateWithoutCA", facts: Self.facts(info), status: try status(call, input.status),
            caCertificateId: nil)
        return Self.json(RegisterOutput(certificateArn: certArn(call.caller, record.id), certificateId: record.id))
    }

    struct Validity: Encodable {
        var notBefore: Double
        var notAfter: Double
    }

    struct CertificateDescription: Encodable {
        var certificateArn: String
        var certificateId: String
        var caCertificateId: String?
        var status: String
        var certificatePem: String
        var ownedBy: String
        var creationDate: Double
        var lastModifiedDate: Double
        var customerVersion: Int
        var generationId: String
        var validity: Validity
        var certificateMode: String
    }

    struct DescribeCertificateOutput: Encodable {
        var certificateDescription: CertificateDescription
    }

    func describeCertificate(_ call: Call) async throws -> Response {
        let record = try registry.describeCertificate(try call.parameter("certificateId"))
        return Self.json(DescribeCertificateOutput(certificateDescription: CertificateDescription(
            certificateArn: certArn(call.caller, record.id), certificateId: record.id, caCertificateId: record.caCertificateId,
            status: record.status, certificatePem: record.pem, ownedBy: registry.configuration.account,
            creationDate: record.createdAt, lastModifiedDate: record.modifiedAt, customerVersion: 1,
            generationId: String(Int(record.modifiedAt * 1000)),
            validity: Validity(notBefore: record.notBefore, notAfter: record.notAfter), certificateMode: record.mode)))
    }

    struct CertificateSummary: Encodable {
        var certificateArn: String
        var certificateId: String
        var status: String
        var certificateMode: String
        var creationDate: Double
    }

    struct ListCertificatesOutput: Encodable {
        var certificates: [CertificateSummary]
        var nextMarker: String?
    }

    func listCertificates(_ call: Call) async throws -> Response {
        try listCertificates(call, ca: nil)
    }

    func listCertificatesByCA(_ call: Call) async throws -> Response {
        try listCertificates(call, ca: try call.parameter("caCertificateId"))
    }

    private func listCertificates(_ call: Call, ca: String?) throws -> Response {
        let page = try registry.listCertificates(
            caCertificateId: ca, pageSize: try call.queryInt("pageSize"), marker: call.query("marker"),
            ascending: call.query("isAscendingOrder") == "true")
        return Self.json(ListCertificatesOutput(
            certificates: page.items.map {
                CertificateSummary(certificateArn: certArn(call.caller, $0.id), certificateId: $0.id, status: $0.status,
                                   certificateMode: $0.mode, creationDate: $0.createdAt)
            },
            nextMarker: page.nextToken))
    }

    func updateCertificate(_ call: Call) async throws -> Response {
        guard let text = call.query("newStatus") else { throw RegistryError(.invalidRequest, "newStatus is required") }
        guard let status = CertificateRecord.Status(text) else {
            throw RegistryError(.invalidRequest, "newStatus must be ACTIVE, INACTIVE or REVOKED, not '\(text)'")
        }
        try await registry.updateCertificate(call.caller, id: try call.parameter("certificateId"), status: status)
        return Self.empty()
    }

    func deleteCertificate(_ call: Call) async throws -> Response {
        try await registry.deleteCertificate(call.caller, id: try call.parameter("certificateId"),
                                             force: call.query("forceDelete") == "true")
        return Self.empty()
    }

    // MARK: CA certificates

    struct RegisterCAInput: Decodable {
        var caCertificate: String
        var verificationCertificate: String?
        var certificateMode: String?
        var tags: [Tag]?
    }

    func registerCACertificate(_ call: Call) async throws -> Response {
        let input = try call.decode(RegisterCAInput.self)
        let info = try Self.parsePEM(input.caCertificate, "caCertificate")
        if let verification = input.verificationCertificate {
            let proof = try Self.parsePEM(verification, "verificationCertificate")
            guard isSigned(proof.certificate, by: info.certificate) else {
                throw RegistryError(.certificateValidation, "verificationCertificate is not signed by caCertificate")
            }
        }
        let record = try await registry.registerCACertificate(
            call.caller, facts: Self.facts(info), active: call.query("setAsActive") == "true",
            autoRegistration: call.query("allowAutoRegistration") == "true", tags: try Self.tags(input.tags))
        return Self.json(RegisterOutput(certificateArn: registry.arn(call.caller.region, "cacert/\(record.id)"), certificateId: record.id))
    }

    struct CACertificateDescription: Encodable {
        var certificateArn: String
        var certificateId: String
        var status: String
        var certificatePem: String
        var ownedBy: String
        var creationDate: Double
        var autoRegistrationStatus: String
        var lastModifiedDate: Double
        var customerVersion: Int
        var generationId: String
        var validity: Validity
        var certificateMode: String
    }

    struct DescribeCAOutput: Encodable {
        var certificateDescription: CACertificateDescription
    }

    func describeCACertificate(_ call: Call) async throws -> Response {
        let record = try registry.describeCACertificate(try call.parameter("caCertificateId"))
        return Self.json(DescribeCAOutput(certificateDescription: CACertificateDescription(
            certificateArn: registry.arn(call.caller.region, "cacert/\(record.id)"), certificateId: record.id,
            status: record.status, certificatePem: record.pem, ownedBy: registry.configuration.account,
            creationDate: record.createdAt, autoRegistrationStatus: record.autoRegistration,
            lastModifiedDate: record.modifiedAt, customerVersion: 1, generationId: String(Int(record.modifiedAt * 1000)),
            validity: Validity(notBefore: record.notBefore, notAfter: record.notAfter), certificateMode: "DEFAULT")))
    }

    struct CASummary: Encodable {
        var certificateArn: String
        var certificateId: String
        var status: String
        var creationDate: Double
    }

    struct ListCAOutput: Encodable {
        var certificates: [CASummary]
        var nextMarker: String?
    }

    func listCACertificates(_ call: Call) async throws -> Response {
        let page = try registry.listCACertificates(pageSize: try call.queryInt("pageSize"), marker: call.query("marker"),
                                                   ascending: call.query("isAscendingOrder") == "true")
        return Self.json(ListCAOutput(
            certificates: page.items.map {
                CASummary(certificateArn: registry.arn(call.caller.region, "cacert/\($0.id)"), certificateId: $0.id,
                          status: $0.status, creationDate: $0.createdAt)
            },
            nextMarker: page.nextToken))
    }

    func updateCACertificate(_ call: Call) async throws -> Response {
        try await registry.updateCACertificate(call.caller, id: try call.parameter("caCertificateId"),
                                               status: call.query("newStatus"),
                                               autoRegistration: call.query("newAutoRegistrationStatus"))
        return Self.empty()
    }

    func deleteCACertificate(_ call: Call) async throws -> Response {
        try await registry.deleteCACertificate(call.caller, id: try call.parameter("caCertificateId"))
        return Self.empty()
    }

    // MARK: Thing principals

    func principalHeader(_ call: Call) throws -> String {
        guard let principal = call.request.headers[HTTPField.Name("x-amzn-principal")!] else {
            throw RegistryError(.invalidRequest, "the principal (x-amzn-principal header) is required")
        }
        return principal
    }

    func attachThingPrincipal(_ call: Call) async throws -> Response {
        try await registry.attachThingPrincipal(call.caller, thing: try call.parameter("thingName"), principal: try principalHeader(call),
                                                exclusive: try Self.exclusive(call))
        return Self.empty()
    }

    func detachThingPrincipal(_ call: Call) async throws -> Response {
        try await registry.detachThingPrincipal(call.caller, thing: try call.parameter("thingName"), principal: try principalHeader(call))
        return Self.empty()
    }

    struct PrincipalsOutput: Encodable {
        var principals: [String]
        var nextToken: String?
    }

    func listThingPrincipals(_ call: Call) async throws -> Response {
        let ids = try registry.thingPrincipals(try call.parameter("thingName"))
        let page = try Registry.pageOfStrings(ids, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(PrincipalsOutput(principals: page.items.map { certArn(call.caller, $0) }, nextToken: page.nextToken))
    }

    struct PrincipalThingsOutput: Encodable {
        var things: [String]
        var nextToken: String?
    }

    func listPrincipalThings(_ call: Call) async throws -> Response {
        let things = try registry.principalThings(try principalHeader(call))
        let page = try Registry.pageOfStrings(things, maxResults: try call.queryInt("maxResults"), nextToken: call.query("nextToken"))
        return Self.json(PrincipalThingsOutput(things: page.items, nextToken: page.nextToken))
    }
}
