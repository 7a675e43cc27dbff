import Foundation

/// What the HTTP edge learned from a certificate's PEM (with DroverIdentity) before it asks the
/// registry to keep it.
public struct CertificateFacts: Sendable, Hashable {
    public var id: String
    public var pem: String
    public var subject: String
    public var commonName: String?
    public var notBefore: Double
    public var notAfter: Double
    public var isCA: Bool

    public init(id: String, pem: String, subject: String, commonName: String?, notBefore: Double, notAfter: Double, isCA: Bool) {
        self.id = id
        self.pem = pem
        self.subject = subject
        self.commonName = commonName
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.isCA = isCA
    }
}

extension Registry {
    static func checkCertificateId(_ id: String) throws {
        guard id.count == 64, id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw RegistryError.invalid("certificateId must be 64 lowercase hexadecimal characters, not '\(id)'")
        }
    }

    // MARK: Device certificates

    /// Keeps a certificate. `caCertificateId` nil registers it without a CA (SNI_ONLY mode).
    public func registerCertificate(
        _ caller: Caller, _ operation: String, facts: CertificateFacts, status: CertificateRecord.Status,
        caCertificateId: String?
    ) async throws -> CertificateRecord {
        // A self-signed device certificate made with `openssl req -x509` carries CA:TRUE; AWS
        // registers it all the same, and so do we.
        return try await mutate(caller, operation, "cert/\(facts.id)") { state, changes in
            if state.certificates[facts.id] != nil {
                throw RegistryError(.alreadyExists, "The certificate is already provisioned or registered", resourceId: facts.id,
                                    resourceArn: self.arn(caller.region, "cert/\(facts.id)"))
            }
            if let caCertificateId {
                guard let ca = state.caCertificates[caCertificateId] else {
                    throw RegistryError.notFound("CA certificate", caCertificateId)
                }
                guard ca.status == "ACTIVE" else {
                    throw RegistryError(.certificateState, "CA certificate \(caCertificateId) is INACTIVE; activate it first")
                }
            }
            let now = Date().timeIntervalSince1970
            let record = CertificateRecord(
                id: facts.id, pem: facts.pem, status: status.rawValue, caCertificateId: caCertificateId, subject: facts.subject,
                commonName: facts.commonName, notBefore: facts.notBefore, notAfter: facts.notAfter, createdAt: now,
                mode: caCertificateId == nil ? "SNI_ONLY" : "DEFAULT")
            state.put(record)
            changes.append(Self.record(Kind.certificate, facts.id, record))
            changes.append(Self.pemRecord(facts.id, facts.pem))
            return record
        }
    }

    /// The certificate with its PEM, read from the store (memory keeps certificates without it).
    public func describeCertificate(_ id: String) throws -> CertificateRecord {
        try Self.checkCertificateId(id)
        guard var record = snapshot.certificates[id] else { throw RegistryError.notFound("certificate", id) }
        struct Stored: Decodable { var pem: String? }
        let stored = try store.record(kind: Kind.certificatePEM, key: id) ?? store.record(kind: Kind.certificate, key: id)
        // Deleted meanwhile (by this node or another): as if it had not been found.
        guard let stored, let pem = try JSONDecoder().decode(Stored.self, from: Data(stored)).pem, !pem.isEmpty else {
            throw RegistryError.notFound("certificate", id)
        }
        record.pem = pem
        return record
    }

    /// By creation date, as AWS lists them (the id breaks ties, so pages are stable), from the
    /// stored creation-order index: a page costs what it holds, whatever the registry holds.
    public func listCertificates(caCertificateId: String?, pageSize: Int?, marker: String?, ascending: Bool) throws -> Page<CertificateRecord> {
        if let caCertificateId { try Self.checkCertificateId(caCertificateId) }
        let state = snapshot
        let (kind, prefix) = caCertificateId.map { (Kind.certificateByCA, $0 + "/") } ?? (Kind.certificateByDate, "")
        return try pageOfStoredKeys(kind, prefix: prefix, maxResults: pageSize, nextToken: marker, descending: !ascending) { key in
            // The time is 20 characters; a certificate deleted meanwhile (by another node) is skipped.
            key.utf8.count > 20 ? state.certificates[String(key.dropFirst(20))] : nil
        }
    }

    /// ACTIVE, INACTIVE and REVOKED; a revoked certificate stays revoked.
    public func updateCertificate(_ caller: Caller, id: String, status: CertificateRecord.Status) async throws {
        try Self.checkCertificateId(id)
        guard [.active, .inactive, .revoked].contains(status) else {
            throw RegistryError.invalid("newStatus must be ACTIVE, INACTIVE or REVOKED")
        }
        try await mutate(caller, "UpdateCertificate", "cert/\(id)") { state, changes in
            guard var record = state.certificates[id] else { throw RegistryError.notFound("certificate", id) }
            if record.status == CertificateRecord.Status.revoked.rawValue && status != .revoked {
                throw RegistryError(.certificateState, "certificate \(id) is REVOKED; a revoked certificate cannot be made \(status.rawValue)")
            }
            record.status = status.rawValue
            record.modifiedAt = Date().timeIntervalSince1970
            state.certificates[id] = record
            changes.append(Self.record(Kind.certificate, id, record))
        }
    }

    /// Refused while the certificate is ACTIVE, or attached to a thing or a policy (unless
    /// `force`, which detaches its policies, as AWS's forceDelete).
    public func deleteCertificate(_ caller: Caller, id: String, force: Bool) async throws {
        try Self.checkCertificateId(id)
        try await mutate(caller, "DeleteCertificate", "cert/\(id)") { state, changes in
            guard let record = state.certificates[id] else { throw RegistryError.notFound("certificate", id) }
            guard !record.isActive else {
                throw RegistryError(.certificateState, "Certificate must be deactivated (not ACTIVE) before deletion. Id: \(id)")
            }
            let things = state.things(ofCertificate: id)
            guard things.isEmpty else {
                throw RegistryError(.deleteConflict, "certificate \(id) is attached to thing(s) \(things.joined(separator: ", ")); detach it first")
            }
            let policies = state.policyNames(attachedTo: "cert/\(id)")
            if !policies.isEmpty && !force {
                throw RegistryError(.deleteConflict, "certificate \(id) has policies attached (\(policies.joined(separator: ", "))); detach them or use forceDelete")
            }
            for name in policies {
                state.detach(policy: name, from: "cert/\(id)")
                changes.append(Self.link(Kind.policyTarget, name, "cert/\(id)", present: false))
            }
            state.certificates[id] = nil
            changes.append(Self.removal(Kind.certificate, id))
            changes.append(Self.removal(Kind.certificatePEM, id))
        }
    }

    // MARK: CA certificates

    public func registerCACertificate(_ caller: Caller, facts: CertificateFacts, active: Bool, autoRegistration: Bool,
                                      builtIn: Bool = false, tags: [String: String] = [:]) async throws -> CACertificateRecord {
        guard facts.isCA else {
            throw RegistryError(.certificateValidation, "not a CA certificate (BasicConstraints CA:false); register device certificates with RegisterCertificate")
        }
        return try await mutate(caller, "RegisterCACertificate", "cacert/\(facts.id)") { state, changes in
            if let existing = state.caCertificates[facts.id] {
                if builtIn && existing.builtIn { return existing }
                throw RegistryError(.alreadyExists, "The CA certificate is already registered", resourceId: facts.id,
                                    resourceArn: self.arn(caller.region, "cacert/\(facts.id)"))
            }
            let record = CACertificateRecord(
                id: facts.id, pem: facts.pem, status: active ? "ACTIVE" : "INACTIVE",
                autoRegistration: autoRegistration ? "ENABLE" : "DISABLE", subject: facts.subject, notBefore: facts.notBefore,
                notAfter: facts.notAfter, createdAt: Date().timeIntervalSince1970, builtIn: builtIn)
            state.caCertificates[facts.id] = record
            changes.append(Self.record(Kind.caCertificate, facts.id, record))
            Self.putTags(tags, on: "cacert/\(facts.id)", &state, &changes)
            return record
        }
    }

    public func describeCACertificate(_ id: String) throws -> CACertificateRecord {
        try Self.checkCertificateId(id)
        guard let record = snapshot.caCertificates[id] else { throw RegistryError.notFound("CA certificate", id) }
        return record
    }

    public func listCACertificates(pageSize: Int?, marker: String?, ascending: Bool) throws -> Page<CACertificateRecord> {
        let items = Array(snapshot.caCertificates.values)
        let key: (CACertificateRecord) -> String = { String(format: "%020.6f", $0.createdAt) + $0.id }
        if ascending { return try Self.page(items, key: key, maxResults: pageSize, nextToken: marker) }
        let descending = try Self.page(items.map { Reversed($0, key($0)) }, key: \.inverted, maxResults: pageSize, nextToken: marker)
        return Page(items: descending.items.map(\.value), nextToken: descending.nextToken)
    }

    public func updateCACertificate(_ caller: Caller, id: String, status: String?, autoRegistration: String?) async throws {
        try Self.checkCertificateId(id)
        if let status, !["ACTIVE", "INACTIVE"].contains(status) { throw RegistryError.invalid("newStatus must be ACTIVE or INACTIVE") }
        if let autoRegistration, !["ENABLE", "DISABLE"].contains(autoRegistration) {
            throw RegistryError.invalid("newAutoRegistrationStatus must be ENABLE or DISABLE")
        }
        try await mutate(caller, "UpdateCACertificate", "cacert/\(id)") { state, changes in
            guard var record = state.caCertificates[id] else { throw RegistryError.notFound("CA certificate", id) }
            if let status { record.status = status }
            if let autoRegistration { record.autoRegistration = autoRegistration }
            record.modifiedAt = Date().timeIntervalSince1970
            state.caCertificates[id] = record
            changes.append(Self.record(Kind.caCertificate, id, record))
        }
    }

    public func deleteCACertificate(_ caller: Caller, id: String) async throws {
        try Self.checkCertificateId(id)
        try await mutate(caller, "DeleteCACertificate", "cacert/\(id)") { state, changes in
            guard let record = state.caCertificates[id] else { throw RegistryError.notFound("CA certificate", id) }
            guard !record.builtIn else {
                throw RegistryError(.certificateState, "CA certificate \(id) is Drover's own CA; it cannot be deleted")
            }
            guard record.status == "INACTIVE" else {
                throw RegistryError(.certificateState, "CA certificate \(id) is ACTIVE; make it INACTIVE before deleting it")
            }
            state.caCertificates[id] = nil
            changes.append(Self.removal(Kind.caCertificate, id))
            Self.dropTags(of: "cacert/\(id)", &state, &changes)
        }
    }
}

/// Sorts descending through the ascending pager: the key's characters are inverted.
struct Reversed<Value: Sendable>: Sendable {
    let value: Value
    let inverted: String

    init(_ value: Value, _ key: String) {
        self.value = value
        self.inverted = String(key.unicodeScalars.map { Character(Unicode.Scalar(0x7E - min($0.value, 0x7E) + 0x20)!) })
    }
}
