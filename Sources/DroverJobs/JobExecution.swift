/// The status of one thing's execution of a job, as AWS IoT Jobs names it.
public struct JobExecutionStatus: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    public static let queued = JobExecutionStatus(known: "QUEUED")
    public static let inProgress = JobExecutionStatus(known: "IN_PROGRESS")
    public static let succeeded = JobExecutionStatus(known: "SUCCEEDED")
    public static let failed = JobExecutionStatus(known: "FAILED")
    public static let timedOut = JobExecutionStatus(known: "TIMED_OUT")
    public static let rejected = JobExecutionStatus(known: "REJECTED")
    public static let removed = JobExecutionStatus(known: "REMOVED")
    public static let canceled = JobExecutionStatus(known: "CANCELED")

    public static let all: [JobExecutionStatus] = [.queued, .inProgress, .succeeded, .failed, .timedOut, .rejected, .removed, .canceled]
    /// What a device may report (UpdateJobExecution): the rest are the server's to set.
    public static let reportable: [JobExecutionStatus] = [.inProgress, .succeeded, .failed, .rejected]

    /// Nil for a name AWS does not have.
    public init?(rawValue: String) {
        guard Self.all.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    private init(known: String) { rawValue = known }

    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let status = JobExecutionStatus(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "job execution status \(name)"))
        }
        self = status
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// QUEUED and IN_PROGRESS are pending; every other status is final.
    public var isTerminal: Bool { self != .queued && self != .inProgress }

    public var description: String { rawValue }
}

/// How a job execution request is refused: AWS's error code (`/rejected` on MQTT, the error's
/// type over HTTP), a message that says what to fix, and the execution's state where AWS
/// includes it (a version mismatch, an invalid transition).
public struct JobsRejection: Error, Sendable, Equatable {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let invalidTopic = Code(rawValue: "InvalidTopic")
        public static let invalidJSON = Code(rawValue: "InvalidJson")
        public static let invalidRequest = Code(rawValue: "InvalidRequest")
        public static let invalidStateTransition = Code(rawValue: "InvalidStateTransition")
        public static let resourceNotFound = Code(rawValue: "ResourceNotFound")
        public static let versionMismatch = Code(rawValue: "VersionMismatch")
        public static let internalError = Code(rawValue: "InternalError")
        public static let requestThrottled = Code(rawValue: "RequestThrottled")
        public static let terminalStateReached = Code(rawValue: "TerminalStateReached")
    }

    public var code: Code
    public var message: String
    public var executionState: JobExecution?
    /// The request's `clientToken`, echoed in the reply.
    public var clientToken: String?

    public init(_ code: Code, _ message: String, executionState: JobExecution? = nil, clientToken: String? = nil) {
        self.code = code
        self.message = message
        self.executionState = executionState
        self.clientToken = clientToken
    }
}

/// One thing's execution of one job. Times are epoch seconds, as AWS sends them to devices.
public struct JobExecution: Codable, Sendable, Hashable {
    public var jobId: String
    public var thingName: String
    /// 1 for the first execution of the job on the thing; a retry or a re-run gets the next one.
    public var executionNumber: Int64
    public var status: JobExecutionStatus
    public var statusDetails: [String: String]
    /// 1 when queued; one more with every change.
    public var versionNumber: Int64
    public var queuedAt: Int64
    public var startedAt: Int64?
    public var lastUpdatedAt: Int64
    /// When the step timer (`stepTimeoutInMinutes`) runs out, if one is set.
    public var stepTimeoutAt: Int64?
    /// When the job's in-progress timeout runs out; set when the execution goes IN_PROGRESS.
    public var inProgressTimeoutAt: Int64?
    /// Retries made so far for each failure type ("FAILED", "TIMED_OUT"), to keep to the job's
    /// `jobExecutionsRetryConfig`.
    public var retries: [String: Int]

    public init(jobId: String, thingName: String, executionNumber: Int64 = 1, queuedAt: Int64, retries: [String: Int] = [:]) {
        self.jobId = jobId
        self.thingName = thingName
        self.executionNumber = executionNumber
        self.status = .queued
        self.statusDetails = [:]
        self.versionNumber = 1
        self.queuedAt = queuedAt
        self.startedAt = nil
        self.lastUpdatedAt = queuedAt
        self.stepTimeoutAt = nil
        self.inProgressTimeoutAt = nil
        self.retries = retries
    }

    /// The first of the two timers, while the execution is in progress.
    public var timesOutAt: Int64? {
        guard status == .inProgress else { return nil }
        switch (stepTimeoutAt, inProgressTimeoutAt) {
        case let (step?, whole?): return min(step, whole)
        case let (step?, nil): return step
        case let (nil, whole?): return whole
        case (nil, nil): return nil
        }
    }

    /// AWS's `approximateSecondsBeforeTimedOut`.
    public func secondsBeforeTimedOut(now: Int64) -> Int64? {
        timesOutAt.map { max(0, $0 - now) }
    }
}

