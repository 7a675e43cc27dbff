/// The Device Shadow service's operations, as pure functions: a shadow (or its absence) and a
/// request in, an outcome with the payloads to publish out. Storage, topics and connections
/// belong to the caller.
///
/// Time is an argument (`now`, epoch seconds), so tests need no clock.
public enum Shadow {
    // MARK: Update

    /// Applies a request state document (`{"state": {"desired": ..., "reported": ...},
    /// "clientToken": ..., "version": N}`) to a shadow, creating it if `document` is nil.
    ///
    /// - Parameters:
    ///   - document: the shadow as it is, or nil if it does not exist.
    ///   - request: the payload published on `/update` or posted to UpdateThingShadow.
    ///   - now: the time of the update, in epoch seconds; it stamps what the update writes.
    ///   - deletedVersion: when `document` is nil, the version the shadow had when it was
    ///     deleted, if it was deleted recently enough for AWS to remember it (48 hours); a new
    ///     shadow's version is this plus one. Also the version a request must name to create it.
    public static func update(
        _ document: ShadowDocument?,
        request: some Collection<UInt8>,
        now: Int64,
        limits: ShadowLimits = ShadowLimits(),
        deletedVersion: Int = 0
    ) -> ShadowUpdateOutcome {
        let parsed: ShadowUpdateRequest
        switch ShadowUpdateRequest.parse(request, limits: limits, now: now) {
        case .success(let value): parsed = value
        case .failure(let error): return .rejected(error)
        }
        let token = parsed.clientToken
        let currentVersion = document?.version ?? deletedVersion
        if let expected = parsed.version, expected != currentVersion {
            return .rejected(.versionConflict(clientToken: token, timestamp: now))
        }
        guard currentVersion < Int.max else { return .rejected(.internalFailure(clientToken: token, timestamp: now)) }

        let desired = apply(parsed.desired, to: document?.desiredSection, at: now)
        let reported = apply(parsed.reported, to: document?.reportedSection, at: now)
        let updated = ShadowDocument(desired: desired, reported: reported, version: currentVersion + 1, timestamp: now)
        guard updated.stateSize <= limits.maximumDocumentSize else {
            return .rejected(.payloadTooLarge(clientToken: token, timestamp: now))
        }
        let stored = updated.storageBytes
        guard stored.count <= limits.maximumStoredSize else {
            return .rejected(.payloadTooLarge(clientToken: token, timestamp: now))
        }

        var accepted: [String: JSONValue] = [
            "state": parsed.echoedState,
            "metadata": parsed.echoedMetadata(at: now),
        ]
        accepted.stamp(version: updated.version, timestamp: now, clientToken: token)

        var documents: [String: JSONValue] = ["current": updated.snapshot]
        if let document { documents["previous"] = document.snapshot }
        documents.stamp(version: nil, timestamp: now, clientToken: token)

        return .accepted(
            ShadowUpdate(
                document: updated,
                acceptedPayload: JSONValue.object(accepted).jsonBytes,
                deltaPayload: updated.deltaPayload(clientToken: token, now: now),
                documentsPayload: JSONValue.object(documents).jsonBytes,
                storageBytes: stored
            )
        )
    }

    private static func apply(_ change: ShadowUpdateRequest.SectionChange, to section: ShadowSection?, at time: Int64)
        -> ShadowSection?
    {
        switch change {
        case .none:
            return section
        case .remove:
            return nil
        case .merge(let patch):
            var merged = section ?? ShadowSection()
            merged.merge(patch, at: time)
            return merged.isEmpty ? nil : merged
        }
    }

    // MARK: Get

    /// The `/get/accepted` payload (and GetThingShadow body): `state` with `desired`,
    /// `reported` and, when they differ, `delta`; `metadata`; `version`; `timestamp` (now: when
    /// the answer was made, not when the shadow was updated); `clientToken` if given.
    ///
    /// - Parameter shadowName: the name in the 404 message if there is no shadow; the thing's
    ///   name for the classic shadow.
    public static func get(_ document: ShadowDocument?, shadowName: String, clientToken: String? = nil, now: Int64)
        -> ShadowGetOutcome
    {
        guard let document else {
            return .rejected(.noShadow(named: shadowName, clientToken: clientToken, timestamp: now))
        }
        var state = document.state.objectValue ?? [:]
        let delta = document.delta
        if !delta.isEmpty { state["delta"] = .object(delta) }
        var payload: [String: JSONValue] = ["state": .object(state), "metadata": document.metadata]
        payload.stamp(version: document.version, timestamp: now, clientToken: clientToken)
        return .accepted(payload: JSONValue.object(payload).jsonBytes)
    }

    // MARK: Delete

