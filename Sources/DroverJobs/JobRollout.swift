/// The counts a job's rollout and abort rules are decided on: how many things were notified
/// (their execution was queued and offered), and how the executions ended.
public struct JobProgress: Codable, Sendable, Hashable {
    public var notified = 0
    public var succeeded = 0
    public var failed = 0
    public var rejected = 0
    public var timedOut = 0

    public init(notified: Int = 0, succeeded: Int = 0, failed: Int = 0, rejected: Int = 0, timedOut: Int = 0) {
        self.notified = notified
        self.succeeded = succeeded
        self.failed = failed
        self.rejected = rejected
        self.timedOut = timedOut
    }

    /// Counts an execution's move from `old` to `new` (nil: it did not exist).
    public mutating func count(from old: JobExecutionStatus?, to new: JobExecutionStatus) {
        if old == nil { notified += 1 }
        guard old != new else { return }
        switch new {
        case .succeeded: succeeded += 1
        case .failed: failed += 1
        case .rejected: rejected += 1
        case .timedOut: timedOut += 1
        default: break
        }
    }
}

/// `jobExecutionsRolloutConfig`: how many executions may be started (notified) per minute,
/// either a steady `maximumPerMinute` or an `exponentialRate` that starts at
/// `baseRatePerMinute` and grows by `incrementFactor` each time the number of things notified
/// (or succeeded) since the last step reaches the criteria, up to `maximumPerMinute`.
public struct JobRolloutPolicy: Codable, Sendable, Hashable {
    public struct ExponentialRate: Codable, Sendable, Hashable {
        public var baseRatePerMinute: Int
        public var incrementFactor: Double
        public var numberOfNotifiedThings: Int?
        public var numberOfSucceededThings: Int?

        public init(baseRatePerMinute: Int, incrementFactor: Double, numberOfNotifiedThings: Int? = nil, numberOfSucceededThings: Int? = nil) {
            self.baseRatePerMinute = baseRatePerMinute
            self.incrementFactor = incrementFactor
            self.numberOfNotifiedThings = numberOfNotifiedThings
            self.numberOfSucceededThings = numberOfSucceededThings
        }
    }

    public static let perMinute: ClosedRange<Int> = 1...1000
    public static let factors: ClosedRange<Double> = 1.1...5
    public static let criteria: ClosedRange<Int> = 1...Int(Int32.max)

    /// Nil: no limit but the server's own.
    public var maximumPerMinute: Int?
    public var exponentialRate: ExponentialRate?

    public init(maximumPerMinute: Int? = nil, exponentialRate: ExponentialRate? = nil) throws(JobsRejection) {
        if let maximum = maximumPerMinute, !Self.perMinute.contains(maximum) {
            throw JobsRejection(.invalidRequest, "maximumPerMinute must be 1 to 1000")
        }
        if let rate = exponentialRate {
            guard Self.perMinute.contains(rate.baseRatePerMinute) else {
                throw JobsRejection(.invalidRequest, "baseRatePerMinute must be 1 to 1000")
            }
            guard Self.factors.contains(rate.incrementFactor), (rate.incrementFactor * 10).rounded() == rate.incrementFactor * 10 else {
                throw JobsRejection(.invalidRequest, "incrementFactor must be 1.1 to 5, with one digit after the point")
            }
            guard (rate.numberOfNotifiedThings == nil) != (rate.numberOfSucceededThings == nil) else {
                throw JobsRejection(.invalidRequest, "rateIncreaseCriteria needs exactly one of numberOfNotifiedThings and numberOfSucceededThings")
            }
            guard Self.criteria.contains(rate.numberOfNotifiedThings ?? rate.numberOfSucceededThings ?? 0) else {
                throw JobsRejection(.invalidRequest, "rateIncreaseCriteria's number must be at least 1")
            }
            if let maximum = maximumPerMinute, maximum < rate.baseRatePerMinute {
                throw JobsRejection(.invalidRequest, "maximumPerMinute must not be below baseRatePerMinute")
            }
        }
        self.maximumPerMinute = maximumPerMinute
        self.exponentialRate = exponentialRate
    }

