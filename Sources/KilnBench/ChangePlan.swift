import Foundation
import KilnCore

/// Which files `kiln bench` edits: for a sample of processors, a file only that processor reads;
/// for the libraries, a file of each group of files several processors read together.
package struct ChangePlan: Sendable, Equatable {
    /// One edit: the file and the processors that read it.
    package struct Edit: Sendable, Equatable {
        /// Relative to the repository root.
        package var file: String
        /// The processor the edit is for (one processor's edit), or the library's folder.
        package var subject: String
        package var readers: Int
    }

    package var processors: [Edit] = []
    package var libraries: [Edit] = []

    /// - Parameters:
    ///   - reads: each processor's ref and the files it reads, relative to the root.
    ///   - sample: processors (and libraries) to edit, spread over the processors in ref order.
    ///   - isText: whether a file may take an appended newline harmlessly; text files are
    ///     preferred to binary ones.
    package init(reads: [(ref: String, files: [String])], sample: Int, isText: (String) -> Bool) {
        var readers = [String: [String]]()
        for (ref, files) in reads { for file in files { readers[file, default: []].append(ref) } }
        func better(_ a: String, _ b: String) -> Bool {
            let (ta, tb) = (isText(a), isText(b))
            if ta != tb { return ta }
            return a < b
        }

        // One processor's edit: the file it reads that the fewest others read.
        let candidates = reads.filter { !$0.files.isEmpty }.sorted { $0.ref < $1.ref }
        for index in Self.spread(sample, over: candidates.count) {
            let (ref, files) = candidates[index]
            let fewest = files.map { readers[$0]?.count ?? 1 }.min() ?? 1
            if let file = files.filter({ readers[$0]?.count == fewest }).min(by: better) {
                processors.append(Edit(file: file, subject: ref, readers: fewest))
            }
        }

        // Libraries: files read by two or more processors, grouped by who reads them; the groups
        // most processors read first.
        var groups = [[String]: [String]]()
        for (file, refs) in readers where refs.count > 1 { groups[refs.sorted(), default: []].append(file) }
        let ordered = groups.sorted { a, b in
            a.key.count != b.key.count
                ? a.key.count > b.key.count : Self.commonFolder(a.value) < Self.commonFolder(b.value)
        }
        for (refs, files) in ordered.prefix(sample) {
            guard let file = files.min(by: better) else { continue }
            libraries.append(Edit(file: file, subject: Self.commonFolder(files), readers: refs.count))
        }
    }

    /// `count` indices spread evenly over `0..<total` (all of them when `count >= total`).
    static func spread(_ count: Int, over total: Int) -> [Int] {
        guard total > 0, count > 0 else { return [] }
        guard count < total else { return Array(0..<total) }
        return (0..<count).map { $0 * total / count }
    }

    /// The deepest folder holding every file (`.` for none in common).
    static func commonFolder(_ files: [String]) -> String {
        guard var common = files.first.map({ $0.split(separator: "/").dropLast() }) else { return "." }
        for file in files.dropFirst() {
            let parts = file.split(separator: "/").dropLast()
            var length = 0
            while length < min(common.count, parts.count)
                && common[common.startIndex + length] == parts[parts.startIndex + length]
            {
                length += 1
            }
            common = common.prefix(length)
        }
        return common.isEmpty ? "." : common.joined(separator: "/")
    }

    /// Whether the first 8 KiB of `path` hold no NUL byte.
    package static func looksLikeText(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 8 << 10)) ?? Data()
        return !head.contains(0)
    }

    /// Appends a newline to `path`: a new digest for the file, valid in nearly any text format.
    package static func edit(_ path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw BenchError.cannotEdit(path)
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\n".utf8))
    }
}
