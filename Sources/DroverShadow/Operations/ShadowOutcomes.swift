/// What an `/update` request comes to.
public enum ShadowUpdateOutcome: Hashable, Sendable {
    /// Store the document, then publish the payloads (accepted, then delta, then documents: the
    /// v1 SDK ignores a delta whose version it has already seen accepted, so the order matters).
    case accepted(ShadowUpdate)
    /// Publish ``ShadowError/payload`` on `/update/rejected`; the shadow is unchanged.
    case rejected(ShadowError)
}

/// An accepted update: the new shadow and what to tell the subscribers.
public struct ShadowUpdate: Hashable, Sendable {
    /// The shadow after the update.
    public var document: ShadowDocument
    /// For `/update/accepted`, and the body of UpdateThingShadow: the request's state, the
    /// metadata of what it wrote, `version`, `timestamp`, and `clientToken` if the request had
    /// one.
    public var acceptedPayload: [UInt8]
    /// For `/update/delta`: nil when desired and reported agree after the update, so there is
    /// nothing to tell the device.
    public var deltaPayload: [UInt8]?
    /// For `/update/documents`: the shadow before (`previous`, left out when the update created
    /// the shadow) and after (`current`).
    public var documentsPayload: [UInt8]
    /// `document.storageBytes`, made once: the size check needed it, and the store writes it.
    public var storageBytes: [UInt8]

    public init(
        document: ShadowDocument, acceptedPayload: [UInt8], deltaPayload: [UInt8]?, documentsPayload: [UInt8],
        storageBytes: [UInt8]? = nil
    ) {
        self.document = document
        self.acceptedPayload = acceptedPayload
        self.deltaPayload = deltaPayload
        self.documentsPayload = documentsPayload
        self.storageBytes = storageBytes ?? document.storageBytes
    }
}

/// What a `/get` request comes to.
public enum ShadowGetOutcome: Hashable, Sendable {
    /// For `/get/accepted`, and the body of GetThingShadow.
    case accepted(payload: [UInt8])
    /// For `/get/rejected`.
    case rejected(ShadowError)
}

/// What a `/delete` request comes to.
public enum ShadowDeleteOutcome: Hashable, Sendable {
    /// Remove the shadow, then publish the payload.
    case accepted(ShadowDeletion)
    /// For `/delete/rejected`; the shadow is unchanged.
    case rejected(ShadowError)
}

/// An accepted delete.
public struct ShadowDeletion: Hashable, Sendable {
    /// The version of the deleted shadow. AWS does not reset versions: a shadow re-created
    /// within 48 hours continues from here, so keep it and pass it to
    /// ``Shadow/update(_:request:now:limits:deletedVersion:)``.
    public var version: Int
    /// For `/delete/accepted`, and the body of DeleteThingShadow: `version`, `timestamp`, and
    /// `clientToken` if the request had one.
    public var payload: [UInt8]

    public init(version: Int, payload: [UInt8]) {
        self.version = version
        self.payload = payload
    }
}
