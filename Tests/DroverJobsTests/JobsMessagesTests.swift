@testable import DroverJobs
import DroverShadow
import Foundation
import Testing

@Suite("Jobs messages: device requests read from hostile bytes, replies in AWS's shapes")
struct JobsMessagesTests {
    func parse(_ text: String) -> Result<JobsRequest, JobsRejection> { JobsRequest.parse(Array(text.utf8)) }

    func object(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("an update as the v2 SDK sends it, and as the v1 SDK sends it (numbers as strings)")
    func requests() throws {
        let v2 = try parse(#"{"status":"IN_PROGRESS","statusDetails":{"step":"1"},"expectedVersion":2,"executionNumber":1,"#
            + #""includeJobExecutionState":true,"includeJobDocument":false,"stepTimeoutInMinutes":5,"clientToken":"t-1"}"#).get()
        #expect(v2.status == .inProgress && v2.statusDetails == ["step": "1"] && v2.expectedVersion == 2 && v2.executionNumber == 1)
        #expect(v2.includeJobExecutionState == true && v2.includeJobDocument == false && v2.stepTimeoutInMinutes == 5 && v2.clientToken == "t-1")
        let v1 = try parse(#"{"status":"SUCCEEDED","expectedVersion":"3","executionNumber":"1"}"#).get()
        #expect(v1.expectedVersion == 3 && v1.executionNumber == 1 && v1.clientToken == nil)
        #expect(try JobsRequest.parse([UInt8]()).get() == JobsRequest())
        #expect(try parse("{}").get() == JobsRequest() && (try parse(#"{"clientToken":null}"#).get()) == JobsRequest())
    }

    @Test("bad requests: InvalidJson for what is not a JSON object, InvalidRequest for wrong fields, with the token echoed")
    func badRequests() {
        func code(_ text: String) -> JobsRejection.Code? {
            if case .failure(let refusal) = parse(text) { return refusal.code }
            return nil
        }
        for text in ["{", "[]", "\"x\"", "nul", "{\"a\":1}x", String(repeating: "[", count: 100)] {
            #expect(code(text) == .invalidJSON, "\(text.prefix(20))")
        }
        #expect(code(#"{"a":""# + String(repeating: "x", count: JobsRequest.maxBytes) + #""}"#) == .invalidRequest)
        #expect(JobsRequest.parse([0xFF, 0xFE]).failureCode == .invalidJSON)
        for text in [#"{"status":"DONE"}"#, #"{"status":1}"#, #"{"statusDetails":{"k":1}}"#, #"{"statusDetails":[]}"#,
                     #"{"statusDetails":{"bad key":"v"}}"#, #"{"expectedVersion":1.5}"#, #"{"expectedVersion":"two"}"#,
                     #"{"expectedVersion":"99999999999999999999999"}"#, #"{"executionNumber":true}"#,
                     #"{"includeJobDocument":"yes"}"#, #"{"clientToken":5}"#,
                     #"{"clientToken":""# + String(repeating: "t", count: 65) + #""}"#] {
            #expect(code(text) == .invalidRequest, "\(text)")
        }
        if case .failure(let refusal) = parse(#"{"clientToken":"abc","expectedVersion":"x"}"#) {
            #expect(refusal.clientToken == "abc")
        } else {
            Issue.record("expected a refusal")
        }
    }

    @Test("replies: execution data, summaries, the update's state, notify and notify-next, rejections")
    func replies() throws {
        var execution = JobExecution(jobId: "fw-2", thingName: "pump-7", queuedAt: 1_000)
        execution = try execution.started(now: 1_010, statusDetails: ["step": "download"], stepTimeoutInMinutes: 2)
        let document = #"{"operation":"update","url":"https://x/fw.bin","size":1024}"#
        let described = try object(JobsReply.described(execution, document: document, clientToken: "t", now: 1_070))
        #expect(described["timestamp"] as? Int == 1_070 && described["clientToken"] as? String == "t")
        let data = try #require(described["execution"] as? [String: Any])
        #expect(data["jobId"] as? String == "fw-2" && data["thingName"] as? String == "pump-7" && data["status"] as? String == "IN_PROGRESS")
        #expect(data["queuedAt"] as? Int == 1_000 && data["startedAt"] as? Int == 1_010 && data["lastUpdatedAt"] as? Int == 1_010)
        #expect(data["versionNumber"] as? Int == 2 && data["executionNumber"] as? Int == 1)
        #expect(data["approximateSecondsBeforeTimedOut"] as? Int == 60)
        #expect(data["statusDetails"] as? [String: String] == ["step": "download"])
        #expect((data["jobDocument"] as? [String: Any])?["size"] as? Int == 1_024)
        #expect(try object(JobsReply.described(nil, document: nil, clientToken: nil, now: 5)).keys.sorted() == ["timestamp"])

        let queued = JobExecution(jobId: "cfg-1", thingName: "pump-7", queuedAt: 900)
        let pending = try object(JobsReply.pending([execution, queued], clientToken: nil, now: 1_100))
        #expect((pending["inProgressJobs"] as? [[String: Any]])?.map { $0["jobId"] as? String } == ["fw-2"])
        let summary = try #require((pending["queuedJobs"] as? [[String: Any]])?.first)
        #expect(summary.keys.sorted() == ["executionNumber", "jobId", "lastUpdatedAt", "queuedAt", "versionNumber"])

        let notify = try object(JobsReply.notify([execution, queued], now: 1_100))
        let jobs = try #require(notify["jobs"] as? [String: [[String: Any]]])
        #expect(jobs.keys.sorted() == ["IN_PROGRESS", "QUEUED"] && jobs["QUEUED"]?.first?["jobId"] as? String == "cfg-1")
        #expect(try object(JobsReply.notify([], now: 1)).keys.sorted() == ["jobs", "timestamp"])
        let next = try object(JobsReply.notifyNext(queued, document: document, now: 1_200))
        #expect((next["execution"] as? [String: Any])?["status"] as? String == "QUEUED")
        #expect(try object(JobsReply.notifyNext(nil, document: nil, now: 1_200)).keys.sorted() == ["timestamp"])

        let updated = try object(JobsReply.updated(execution, includeState: true, document: nil, clientToken: "u", now: 1_300))
        #expect((updated["executionState"] as? [String: Any])?["versionNumber"] as? Int == 2 && updated["jobDocument"] == nil)
        #expect(try object(JobsReply.updated(execution, includeState: false, document: nil, clientToken: nil, now: 1)).keys.sorted() == ["timestamp"])

        let mismatch = JobsRejection(.versionMismatch, "the job execution is at version 2, not 1", executionState: execution, clientToken: "v")
        let rejected = try object(JobsReply.rejected(mismatch, now: 1_400))
        #expect(rejected["code"] as? String == "VersionMismatch" && rejected["clientToken"] as? String == "v")
        #expect((rejected["executionState"] as? [String: Any])?["status"] as? String == "IN_PROGRESS")
        #expect(JobsReply.jobDocument("[1]") == nil && JobsReply.jobDocument("{}") == .object([:]))
    }
}

extension Result where Failure == JobsRejection {
    var failureCode: JobsRejection.Code? {
        if case .failure(let refusal) = self { return refusal.code }
        return nil
    }
}