/// A device's change to its execution (UpdateJobExecution, `.../jobs/JOB/update`).
public struct JobExecutionUpdate: Sendable, Hashable {
    public var status: JobExecutionStatus
    /// Replaces the execution's details when given; nil leaves them.
    public var statusDetails: [String: String]?
    public var expectedVersion: Int64?
    public var executionNumber: Int64?
    /// 1 to 10 080 sets the step timer from now, -1 stops it, nil leaves it.
    public var stepTimeoutInMinutes: Int64?

    public init(status: JobExecutionStatus, statusDetails: [String: String]? = nil, expectedVersion: Int64? = nil,
                executionNumber: Int64? = nil, stepTimeoutInMinutes: Int64? = nil) {
        self.status = status
        self.statusDetails = statusDetails
        self.expectedVersion = expectedVersion
        self.executionNumber = executionNumber
        self.stepTimeoutInMinutes = stepTimeoutInMinutes
    }
}

/// AWS's limits on what a device sends.
public enum JobLimits {
    public static let maxStatusDetails = 10
    public static let maxStatusDetailKeyLength = 128
    public static let maxStatusDetailValueLength = 1024
    /// `stepTimeoutInMinutes` and `inProgressTimeoutInMinutes`: 1 minute to 7 days.
    public static let timeoutMinutes: ClosedRange<Int64> = 1...10_080

    /// Status details: at most 10 pairs; keys of 1 to 128 of `[a-zA-Z0-9:_-]`, values of 1 to 1 024
    /// characters with no control characters.
    public static func check(statusDetails: [String: String]) throws(JobsRejection) {
        guard statusDetails.count <= maxStatusDetails else {
            throw JobsRejection(.invalidRequest, "statusDetails has \(statusDetails.count) entries; at most \(maxStatusDetails) are allowed")
        }
        for (key, value) in statusDetails.sorted(by: { $0.key < $1.key }) {
            let keyBytes = key.utf8
            guard (1...maxStatusDetailKeyLength).contains(keyBytes.count), keyBytes.allSatisfy(isKeyByte) else {
                throw JobsRejection(.invalidRequest,
                                    "statusDetails key \"\(key.prefix(32))\" must be 1 to \(maxStatusDetailKeyLength) of a-z, A-Z, 0-9, ':', '_' and '-'")
            }
            guard (1...maxStatusDetailValueLength).contains(value.count) else {
                throw JobsRejection(.invalidRequest, "statusDetails value of \(key) must be 1 to \(maxStatusDetailValueLength) characters")
            }
            guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory.isControlOrFormat }) else {
                throw JobsRejection(.invalidRequest, "statusDetails value of \(key) must not hold control characters")
            }
        }
    }

    public static func check(stepTimeoutInMinutes minutes: Int64, allowStop: Bool) throws(JobsRejection) {
        guard timeoutMinutes.contains(minutes) || (allowStop && minutes == -1) else {
            throw JobsRejection(.invalidRequest,
                                "stepTimeoutInMinutes must be 1 to \(timeoutMinutes.upperBound)\(allowStop ? ", or -1 to stop the step timer" : "")")
        }
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}

extension Unicode.GeneralCategory {
    var isControlOrFormat: Bool {
        switch self {
        case .control, .format, .surrogate, .privateUse, .unassigned: true
        default: false
        }
    }
}

// MARK: The state machine

extension JobExecution {
    /// The execution after a device's update, or why it is refused. `inProgressTimeoutMinutes`
    /// is the job's `timeoutConfig`, started when the execution first goes IN_PROGRESS.
    public func updated(by update: JobExecutionUpdate, now: Int64, inProgressTimeoutMinutes: Int64? = nil) throws(JobsRejection) -> JobExecution {
        if let number = update.executionNumber, number != executionNumber {
            throw JobsRejection(.resourceNotFound,
                                "job \(jobId) has no execution number \(number) on thing \(thingName); the current one is \(executionNumber)")
        }
        if let expected = update.expectedVersion, expected != versionNumber {
            throw JobsRejection(.versionMismatch,
                                "the job execution is at version \(versionNumber), not \(expected)", executionState: self)
        }
        guard JobExecutionStatus.reportable.contains(update.status) else {
            throw JobsRejection(.invalidRequest,
                                "status must be one of \(JobExecutionStatus.reportable.map(\.rawValue).joined(separator: ", ")), not \(update.status)")
        }
        if status.isTerminal {
            throw JobsRejection(.invalidStateTransition,
                                "the job execution is \(status), a final status; it cannot become \(update.status)", executionState: self)
        }
        if let details = update.statusDetails { try JobLimits.check(statusDetails: details) }
        if let minutes = update.stepTimeoutInMinutes {
            try JobLimits.check(stepTimeoutInMinutes: minutes, allowStop: true)
            guard update.status == .inProgress else {
                throw JobsRejection(.invalidRequest, "stepTimeoutInMinutes is only for an update to IN_PROGRESS")
            }
        }
        var next = self
        next.status = update.status
        if let details = update.statusDetails { next.statusDetails = details }
        next.versionNumber += 1
        next.lastUpdatedAt = now
        if update.status == .inProgress {
            if status == .queued {
                next.startedAt = now
                next.inProgressTimeoutAt = inProgressTimeoutMinutes.map {
                    now + min(max($0, JobLimits.timeoutMinutes.lowerBound), JobLimits.timeoutMinutes.upperBound) * 60
                }
            }
            switch update.stepTimeoutInMinutes {
            case .some(-1): next.stepTimeoutAt = nil
            case let minutes?: next.stepTimeoutAt = now + minutes * 60
            case nil: break
            }
        } else {
            next.stepTimeoutAt = nil
            next.inProgressTimeoutAt = nil
        }
        return next
    }

