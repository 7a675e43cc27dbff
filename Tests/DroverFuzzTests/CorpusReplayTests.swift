import DroverFuzzTargets
import Foundation
import Testing

/// The fuzzing corpus and every crash the fuzzers found, replayed through the same entry points
/// on each test run: a regression comes back as a trap here. `Fuzz/regressions/TARGET/` holds
/// one file per crash, named after what it broke.
@Suite("Fuzz corpus and crash regressions")
struct CorpusReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz").path

    static var regressions: [String] {
        FuzzTarget.allCases.flatMap { FuzzCorpus.files(at: "\(root)/regressions/\($0.rawValue)") }
    }

    @Test("every seed of the corpus runs without a trap", arguments: FuzzTarget.allCases)
    func corpus(target: FuzzTarget) throws {
        let files = FuzzCorpus.files(at: "\(Self.root)/corpus/\(target.rawValue)")
        #expect(!files.isEmpty, "the corpus of \(target.rawValue) is empty")
        for file in files { target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file)))) }
    }

    @Test("a crash found by fuzzing stays fixed", arguments: regressions)
    func regression(file: String) throws {
        let target = try #require(FuzzTarget(rawValue: URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent))
        target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
    }
}
