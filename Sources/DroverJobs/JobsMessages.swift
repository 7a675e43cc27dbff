import DroverShadow

/// What a device sends on the jobs topics (`$aws/things/THING/jobs/...`) and over
/// `iot-jobs-data`, read from hostile bytes: a bounded size and depth, and every field checked
/// for its type. Numbers may come as JSON strings of digits, as the v1 Device SDK sends them.
public struct JobsRequest: Sendable, Hashable {
    public var clientToken: String?
    public var status: JobExecutionStatus?
    public var statusDetails: [String: String]?
    public var expectedVersion: Int64?
    public var executionNumber: Int64?
    public var stepTimeoutInMinutes: Int64?
    public var includeJobDocument: Bool?
    public var includeJobExecutionState: Bool?

    public init() {}

    /// The size AWS allows for a jobs request.
    public static let maxBytes = 32 * 1024
    public static let maxClientTokenLength = 64

    /// Parses a request payload; an empty one is `{}`. The refusal carries the client token
    /// when it could be read, so the `/rejected` reply can echo it.
    public static func parse(_ payload: some Collection<UInt8>) -> Result<JobsRequest, JobsRejection> {
        if payload.isEmpty { return .success(JobsRequest()) }
        let value: JSONValue
        switch JSONValue.parse(payload, limits: JSONParseLimits(maximumBytes: maxBytes, maximumDepth: 8)) {
        case .success(let parsed): value = parsed
        case .failure(let error):
            if error.code == .tooLarge {
                return .failure(JobsRejection(.invalidRequest, "the request is over \(maxBytes) bytes"))
            }
            return .failure(JobsRejection(.invalidJSON, "the request is not valid JSON: \(error.message) at byte \(error.offset)"))
        }
        guard let fields = value.objectValue else {
            return .failure(JobsRejection(.invalidJSON, "the request must be a JSON object"))
        }
        var request = JobsRequest()
        do throws(JobsRejection) {
            if let token = fields["clientToken"], !token.isNull {
                guard let text = token.stringValue, text.utf8.count <= maxClientTokenLength else {
                    throw JobsRejection(.invalidRequest, "clientToken must be a string of at most \(maxClientTokenLength) bytes")
                }
                request.clientToken = text
            }
            if let status = fields["status"], !status.isNull {
                guard let name = status.stringValue, let known = JobExecutionStatus(rawValue: name) else {
                    throw JobsRejection(.invalidRequest, "status must be one of \(JobExecutionStatus.reportable.map(\.rawValue).joined(separator: ", "))")
                }
                request.status = known
            }
            if let details = fields["statusDetails"], !details.isNull {
                guard let members = details.objectValue else { throw JobsRejection(.invalidRequest, "statusDetails must be an object of strings") }
                var strings: [String: String] = [:]
                for (key, member) in members {
                    guard let text = member.stringValue else {
                        throw JobsRejection(.invalidRequest, "statusDetails values must be strings; \(key.prefix(32)) is not")
                    }
                    strings[key] = text
                }
                try JobLimits.check(statusDetails: strings)
                request.statusDetails = strings
            }
            request.expectedVersion = try integer(fields, "expectedVersion")
            request.executionNumber = try integer(fields, "executionNumber")
            request.stepTimeoutInMinutes = try integer(fields, "stepTimeoutInMinutes")
            request.includeJobDocument = try boolean(fields, "includeJobDocument")
            request.includeJobExecutionState = try boolean(fields, "includeJobExecutionState")
        } catch {
            var refusal = error
            refusal.clientToken = request.clientToken ?? fields["clientToken"]?.stringValue.flatMap {
                $0.utf8.count <= maxClientTokenLength ? $0 : nil
            }
            return .failure(refusal)
        }
        return .success(request)
    }

    private static func integer(_ fields: [String: JSONValue], _ name: String) throws(JobsRejection) -> Int64? {
        guard let value = fields[name], !value.isNull else { return nil }
        if let number = value.numberValue?.int64Value { return number }
        if let text = value.stringValue, text.utf8.count <= 20, let number = Int64(text) { return number }
        throw JobsRejection(.invalidRequest, "\(name) must be a whole number")
    }

    private static func boolean(_ fields: [String: JSONValue], _ name: String) throws(JobsRejection) -> Bool? {
        guard let value = fields[name], !value.isNull else { return nil }
        if let flag = value.boolValue { return flag }
        throw JobsRejection(.invalidRequest, "\(name) must be true or false")
    }
}

/// The documents the jobs service sends to devices, in AWS's shapes (what the AWS IoT Device SDK
/// v2 jobs client parses): times in epoch seconds, the job document as a JSON object.
public enum JobsReply {
    /// `JobExecutionData` (`start-next/accepted`, `JOB/get/accepted`, `notify-next`).
    public static func execution(_ execution: JobExecution, document: String?, now: Int64) -> JSONValue {
        var fields: [String: JSONValue] = [
            "jobId": .string(execution.jobId),
            "thingName": .string(execution.thingName),
            "status": .string(execution.status.rawValue),
            "queuedAt": .number(JSONNumber(execution.queuedAt)),
            "lastUpdatedAt": .number(JSONNumber(execution.lastUpdatedAt)),
            "versionNumber": .number(JSONNumber(execution.versionNumber)),
            "executionNumber": .number(JSONNumber(execution.executionNumber)),
        ]
        if !execution.statusDetails.isEmpty { fields["statusDetails"] = details(execution.statusDetails) }
        if let started = execution.startedAt { fields["startedAt"] = .number(JSONNumber(started)) }
        if let seconds = execution.secondsBeforeTimedOut(now: now) {
            fields["approximateSecondsBeforeTimedOut"] = .number(JSONNumber(seconds))
        }
        if let document, let parsed = jobDocument(document) { fields["jobDocument"] = parsed }
        return .object(fields)
    }