    /// StartNextPendingJobExecution on a QUEUED execution (the caller picks it): IN_PROGRESS, with
    /// the details and the step timer the device asked for.
    public func started(now: Int64, statusDetails: [String: String]?, stepTimeoutInMinutes: Int64?,
                        inProgressTimeoutMinutes: Int64? = nil) throws(JobsRejection) -> JobExecution {
        if let minutes = stepTimeoutInMinutes { try JobLimits.check(stepTimeoutInMinutes: minutes, allowStop: false) }
        return try updated(by: JobExecutionUpdate(status: .inProgress, statusDetails: statusDetails,
                                                  stepTimeoutInMinutes: stepTimeoutInMinutes),
                           now: now, inProgressTimeoutMinutes: inProgressTimeoutMinutes)
    }

    /// TIMED_OUT if a timer has run out by `now`; nil otherwise.
    public func timedOut(now: Int64) -> JobExecution? {
        guard let due = timesOutAt, now >= due else { return nil }
        return ended(.timedOut, now: now)
    }

    /// Ended by the server: TIMED_OUT, CANCELED (CancelJob, CancelJobExecution) or REMOVED (the
    /// thing left the job's targets). Nil when the execution is final already.
    public func ended(_ status: JobExecutionStatus, now: Int64) -> JobExecution? {
        guard !self.status.isTerminal else { return nil }
        var next = self
        next.status = status
        next.versionNumber += 1
        next.lastUpdatedAt = now
        next.stepTimeoutAt = nil
        next.inProgressTimeoutAt = nil
        return next
    }
}

// MARK: Retries

/// `jobExecutionsRetryConfig`: how many times an execution that FAILED or TIMED_OUT is queued
/// again, each time as a new execution number.
public struct JobRetryPolicy: Codable, Sendable, Hashable {
    public struct Criteria: Codable, Sendable, Hashable {
        /// "FAILED", "TIMED_OUT" or "ALL".
        public var failureType: String
        /// 0 to 10.
        public var numberOfRetries: Int

        public init(failureType: String, numberOfRetries: Int) {
            self.failureType = failureType
            self.numberOfRetries = numberOfRetries
        }
    }

    public static let failureTypes = ["FAILED", "TIMED_OUT", "ALL"]
    public static let maxRetries = 10

    public var criteriaList: [Criteria]

    public init(criteriaList: [Criteria]) throws(JobsRejection) {
        guard (1...2).contains(criteriaList.count) else {
            throw JobsRejection(.invalidRequest, "jobExecutionsRetryConfig.criteriaList must have 1 or 2 entries")
        }
        var seen = Set<String>()
        for criteria in criteriaList {
            guard Self.failureTypes.contains(criteria.failureType) else {
                throw JobsRejection(.invalidRequest, "retry failureType must be FAILED, TIMED_OUT or ALL, not \(criteria.failureType.prefix(32))")
            }
            guard (0...Self.maxRetries).contains(criteria.numberOfRetries) else {
                throw JobsRejection(.invalidRequest, "numberOfRetries must be 0 to \(Self.maxRetries)")
            }
            guard seen.insert(criteria.failureType).inserted else {
                throw JobsRejection(.invalidRequest, "retry failureType \(criteria.failureType) is given twice")
            }
        }
        if seen.contains("ALL") && seen.count > 1 {
            throw JobsRejection(.invalidRequest, "retry failureType ALL cannot be combined with another")
        }
        self.criteriaList = criteriaList
    }

    /// The next execution of a FAILED or TIMED_OUT one, if the policy has a retry left for it.
    public func retry(of execution: JobExecution, now: Int64) -> JobExecution? {
        let type = execution.status.rawValue
        guard type == "FAILED" || type == "TIMED_OUT" else { return nil }
        let criteria = criteriaList.first { $0.failureType == type } ?? criteriaList.first { $0.failureType == "ALL" }
        guard let criteria else { return nil }
        let counted = criteria.failureType == "ALL" ? "ALL" : type
        let used = execution.retries[counted, default: 0]
        guard used < criteria.numberOfRetries else { return nil }
        var retries = execution.retries
        retries[counted] = used + 1
        return JobExecution(jobId: execution.jobId, thingName: execution.thingName,
                            executionNumber: execution.executionNumber + 1, queuedAt: now, retries: retries)
    }
}
