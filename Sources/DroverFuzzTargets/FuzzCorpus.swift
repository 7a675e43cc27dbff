import Foundation

/// The files of a corpus: a file itself, or every regular file under a directory, sorted.
public enum FuzzCorpus {
    public static func files(at path: String) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [] }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []
        return names.sorted().map { path + "/" + $0 }.filter { file in
            var directory: ObjCBool = false
            return FileManager.default.fileExists(atPath: file, isDirectory: &directory) && !directory.boolValue
                && !file.hasSuffix("README.md")
        }
    }
}
