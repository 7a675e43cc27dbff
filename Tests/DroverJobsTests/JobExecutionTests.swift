@testable import DroverJobs
import Foundation
import Testing

@Suite("Job executions: the state machine, timers, retries, rollout rate and abort")
struct JobExecutionTests {
    let queued = JobExecution(jobId: "fw-2", thingName: "pump-7", queuedAt: 1_000)

    func rejection(_ body: () throws(JobsRejection) -> JobExecution) -> JobsRejection? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test("QUEUED → IN_PROGRESS → SUCCEEDED: versions, times and details as AWS keeps them")
    func happyPath() throws {
        let started = try queued.updated(by: JobExecutionUpdate(status: .inProgress, statusDetails: ["step": "download"], expectedVersion: 1),
                                         now: 1_010, inProgressTimeoutMinutes: 30)
        #expect(started.status == .inProgress && started.versionNumber == 2 && started.startedAt == 1_010)
        #expect(started.statusDetails == ["step": "download"] && started.inProgressTimeoutAt == 1_010 + 1_800)
        #expect(started.secondsBeforeTimedOut(now: 1_070) == 1_740)
        // Details are kept when an update leaves them out, replaced when it gives them.
        let again = try started.updated(by: JobExecutionUpdate(status: .inProgress), now: 1_020)
        #expect(again.statusDetails == ["step": "download"] && again.versionNumber == 3 && again.startedAt == 1_010)
        let done = try again.updated(by: JobExecutionUpdate(status: .succeeded, statusDetails: ["result": "ok"]), now: 1_030)
        #expect(done.status == .succeeded && done.versionNumber == 4 && done.lastUpdatedAt == 1_030)
        #expect(done.statusDetails == ["result": "ok"] && done.timesOutAt == nil && done.inProgressTimeoutAt == nil)
        // A QUEUED execution may also end at once.
        #expect(try queued.updated(by: JobExecutionUpdate(status: .rejected), now: 1_001).status == .rejected)
    }

    @Test("refusals: version mismatch and invalid transitions carry the state; wrong execution number; statuses a device cannot set")
    func refusals() throws {
        let mismatch = rejection { () throws(JobsRejection) in try queued.updated(by: JobExecutionUpdate(status: .inProgress, expectedVersion: 5), now: 1) }
        #expect(mismatch?.code == .versionMismatch && mismatch?.executionState == queued)
        let done = try queued.updated(by: JobExecutionUpdate(status: .succeeded), now: 2)
        for status in JobExecutionStatus.reportable {
            let refused = rejection { () throws(JobsRejection) in try done.updated(by: JobExecutionUpdate(status: status), now: 3) }
            #expect(refused?.code == .invalidStateTransition && refused?.executionState == done)
        }
        for status in [JobExecutionStatus.queued, .timedOut, .canceled, .removed] {
            let refused = rejection { () throws(JobsRejection) in try queued.updated(by: JobExecutionUpdate(status: status), now: 3) }
            #expect(refused?.code == .invalidRequest)
            #expect(refused?.message.contains("IN_PROGRESS, SUCCEEDED, FAILED, REJECTED") == true)
        }
        let number = rejection { () throws(JobsRejection) in try queued.updated(by: JobExecutionUpdate(status: .inProgress, executionNumber: 2), now: 3) }
        #expect(number?.code == .resourceNotFound)
        #expect(try queued.updated(by: JobExecutionUpdate(status: .inProgress, executionNumber: 1), now: 3).versionNumber == 2)
        #expect(JobExecutionStatus(rawValue: "DONE") == nil && JobExecutionStatus(rawValue: "SUCCEEDED") == .succeeded)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(JobExecutionStatus.self, from: Data(#""DONE""#.utf8)) }
    }

    @Test("status details: at most 10, keys of [a-zA-Z0-9:_-] up to 128, values up to 1 024 with no control characters")
    func statusDetailLimits() throws {
        func refused(_ details: [String: String]) -> Bool {
            rejection { () throws(JobsRejection) in try queued.updated(by: JobExecutionUpdate(status: .inProgress, statusDetails: details), now: 1) }?
                .code == .invalidRequest
        }
        let ten = Dictionary(uniqueKeysWithValues: (0..<10).map { ("k\($0)", "v") })
        #expect(!refused(ten) && !refused([:]) && !refused(["a:b_c-D9": String(repeating: "é", count: 1_024)]))
        #expect(refused(ten.merging(["k10": "v"]) { $1 }))
        #expect(refused(["": "v"]) && refused([String(repeating: "k", count: 129): "v"]) && refused(["a b": "v"]) && refused(["ключ": "v"]))
        #expect(refused(["k": ""]) && refused(["k": String(repeating: "v", count: 1_025)]))
        #expect(refused(["k": "line\nbreak"]) && refused(["k": "nul\u{0}"]) && refused(["k": "bidi\u{202E}"]))
        #expect(!refused([String(repeating: "k", count: 128): "v"]))
    }

