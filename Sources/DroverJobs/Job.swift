/// A job: a document for a set of things (things and thing groups), with the rules for how its
/// executions roll out, time out, retry and abort. Times are epoch seconds.
public struct Job: Codable, Sendable, Hashable {
    /// AWS's job status. DELETION_IN_PROGRESS is not kept: a delete is one transaction here.
    public struct Status: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        public static let inProgress = Status(rawValue: "IN_PROGRESS")
        public static let canceled = Status(rawValue: "CANCELED")
        public static let completed = Status(rawValue: "COMPLETED")
        public static let scheduled = Status(rawValue: "SCHEDULED")

        public var description: String { rawValue }
    }

    /// SNAPSHOT: the things targeted when the job is made. CONTINUOUS: also things that join a
    /// targeted group later.
    public enum TargetSelection: String, Codable, Sendable {
        case snapshot = "SNAPSHOT"
        case continuous = "CONTINUOUS"
    }

    public var jobId: String
    /// Thing and thing group ARNs, as CreateJob takes them.
    public var targets: [String]
    public var targetSelection: TargetSelection
    public var document: String
    public var description: String?
    public var status: Status
    public var rollout: JobRolloutPolicy?
    public var abort: JobAbortPolicy?
    public var retry: JobRetryPolicy?
    public var inProgressTimeoutMinutes: Int64?
    public var createdAt: Int64
    public var lastUpdatedAt: Int64
    public var completedAt: Int64?
    /// Why it was canceled: CancelJob's `reasonCode` and `comment`, or the abort's criteria.
    public var reasonCode: String?
    public var comment: String?
    /// Set when it was canceled with `force`, which also cancels IN_PROGRESS executions.
    public var forceCanceled: Bool?

    public init(jobId: String, targets: [String], targetSelection: TargetSelection = .snapshot, document: String,
                description: String? = nil, rollout: JobRolloutPolicy? = nil, abort: JobAbortPolicy? = nil,
                retry: JobRetryPolicy? = nil, inProgressTimeoutMinutes: Int64? = nil, now: Int64) throws(JobsRejection) {
        try Job.check(jobId: jobId)
        guard (1...Job.maxTargets).contains(targets.count) else {
            throw JobsRejection(.invalidRequest, "targets must name 1 to \(Job.maxTargets) things or thing groups")
        }
        guard Set(targets).count == targets.count else { throw JobsRejection(.invalidRequest, "targets names a target twice") }
        guard !document.isEmpty, document.utf8.count <= Job.maxDocumentBytes else {
            throw JobsRejection(.invalidRequest, "document must be 1 to \(Job.maxDocumentBytes) bytes")
        }
        guard JobsReply.jobDocument(document) != nil else {
            throw JobsRejection(.invalidRequest, "document must be a JSON object")
        }
        if let description, description.count > Job.maxDescriptionLength {
            throw JobsRejection(.invalidRequest, "description must be at most \(Job.maxDescriptionLength) characters")
        }
        if let minutes = inProgressTimeoutMinutes, !JobLimits.timeoutMinutes.contains(minutes) {
            throw JobsRejection(.invalidRequest, "inProgressTimeoutInMinutes must be 1 to \(JobLimits.timeoutMinutes.upperBound)")
        }
        self.jobId = jobId
        self.targets = targets
        self.targetSelection = targetSelection
        self.document = document
        self.description = description
        self.status = .inProgress
        self.rollout = rollout
        self.abort = abort
        self.retry = retry
        self.inProgressTimeoutMinutes = inProgressTimeoutMinutes
        self.createdAt = now
        self.lastUpdatedAt = now
    }

    /// AWS's limits.
    public static let maxJobIdLength = 64
    public static let maxTargets = 5_000
    public static let maxDocumentBytes = 32_768
    public static let maxDescriptionLength = 2_028

    /// A job id is 1 to 64 of `[a-zA-Z0-9_-]`.
    public static func check(jobId: String) throws(JobsRejection) {
        let bytes = jobId.utf8
        guard (1...maxJobIdLength).contains(bytes.count), bytes.allSatisfy(isIdByte) else {
            throw JobsRejection(.invalidRequest, "a job id must be 1 to \(maxJobIdLength) of a-z, A-Z, 0-9, '_' and '-'")
        }
    }

    private static func isIdByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// CancelJob: from IN_PROGRESS or SCHEDULED. A canceled job may be canceled again with
    /// `force` (to reach its IN_PROGRESS executions too); a completed one may not.
    public func canceled(reasonCode: String?, comment: String?, force: Bool, now: Int64) throws(JobsRejection) -> Job {
        if status == .completed {
            throw JobsRejection(.invalidStateTransition, "job \(jobId) is COMPLETED; it cannot be canceled")
        }
        if status == .canceled && (!force || forceCanceled == true) {
            throw JobsRejection(.invalidStateTransition, "job \(jobId) is CANCELED already\(force ? "" : "; use force to cancel its IN_PROGRESS executions too")")
        }
        if let reasonCode, reasonCode.utf8.count > 128 {
            throw JobsRejection(.invalidRequest, "reasonCode must be at most 128 characters")
        }
        if let comment, comment.count > 2_028 {
            throw JobsRejection(.invalidRequest, "comment must be at most 2028 characters")
        }
        var next = self
        next.status = .canceled
        next.reasonCode = reasonCode ?? self.reasonCode
        next.comment = comment ?? self.comment
        next.forceCanceled = force ? true : forceCanceled
        next.lastUpdatedAt = now
        next.completedAt = now
        return next
    }

    /// The executions a cancel ends: QUEUED ones always, IN_PROGRESS ones only with `force`.
    public static func cancels(_ execution: JobExecution, force: Bool) -> Bool {
        execution.status == .queued || (force && execution.status == .inProgress)
    }

    /// A SNAPSHOT job is COMPLETED once every execution is final; a CONTINUOUS one stays open
    /// for things that join later.
    public func completedIfDone(pending: Int, now: Int64) -> Job? {
        guard status == .inProgress, targetSelection == .snapshot, pending == 0 else { return nil }
        var next = self
        next.status = .completed
        next.lastUpdatedAt = now
        next.completedAt = now
        return next
    }
}
