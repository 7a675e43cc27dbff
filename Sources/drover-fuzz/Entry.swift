import DroverFuzzTargets
import Foundation

// Built two ways (see scripts/fuzz.sh):
// - with `-sanitize=fuzzer,address -D FUZZING`: a libFuzzer binary; the target comes from
//   DROVER_FUZZ_TARGET (codec, connection, shadow, policy, sigv4), the arguments are
//   libFuzzer's;
// - normally: `drover-fuzz TARGET FILE_OR_DIR...` runs each input once, to replay a corpus or
//   a crash without the fuzzing runtime.

#if FUZZING
/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer). SwiftPM links an executable to
/// an entry point of its own (`main` is defined as `drover_fuzz_main`), which hands over to it.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) private var selected: FuzzTarget = .codec

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    selected.run(start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}

@_cdecl("drover_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    let name = ProcessInfo.processInfo.environment["DROVER_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        print("set DROVER_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        return 2
    }
    selected = target
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { start, count in fuzzOne(start, count) }
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