    @Test("step timer: set from now, reset, stopped with -1; the in-progress timeout runs on; TIMED_OUT when the first runs out")
    func timers() throws {
        let started = try queued.started(now: 100, statusDetails: nil, stepTimeoutInMinutes: 5, inProgressTimeoutMinutes: 60)
        #expect(started.stepTimeoutAt == 400 && started.inProgressTimeoutAt == 3_700 && started.timesOutAt == 400)
        #expect(started.timedOut(now: 399) == nil)
        let timedOut = try #require(started.timedOut(now: 400))
        #expect(timedOut.status == .timedOut && timedOut.versionNumber == started.versionNumber + 1 && timedOut.timesOutAt == nil)
        #expect(timedOut.timedOut(now: 10_000) == nil)
        let reset = try started.updated(by: JobExecutionUpdate(status: .inProgress, stepTimeoutInMinutes: 10), now: 300)
        #expect(reset.stepTimeoutAt == 900 && reset.inProgressTimeoutAt == 3_700 && reset.timedOut(now: 899) == nil)
        let stopped = try reset.updated(by: JobExecutionUpdate(status: .inProgress, stepTimeoutInMinutes: -1), now: 400)
        #expect(stopped.stepTimeoutAt == nil && stopped.timesOutAt == 3_700 && stopped.timedOut(now: 3_700)?.status == .timedOut)
        for minutes: Int64 in [0, -2, 10_081, .max, .min] {
            let refused = rejection { () throws(JobsRejection) in try started.updated(by: JobExecutionUpdate(status: .inProgress, stepTimeoutInMinutes: minutes), now: 1) }
            #expect(refused?.code == .invalidRequest)
        }
        // StartNext takes no -1, and a step timer belongs to IN_PROGRESS only.
        #expect(rejection { () throws(JobsRejection) in try queued.started(now: 1, statusDetails: nil, stepTimeoutInMinutes: -1) }?.code == .invalidRequest)
        #expect(rejection { () throws(JobsRejection) in try started.updated(by: JobExecutionUpdate(status: .succeeded, stepTimeoutInMinutes: 5), now: 1) }?.code == .invalidRequest)
        // A queued execution has no timer running; the server's ends take only pending ones.
        #expect(queued.timesOutAt == nil && queued.ended(.canceled, now: 5)?.status == .canceled)
        #expect(timedOut.ended(.canceled, now: 5) == nil)
    }

    @Test("retries: a new execution number per retry, counted per failure type, none after the last")
    func retries() throws {
        let policy = try JobRetryPolicy(criteriaList: [.init(failureType: "FAILED", numberOfRetries: 2), .init(failureType: "TIMED_OUT", numberOfRetries: 1)])
        var execution = try queued.updated(by: JobExecutionUpdate(status: .failed), now: 10)
        var numbers: [Int64] = []
        while let next = policy.retry(of: execution, now: 20) {
            #expect(next.status == .queued && next.versionNumber == 1 && next.queuedAt == 20)
            numbers.append(next.executionNumber)
            execution = try next.updated(by: JobExecutionUpdate(status: .failed), now: 30)
        }
        #expect(numbers == [2, 3] && execution.retries == ["FAILED": 2])
        let late = try #require(try queued.started(now: 0, statusDetails: nil, stepTimeoutInMinutes: 1).timedOut(now: 60))
        let timedOut = policy.retry(of: late, now: 61)
        #expect(timedOut?.executionNumber == 2 && timedOut?.retries == ["TIMED_OUT": 1])
        #expect(policy.retry(of: try queued.updated(by: JobExecutionUpdate(status: .rejected), now: 1), now: 2) == nil)
        let all = try JobRetryPolicy(criteriaList: [.init(failureType: "ALL", numberOfRetries: 1)])
        let first = try #require(all.retry(of: try queued.updated(by: JobExecutionUpdate(status: .failed), now: 1), now: 2))
        #expect(first.retries == ["ALL": 1])
        #expect(all.retry(of: try #require(try first.started(now: 3, statusDetails: nil, stepTimeoutInMinutes: 1).timedOut(now: 63)), now: 64) == nil)
        #expect(throws: JobsRejection.self) { try JobRetryPolicy(criteriaList: []) }
        #expect(throws: JobsRejection.self) { try JobRetryPolicy(criteriaList: [.init(failureType: "FAILED", numberOfRetries: 11)]) }
        #expect(throws: JobsRejection.self) { try JobRetryPolicy(criteriaList: [.init(failureType: "REJECTED", numberOfRetries: 1)]) }
        #expect(throws: JobsRejection.self) { try JobRetryPolicy(criteriaList: [.init(failureType: "ALL", numberOfRetries: 1), .init(failureType: "FAILED", numberOfRetries: 1)]) }
        #expect(throws: JobsRejection.self) { try JobRetryPolicy(criteriaList: [.init(failureType: "FAILED", numberOfRetries: 1), .init(failureType: "FAILED", numberOfRetries: 2)]) }
    }