    /// The `/delete/accepted` payload (and DeleteThingShadow body): the deleted shadow's
    /// `version`, `timestamp`, and `clientToken` if given. With `version`, the shadow must be at
    /// that version (409 otherwise).
    public static func delete(
        _ document: ShadowDocument?,
        shadowName: String,
        clientToken: String? = nil,
        version: Int? = nil,
        now: Int64
    ) -> ShadowDeleteOutcome {
        guard let document else {
            return .rejected(.noShadow(named: shadowName, clientToken: clientToken, timestamp: now))
        }
        if let version, version != document.version {
            return .rejected(.versionConflict(clientToken: clientToken, timestamp: now))
        }
        var payload: [String: JSONValue] = [:]
        payload.stamp(version: document.version, timestamp: now, clientToken: clientToken)
        return .accepted(ShadowDeletion(version: document.version, payload: JSONValue.object(payload).jsonBytes))
    }

    // MARK: Delta

    /// What the device has yet to do: the members of `desired` whose values differ from
    /// `reported`, as the AWS developer guide defines it ("Delta state"):
    /// - a desired member missing from `reported` is in the delta; a reported member missing from
    ///   `desired` is not;
    /// - objects are compared member by member, and the delta keeps the path from the root to
    ///   each difference;
    /// - anything else, arrays included, is compared whole, and a differing value is copied whole.
    public static func delta(desired: [String: JSONValue]?, reported: [String: JSONValue]?) -> [String: JSONValue] {
        guard let desired else { return [:] }
        guard let reported else { return desired }
        var delta: [String: JSONValue] = [:]
        for (key, wanted) in desired {
            guard let actual = reported[key] else {
                delta[key] = wanted
                continue
            }
            if case .object(let wantedMembers) = wanted, case .object(let actualMembers) = actual {
                let nested = Self.delta(desired: wantedMembers, reported: actualMembers)
                if !nested.isEmpty { delta[key] = .object(nested) }
            } else if wanted != actual {
                delta[key] = wanted
            }
        }
        return delta
    }

    /// The metadata of a delta: that of the desired members it holds ("its values are equal to
    /// the metadata in the desired field").
    static func deltaMetadata(
        _ delta: [String: JSONValue],
        desired: [String: JSONValue],
        metadata: [String: ShadowMetadata]
    ) -> [String: ShadowMetadata] {
        var result: [String: ShadowMetadata] = [:]
        for (key, value) in delta {
            if case .object(let nested) = value, case .object(let wanted)? = desired[key],
                case .object(let entries)? = metadata[key], nested != wanted
            {
                result[key] = .object(deltaMetadata(nested, desired: wanted, metadata: entries))
            } else {
                result[key] = metadata[key]
            }
        }
        return result
    }

    /// Whether a section could be stored: no `null` anywhere (see ``ShadowDocument``'s
    /// invariants).
    static func isStorable(_ members: [String: JSONValue]) -> Bool {
        members.values.allSatisfy { value in
            switch value {
            case .null: false
            case .object(let nested): isStorable(nested)
            case .array: !value.hasNullInArray(insideArray: false)
            default: true
            }
        }
    }
}

extension ShadowDocument {
    /// `{"state": ..., "metadata": ..., "version": N}`, as `previous` and `current` of
    /// `/update/documents` give it.
    var snapshot: JSONValue {
        .object(["state": state, "metadata": metadata, "version": .number(JSONNumber(version))])
    }

    /// The `/update/delta` payload, or nil when desired and reported agree.
    ///
    /// AWS publishes it "when it accepts a change for the device's shadow, and the request state
    /// document contains different values for desired and reported states", with every differing
    /// desired member "regardless of whether these attributes were contained in the current
    /// update message or were already stored": so after any accepted update that leaves a delta,
    /// with the whole delta.
    func deltaPayload(clientToken: String?, now: Int64) -> [UInt8]? {
        let delta = self.delta
        guard !delta.isEmpty, let desired, let desiredMetadata else { return nil }
        let metadata = Shadow.deltaMetadata(delta, desired: desired, metadata: desiredMetadata)
        var payload: [String: JSONValue] = [
            "state": .object(delta),
            "metadata": ShadowMetadata.object(metadata).json,
        ]
        payload.stamp(version: version, timestamp: now, clientToken: clientToken)
        return JSONValue.object(payload).jsonBytes
    }
}

extension [String: JSONValue] {
    /// Adds the members every answer ends with.
    mutating func stamp(version: Int?, timestamp: Int64, clientToken: String?) {
        if let version { self["version"] = .number(JSONNumber(version)) }
        self["timestamp"] = .number(JSONNumber(timestamp))
        if let clientToken { self["clientToken"] = .string(clientToken) }
    }
}
