/// A request state document that passed every check, ready to apply.
struct ShadowUpdateRequest: Hashable, Sendable {
    /// What a request says about one section.
    enum SectionChange: Hashable, Sendable {
        /// The section is not in the request: leave it alone.
        case none
        /// `null`: remove the section.
        case remove
        /// An object: merge it in.
        case merge([String: JSONValue])
    }

    var desired: SectionChange
    var reported: SectionChange
    var clientToken: String?
    var version: Int?
    /// `"state": null`: both sections go, and AWS answers `"state": null` with only a
    /// timestamp in `metadata`.
    var clearsState = false

    /// Checks a request in the order its problems are reported: size, encoding, JSON syntax,
    /// nesting, then the client token (so later refusals can echo it), the version, and the
    /// `state` node.
    static func parse(_ payload: some Collection<UInt8>, limits: ShadowLimits, now: Int64) -> Result<Self, ShadowError>
    {
        guard payload.count <= limits.maximumRequestSize else { return .failure(.payloadTooLarge(timestamp: now)) }
        // Nesting is bounded in the parser itself: the root object, `state` and the section are
        // three levels above the section's contents.
        let parseLimits = JSONParseLimits(
            maximumBytes: limits.maximumRequestSize, maximumDepth: limits.maximumDepth + 3)
        let root: JSONValue
        switch JSONValue.parse(payload, limits: parseLimits) {
        case .success(let value): root = value
        case .failure(let error): return .failure(ShadowError(error, maximumDepth: limits.maximumDepth, now: now))
        }
        guard case .object(let members) = root else { return .failure(.missingState(timestamp: now)) }

        let clientToken: String?
        switch ShadowRequestOptions.clientToken(in: members) {
        case .success(let token): clientToken = token
        case .failure: return .failure(.invalidClientToken(timestamp: now))
        }
        guard let version = ShadowRequestOptions.version(in: members) else {
            return .failure(.invalidVersion(clientToken: clientToken, timestamp: now))
        }

        switch members["state"] {
        case nil:
            return .failure(.missingState(clientToken: clientToken, timestamp: now))
        case .null?:
            // AWS: "Setting the device's shadow state to null does not delete the shadow."
            return .success(
                Self(desired: .remove, reported: .remove, clientToken: clientToken, version: version, clearsState: true))
        case .object(let state)?:
            if let invalid = JSONValue.sortedKeys(state).first(where: { $0 != "desired" && $0 != "reported" }) {
                return .failure(.invalidStateNode(invalid, clientToken: clientToken, timestamp: now))
            }
            let desired: SectionChange
            switch section(state["desired"]) {
            case .success(let change): desired = change
            case .failure(.notAnObject): return .failure(.desiredNotAnObject(clientToken: clientToken, timestamp: now))
            case .failure(.nullInArray): return .failure(.invalidJSON(clientToken: clientToken, timestamp: now))
            }
            let reported: SectionChange
            switch section(state["reported"]) {
            case .success(let change): reported = change
            case .failure(.notAnObject): return .failure(.reportedNotAnObject(clientToken: clientToken, timestamp: now))
            case .failure(.nullInArray): return .failure(.invalidJSON(clientToken: clientToken, timestamp: now))
            }
            return .success(Self(desired: desired, reported: reported, clientToken: clientToken, version: version))
        case _?:
            return .failure(.stateNotAnObject(clientToken: clientToken, timestamp: now))
        }
    }

    private enum SectionProblem: Error {
        case notAnObject
        /// AWS: "Arrays can't have null values", since `null` means "remove" and an array is
        /// stored whole.
        case nullInArray
    }

    private static func section(_ value: JSONValue?) -> Result<SectionChange, SectionProblem> {
        switch value {
        case nil: return .success(.none)
        case .null?: return .success(.remove)
        case .object(let members)?:
            guard !members.values.contains(where: { $0.hasNullInArray(insideArray: false) }) else {
                return .failure(.nullInArray)
            }
            return .success(.merge(members))
        case _?: return .failure(.notAnObject)
        }
    }

    /// The request's `state`, as `/update/accepted` echoes it: the sections it named, `null`s
    /// included.
    var echoedState: JSONValue {
        if clearsState { return .null }
        var state: [String: JSONValue] = [:]
        for (name, change) in [("desired", desired), ("reported", reported)] {
            switch change {
            case .none: break
            case .remove: state[name] = .null
            case .merge(let members): state[name] = .object(members)
            }
        }
        return .object(state)
    }