    @Test("rollout rate: steady, or exponential by notified or succeeded things, capped; bad settings refused")
    func rolloutRate() throws {
        #expect(try JobRolloutPolicy().ratePerMinute(after: JobProgress()) == nil)
        #expect(try JobRolloutPolicy(maximumPerMinute: 50).ratePerMinute(after: JobProgress(notified: 10_000)) == 50)
        let exponential = try JobRolloutPolicy(maximumPerMinute: 100, exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 2, numberOfNotifiedThings: 20))
        #expect(exponential.ratePerMinute(after: JobProgress(notified: 19)) == 10)
        #expect(exponential.ratePerMinute(after: JobProgress(notified: 20)) == 20)
        #expect(exponential.ratePerMinute(after: JobProgress(notified: 45)) == 40)
        #expect(exponential.ratePerMinute(after: JobProgress(notified: 80)) == 100)
        #expect(exponential.ratePerMinute(after: JobProgress(notified: Int(Int32.max))) == 100)
        let bySuccess = try JobRolloutPolicy(exponentialRate: .init(baseRatePerMinute: 5, incrementFactor: 1.5, numberOfSucceededThings: 10))
        #expect(bySuccess.ratePerMinute(after: JobProgress(notified: 500, succeeded: 9)) == 5)
        #expect(bySuccess.ratePerMinute(after: JobProgress(notified: 500, succeeded: 20)) == 11)
        #expect(bySuccess.ratePerMinute(after: JobProgress(notified: 1_000_000, succeeded: 1_000_000)) == 1_000)
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(maximumPerMinute: 0) }
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(maximumPerMinute: 1_001) }
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 1.05, numberOfNotifiedThings: 1)) }
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 2.25, numberOfNotifiedThings: 1)) }
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 2)) }
        #expect(throws: JobsRejection.self) {
            try JobRolloutPolicy(exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 2, numberOfNotifiedThings: 1, numberOfSucceededThings: 1))
        }
        #expect(throws: JobsRejection.self) { try JobRolloutPolicy(maximumPerMinute: 5, exponentialRate: .init(baseRatePerMinute: 10, incrementFactor: 2, numberOfNotifiedThings: 1)) }
    }

    @Test("abort: fires at the threshold once enough things were notified, per failure type or all; bad settings refused")
    func abort() throws {
        let policy = try JobAbortPolicy(criteriaList: [.init(failureType: "FAILED", thresholdPercentage: 10, minNumberOfExecutedThings: 20)])
        #expect(policy.firing(after: JobProgress(notified: 19, failed: 19)) == nil)
        #expect(policy.firing(after: JobProgress(notified: 20, failed: 1)) == nil)
        #expect(policy.firing(after: JobProgress(notified: 20, failed: 2))?.failureType == "FAILED")
        #expect(policy.firing(after: JobProgress(notified: 200, rejected: 100, timedOut: 100)) == nil)
        let all = try JobAbortPolicy(criteriaList: [.init(failureType: "ALL", thresholdPercentage: 50.5, minNumberOfExecutedThings: 1)])
        #expect(all.firing(after: JobProgress(notified: 200, failed: 50, rejected: 25, timedOut: 25)) == nil)
        #expect(all.firing(after: JobProgress(notified: 200, failed: 50, rejected: 26, timedOut: 25)) != nil)
        var progress = JobProgress()
        progress.count(from: nil, to: .queued)
        progress.count(from: .queued, to: .inProgress)
        progress.count(from: .inProgress, to: .failed)
        #expect(progress == JobProgress(notified: 1, failed: 1))
        for bad in [JobAbortPolicy.Criteria(failureType: "LATE", thresholdPercentage: 1, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", action: "PAUSE", thresholdPercentage: 1, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", thresholdPercentage: 0, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", thresholdPercentage: 100.5, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", thresholdPercentage: 10.999, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", thresholdPercentage: .nan, minNumberOfExecutedThings: 1),
                    .init(failureType: "FAILED", thresholdPercentage: 10, minNumberOfExecutedThings: 0)] {
            #expect(throws: JobsRejection.self) { try JobAbortPolicy(criteriaList: [bad]) }
        }
        #expect(throws: JobsRejection.self) { try JobAbortPolicy(criteriaList: []) }
    }
}