    /// `JobExecutionSummary` (the lists of `get/accepted` and `notify`).
    public static func summary(_ execution: JobExecution) -> JSONValue {
        var fields: [String: JSONValue] = [
            "jobId": .string(execution.jobId),
            "queuedAt": .number(JSONNumber(execution.queuedAt)),
            "lastUpdatedAt": .number(JSONNumber(execution.lastUpdatedAt)),
            "versionNumber": .number(JSONNumber(execution.versionNumber)),
            "executionNumber": .number(JSONNumber(execution.executionNumber)),
        ]
        if let started = execution.startedAt { fields["startedAt"] = .number(JSONNumber(started)) }
        return .object(fields)
    }

    /// `JobExecutionState`: what `update/accepted` and the refusals carry.
    public static func state(_ execution: JobExecution) -> JSONValue {
        var fields: [String: JSONValue] = [
            "status": .string(execution.status.rawValue),
            "versionNumber": .number(JSONNumber(execution.versionNumber)),
        ]
        if !execution.statusDetails.isEmpty { fields["statusDetails"] = details(execution.statusDetails) }
        return .object(fields)
    }

    /// `get/accepted`: the thing's pending executions, IN_PROGRESS and QUEUED, oldest first.
    public static func pending(_ executions: [JobExecution], clientToken: String?, now: Int64) -> [UInt8] {
        let ordered = executions.sorted { ($0.queuedAt, $0.jobId) < ($1.queuedAt, $1.jobId) }
        return envelope([
            "inProgressJobs": .array(ordered.filter { $0.status == .inProgress }.map(summary)),
            "queuedJobs": .array(ordered.filter { $0.status == .queued }.map(summary)),
        ], clientToken: clientToken, now: now)
    }

    /// `start-next/accepted` and `JOB/get/accepted`; with no execution, only the timestamp and
    /// token, as AWS answers when nothing is pending.
    public static func described(_ execution: JobExecution?, document: String?, clientToken: String?, now: Int64) -> [UInt8] {
        envelope(execution.map { ["execution": self.execution($0, document: document, now: now)] } ?? [:], clientToken: clientToken, now: now)
    }

    /// `JOB/update/accepted`.
    public static func updated(_ execution: JobExecution, includeState: Bool, document: String?, clientToken: String?, now: Int64) -> [UInt8] {
        var fields: [String: JSONValue] = [:]
        if includeState { fields["executionState"] = state(execution) }
        if let document, let parsed = jobDocument(document) { fields["jobDocument"] = parsed }
        return envelope(fields, clientToken: clientToken, now: now)
    }

    /// `notify-next`: the thing's next pending execution, or only a timestamp when none is left.
    public static func notifyNext(_ execution: JobExecution?, document: String?, now: Int64) -> [UInt8] {
        envelope(execution.map { ["execution": self.execution($0, document: document, now: now)] } ?? [:], clientToken: nil, now: now)
    }

    /// `notify`: the pending executions by status (a status with none is left out).
    public static func notify(_ executions: [JobExecution], now: Int64) -> [UInt8] {
        let ordered = executions.sorted { ($0.queuedAt, $0.jobId) < ($1.queuedAt, $1.jobId) }
        var jobs: [String: JSONValue] = [:]
        for status in [JobExecutionStatus.queued, .inProgress] {
            let matching = ordered.filter { $0.status == status }
            if !matching.isEmpty { jobs[status.rawValue] = .array(matching.map(summary)) }
        }
        return envelope(["jobs": .object(jobs)], clientToken: nil, now: now)
    }

    /// A `/rejected` reply: the code, the message, the execution state where AWS gives it.
    public static func rejected(_ rejection: JobsRejection, now: Int64) -> [UInt8] {
        var fields: [String: JSONValue] = ["code": .string(rejection.code.rawValue), "message": .string(rejection.message)]
        if let execution = rejection.executionState { fields["executionState"] = state(execution) }
        return envelope(fields, clientToken: rejection.clientToken, now: now)
    }

    /// A stored job document as the JSON object it is; nil if it is not one (CreateJob refuses such).
    public static func jobDocument(_ text: String) -> JSONValue? {
        guard case .success(let value) = JSONValue.parse(text, limits: JSONParseLimits(maximumBytes: Job.maxDocumentBytes, maximumDepth: 32)),
              value.objectValue != nil else { return nil }
        return value
    }

    private static func details(_ details: [String: String]) -> JSONValue {
        .object(details.mapValues { .string($0) })
    }

    private static func envelope(_ fields: [String: JSONValue], clientToken: String?, now: Int64) -> [UInt8] {
        var fields = fields
        fields["timestamp"] = .number(JSONNumber(now))
        if let clientToken { fields["clientToken"] = .string(clientToken) }
        return JSONValue.object(fields).jsonBytes
    }
}