    /// The metadata of what the request wrote: a timestamp for every leaf it named (a `null`
    /// that removed a member included). A removed section has none; `"state": null` has only
    /// the time of the update.
    func echoedMetadata(at time: Int64) -> JSONValue {
        if clearsState { return .object(["timestamp": .number(JSONNumber(time))]) }
        var metadata: [String: JSONValue] = [:]
        for (name, change) in [("desired", desired), ("reported", reported)] {
            if case .merge(let members) = change {
                metadata[name] = ShadowMetadata.object(ShadowMetadata.members(of: members, at: time)).json
            }
        }
        return .object(metadata)
    }
}

extension JSONValue {
    /// Whether a `null` sits inside an array anywhere in this value.
    func hasNullInArray(insideArray: Bool) -> Bool {
        switch self {
        case .null: insideArray
        case .array(let elements): elements.contains { $0.hasNullInArray(insideArray: true) }
        case .object(let members): members.values.contains { $0.hasNullInArray(insideArray: insideArray) }
        default: false
        }
    }
}

extension ShadowError {
    /// The refusal for a payload that did not parse.
    init(_ error: JSONParseError, maximumDepth: Int, now: Int64) {
        switch error.code {
        case .tooLarge: self = .payloadTooLarge(timestamp: now)
        case .tooDeep: self = .tooDeep(maximumDepth: maximumDepth, timestamp: now)
        case .invalidUTF8: self = .unsupportedEncoding(timestamp: now)
        default: self = .invalidJSON(timestamp: now)
        }
    }
}

/// The optional members of a `/get` or `/delete` request: `{"clientToken": "...", "version": N}`.
///
/// The AWS IoT Device SDK v2 sends `{"clientToken": ...}` on both and expects the token back;
/// an empty payload is the documented form.
public struct ShadowRequestOptions: Hashable, Sendable {
    public var clientToken: String?
    public var version: Int?

    public init(clientToken: String? = nil, version: Int? = nil) {
        self.clientToken = clientToken
        self.version = version
    }

    /// Reads the options from a request payload; an empty payload (or only whitespace) has none.
    ///
    /// AWS documents that the content of a `/delete` message is ignored, so a handler of
    /// `/delete` may treat a refusal here as "no options" rather than answer it.
    public static func parse(
        _ payload: some Collection<UInt8>,
        limits: ShadowLimits = ShadowLimits(),
        now: Int64
    ) -> Result<ShadowRequestOptions, ShadowError> {
        guard payload.count <= limits.maximumRequestSize else { return .failure(.payloadTooLarge(timestamp: now)) }
        if payload.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) { return .success(ShadowRequestOptions()) }
        let parseLimits = JSONParseLimits(
            maximumBytes: limits.maximumRequestSize, maximumDepth: limits.maximumDepth + 3)
        let members: [String: JSONValue]
        switch JSONValue.parse(payload, limits: parseLimits) {
        case .success(.object(let object)): members = object
        case .success: return .failure(.invalidJSON(timestamp: now))
        case .failure(let error): return .failure(ShadowError(error, maximumDepth: limits.maximumDepth, now: now))
        }
        let clientToken: String?
        switch Self.clientToken(in: members) {
        case .success(let token): clientToken = token
        case .failure: return .failure(.invalidClientToken(timestamp: now))
        }
        guard let version = Self.version(in: members) else {
            return .failure(.invalidVersion(clientToken: clientToken, timestamp: now))
        }
        return .success(ShadowRequestOptions(clientToken: clientToken, version: version))
    }

    struct InvalidClientToken: Error {}

    /// A string of at most 64 UTF-8 bytes, or nothing (`null` counts as nothing).
    static func clientToken(in members: [String: JSONValue]) -> Result<String?, InvalidClientToken> {
        switch members["clientToken"] {
        case nil, .null?: return .success(nil)
        case .string(let token)? where token.utf8.count <= ShadowLimits.maximumClientTokenSize: return .success(token)
        case _?: return .failure(InvalidClientToken())
        }
    }

    /// `.some(nil)` without a version (`null` counts as none), `.some(n)` for an integer
    /// `n >= 0` written as an integer, nil for anything else.
    static func version(in members: [String: JSONValue]) -> Int?? {
        switch members["version"] {
        case nil, .null?: return .some(nil)
        case .number(let number)?:
            guard number.isInteger, let value = number.int64Value, value >= 0, let version = Int(exactly: value) else {
                return nil
            }
            return .some(version)
        case _?: return nil
        }
    }
}
