import DroverFuzzTargets
import Foundation

// Built two ways (see scripts/fuzz.sh):
// - with `-sanitize=fuzzer,address -D FUZZING`: a libFuzzer binary; the target comes from
//   DROVER_FUZZ_TARGET (codec, connection, shadow, policy, sigv4);
// - normally: `drover-fuzz TARGET FILE_OR_DIR...` runs each input once, to replay a corpus or
//   a crash without the fuzzing runtime.

#if FUZZING
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    if selected == nil {
        let name = ProcessInfo.processInfo.environment["DROVER_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("set DROVER_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue))")
        }
        selected = target
    }
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    selected?.run(bytes)
    return 0
}
#else
@main
struct Replay {
    static func main() throws {
        var arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: drover-fuzz {\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))} FILE_OR_DIR...")
            exit(2)
        }
        arguments.removeFirst()
        var inputs = 0
        for path in arguments {
            for file in FuzzCorpus.files(at: path) {
                target.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
                inputs += 1
            }
        }
        print("\(target.rawValue): \(inputs) inputs, no crash")
    }
}
#endif