    /// Executions that may be notified per minute once the job has made `progress`. Each full
    /// step of the criteria multiplies the base rate by the factor (steps counted from the
    /// start, so that the rate is a function of the counts alone and survives a restart).
    public func ratePerMinute(after progress: JobProgress) -> Int? {
        guard let rate = exponentialRate else { return maximumPerMinute }
        let cap = Double(maximumPerMinute ?? Self.perMinute.upperBound)
        let done = rate.numberOfNotifiedThings != nil ? progress.notified : progress.succeeded
        let step = rate.numberOfNotifiedThings ?? rate.numberOfSucceededThings ?? 1
        var perMinute = Double(rate.baseRatePerMinute)
        var steps = done / max(step, 1)
        while steps > 0 && perMinute < cap {
            perMinute *= rate.incrementFactor
            steps -= 1
        }
        return Int(min(perMinute, cap))
    }
}

/// `abortConfig`: the job is canceled once at least `minNumberOfExecutedThings` things have
/// been notified and the executions of `failureType` make up `thresholdPercentage` of them.
public struct JobAbortPolicy: Codable, Sendable, Hashable {
    public struct Criteria: Codable, Sendable, Hashable {
        /// "FAILED", "REJECTED", "TIMED_OUT" or "ALL".
        public var failureType: String
        /// "CANCEL", the only action AWS has.
        public var action: String
        public var thresholdPercentage: Double
        public var minNumberOfExecutedThings: Int

        public init(failureType: String, action: String = "CANCEL", thresholdPercentage: Double, minNumberOfExecutedThings: Int) {
            self.failureType = failureType
            self.action = action
            self.thresholdPercentage = thresholdPercentage
            self.minNumberOfExecutedThings = minNumberOfExecutedThings
        }
    }

    public static let failureTypes = ["FAILED", "REJECTED", "TIMED_OUT", "ALL"]

    public var criteriaList: [Criteria]

    public init(criteriaList: [Criteria]) throws(JobsRejection) {
        guard (1...4).contains(criteriaList.count) else {
            throw JobsRejection(.invalidRequest, "abortConfig.criteriaList must have 1 to 4 entries")
        }
        for criteria in criteriaList {
            guard Self.failureTypes.contains(criteria.failureType) else {
                throw JobsRejection(.invalidRequest, "abort failureType must be FAILED, REJECTED, TIMED_OUT or ALL, not \(criteria.failureType.prefix(32))")
            }
            guard criteria.action == "CANCEL" else {
                throw JobsRejection(.invalidRequest, "abort action must be CANCEL")
            }
            let hundredths = criteria.thresholdPercentage * 100
            guard criteria.thresholdPercentage > 0, criteria.thresholdPercentage <= 100, hundredths.rounded() == hundredths else {
                throw JobsRejection(.invalidRequest, "thresholdPercentage must be above 0 and at most 100, with at most two digits after the point")
            }
            guard criteria.minNumberOfExecutedThings >= 1 else {
                throw JobsRejection(.invalidRequest, "minNumberOfExecutedThings must be at least 1")
            }
        }
        self.criteriaList = criteriaList
    }

    /// The first criteria that `progress` meets, if any: the job is to be canceled.
    public func firing(after progress: JobProgress) -> Criteria? {
        criteriaList.first { criteria in
            guard progress.notified >= criteria.minNumberOfExecutedThings, progress.notified > 0 else { return false }
            let failures = switch criteria.failureType {
            case "FAILED": progress.failed
            case "REJECTED": progress.rejected
            case "TIMED_OUT": progress.timedOut
            default: progress.failed + progress.rejected + progress.timedOut
            }
            return Double(failures) * 100 >= criteria.thresholdPercentage * Double(progress.notified)
        }
    }
}
