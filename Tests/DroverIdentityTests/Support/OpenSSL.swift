import Foundation

/// Runs the system's `openssl`, the independent implementation the CA's output is checked against.
/// Tests that need it are disabled, not failed, on machines without it.
enum OpenSSL {
    static let path = "/usr/bin/openssl"

    static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: Self.path) }

    struct Failure: Error, CustomStringConvertible {
        var arguments: [String]
        var status: Int32
        var output: String
        var description: String { "openssl \(arguments.joined(separator: " ")) exited \(status): \(output)" }
    }

    /// Runs `openssl arguments` in `directory` and returns what it printed (stdout, then stderr).
    /// Throws when it exits with a non-zero status, with its output in the error.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL) throws -> String {
        let (status, output) = try Self.status(arguments, in: directory)
        guard status == 0 else {
            throw Failure(arguments: arguments, status: status, output: output)
        }
        return output
    }

    /// Runs `openssl arguments` and returns its exit status and output, whatever the status.
    static func status(_ arguments: [String], in directory: URL) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.path)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A fresh directory for one test's files, removed when the body returns.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("drover-identity-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}

extension URL {
    /// Writes `text` to the file `name` in this directory and returns the file's name, for openssl's arguments.
    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        try text.write(to: self.appendingPathComponent(name), atomically: true, encoding: .utf8)
        return name
    }

    func read(_ name: String) throws -> String {
        try String(contentsOf: self.appendingPathComponent(name), encoding: .utf8)
    }
}

/// PEM text to bytes and back, so tests can alter a DER structure the way an attacker would.
enum PEMText {
    static func der(of pem: String) -> [UInt8]? {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Data(base64Encoded: body).map { Array($0) }
    }

    static func pem(label: String, der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n"
    }
}

/// A moment with whole seconds, because X.509 times have no fractions and tests compare dates exactly.
func wholeSecondsNow() -> Date {
    Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
}
