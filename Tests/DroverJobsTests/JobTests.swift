@testable import DroverJobs
import Foundation
import Testing

@Suite("Jobs: what CreateJob accepts, cancel and completion")
struct JobTests {
    let thing = "arn:aws:iot:us-east-1:123456789012:thing/pump-7"

    func job(_ id: String = "fw-2", targets: [String]? = nil, document: String = #"{"operation":"update"}"#,
             selection: Job.TargetSelection = .snapshot, timeout: Int64? = nil) throws(JobsRejection) -> Job {
        try Job(jobId: id, targets: targets ?? [thing], targetSelection: selection, document: document,
                inProgressTimeoutMinutes: timeout, now: 100)
    }

    @Test("ids, targets, documents and timeouts are checked against AWS's limits")
    func limits() throws {
        #expect(try job().status == .inProgress)
        #expect(try job(String(repeating: "a", count: 64)).jobId.count == 64)
        for bad in ["", String(repeating: "a", count: 65), "fw 2", "fw/2", "fw.2", "ü"] {
            #expect(throws: JobsRejection.self) { try job(bad) }
        }
        #expect(throws: JobsRejection.self) { try job(targets: []) }
        #expect(throws: JobsRejection.self) { try job(targets: [thing, thing]) }
        #expect(throws: JobsRejection.self) { try job(targets: (0...Job.maxTargets).map { "arn:aws:iot:us-east-1:123456789012:thing/t\($0)" }) }
        #expect(throws: JobsRejection.self) { try job(document: "") }
        #expect(throws: JobsRejection.self) { try job(document: String(repeating: "x", count: Job.maxDocumentBytes + 1)) }
        let largest = #"{"a":""# + String(repeating: "x", count: Job.maxDocumentBytes - 8) + #""}"#
        #expect(try job(document: largest).document.utf8.count == Job.maxDocumentBytes)
        for bad in ["not json", "[1]", #""text""#, #"{"a":"#] {
            #expect(throws: JobsRejection.self) { try job(document: bad) }
        }
        #expect(throws: JobsRejection.self) { try job(timeout: 0) }
        #expect(throws: JobsRejection.self) { try job(timeout: 10_081) }
        let decoded = try JSONDecoder().decode(Job.self, from: JSONEncoder().encode(try job(timeout: 30)))
        #expect(decoded == (try job(timeout: 30)))
    }

    @Test("cancel: QUEUED executions always, IN_PROGRESS ones with force; a forced cancel after a plain one; none after completion")
    func cancel() throws {
        let open = try job()
        let canceled = try open.canceled(reasonCode: "bad-build", comment: "rolled back", force: false, now: 200)
        #expect(canceled.status == .canceled && canceled.reasonCode == "bad-build" && canceled.completedAt == 200)
        #expect(throws: JobsRejection.self) { try canceled.canceled(reasonCode: nil, comment: nil, force: false, now: 201) }
        let forced = try canceled.canceled(reasonCode: nil, comment: nil, force: true, now: 202)
        #expect(forced.forceCanceled == true && forced.reasonCode == "bad-build" && forced.comment == "rolled back")
        #expect(throws: JobsRejection.self) { try forced.canceled(reasonCode: nil, comment: nil, force: true, now: 203) }
        #expect(throws: JobsRejection.self) { try open.canceled(reasonCode: String(repeating: "r", count: 129), comment: nil, force: false, now: 1) }
        let execution = JobExecution(jobId: "fw-2", thingName: "pump-7", queuedAt: 0)
        let running = try execution.updated(by: JobExecutionUpdate(status: .inProgress), now: 1)
        #expect(Job.cancels(execution, force: false) && !Job.cancels(running, force: false) && Job.cancels(running, force: true))
        #expect(!Job.cancels(try running.updated(by: JobExecutionUpdate(status: .succeeded), now: 2), force: true))
        let done = try #require(open.completedIfDone(pending: 0, now: 300))
        #expect(done.status == .completed && open.completedIfDone(pending: 1, now: 300) == nil)
        #expect(throws: JobsRejection.self) { try done.canceled(reasonCode: nil, comment: nil, force: true, now: 301) }
        #expect(try job(selection: .continuous).completedIfDone(pending: 0, now: 300) == nil)
    }
}
