import Foundation
import KilnCore
import KilnTestSupport
import Testing

@Suite("Atomic files and the build epoch")
struct FileTests {
    @Test("a committed write replaces the file whole and leaves no temporary file")
    func commit() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/out.json"
        try AtomicFileWriter.write(Array("old".utf8), to: path)
        let writer = try AtomicFileWriter(destination: path)
        try writer.write(Array("new content".utf8))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "old", "readers see the old file until commit")
        try writer.commit()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new content")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["out.json"])
    }

    @Test("resolution walks a path as the kernel does: every directory, every link followed, the end; a loop is nil")
    func resolution() throws {
        let directory = try TemporaryDirectory()
        let root = FilePaths.realPath(directory.path) ?? directory.path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/v1", withIntermediateDirectories: true)
        try "x".write(toFile: root + "/v1/Dockerfile", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: root + "/cur", withDestinationPath: "v1")
        try fm.createDirectory(atPath: root + "/p", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: root + "/p/Dockerfile", withDestinationPath: "../cur/Dockerfile")
        let steps = try #require(FilePaths.resolution(of: root + "/p/Dockerfile"))
        let links = steps.compactMap { if case .link(let path) = $0 { path } else { nil } }
        #expect(links == [root + "/p/Dockerfile", root + "/cur"])
        #expect(steps.last == .end(root + "/v1/Dockerfile"))
        #expect(steps.contains { if case .directory(root + "/v1", _) = $0 { true } else { false } })

        // A missing component ends the walk there.
        #expect(FilePaths.resolution(of: root + "/nope/Dockerfile")?.last == .end(root + "/nope"))
        try fm.createSymbolicLink(atPath: root + "/a", withDestinationPath: "b")
        try fm.createSymbolicLink(atPath: root + "/b", withDestinationPath: "a")
        #expect(FilePaths.resolution(of: root + "/a/x") == nil)
    }

    @Test("removeTree removes a directory with everything in it, and does not follow symlinks")
    func removeTree() throws {
        let directory = try TemporaryDirectory()
        let outside = directory.path + "/keep"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "kept".write(toFile: outside + "/file", atomically: false, encoding: .utf8)
        let tree = directory.path + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/a/b", withIntermediateDirectories: true)
        try "x".write(toFile: tree + "/a/b/file", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: tree + "/link", withDestinationPath: outside)
        FilePaths.removeTree(tree)
        #expect(!FileManager.default.fileExists(atPath: tree))
        #expect(FileManager.default.fileExists(atPath: outside + "/file"))
    }

    @Test("a write that is not committed leaves nothing behind")
    func discard() throws {
        let directory = try TemporaryDirectory()
        do {
            let writer = try AtomicFileWriter(destination: directory.path + "/never")
            try writer.write(Array("partial".utf8))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test(
        "SOURCE_DATE_EPOCH is read strictly",
        arguments: [
            ([:], Int64(0)), (["SOURCE_DATE_EPOCH": ""], 0), (["SOURCE_DATE_EPOCH": "1700000000"], 1_700_000_000),
        ] as [([String: String], Int64)])
    func epoch(environment: [String: String], expected: Int64) throws {
        #expect(try SourceDateEpoch.resolve(environment: environment) == expected)
    }

    @Test(
        "a SOURCE_DATE_EPOCH that is not seconds is an error naming it", arguments: ["-1", "1.5", "yesterday", " 12"])
    func badEpoch(text: String) {
        #expect(throws: EpochError.invalid(text)) {
            try SourceDateEpoch.resolve(environment: ["SOURCE_DATE_EPOCH": text])
        }
    }

    @Test("epochs print as RFC 3339 UTC")
    func rfc3339() {
        #expect(SourceDateEpoch.rfc3339(0) == "1970-01-01T00:00:00Z")
        #expect(SourceDateEpoch.rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z")
    }
}

@Suite("Resolving paths and listing folders")
struct PathResolutionTests {
    /// A tree with a folder link in the middle, relative and absolute file links, a dangling
    /// link, and a link out of the tree.
    static func tree() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        let files = FileManager.default
        try files.createDirectory(atPath: directory.path + "/repo/real/deep", withIntermediateDirectories: true)
        try files.createDirectory(atPath: directory.path + "/outside", withIntermediateDirectories: true)
        try "x".write(toFile: directory.path + "/repo/real/deep/file", atomically: false, encoding: .utf8)
        try "y".write(toFile: directory.path + "/outside/secret", atomically: false, encoding: .utf8)
        try files.createSymbolicLink(atPath: directory.path + "/repo/folder-link", withDestinationPath: "real")
        try files.createSymbolicLink(atPath: directory.path + "/repo/real/file-link", withDestinationPath: "deep/file")
        try files.createSymbolicLink(
            atPath: directory.path + "/repo/absolute-link", withDestinationPath: directory.path + "/repo/real/deep")
        try files.createSymbolicLink(atPath: directory.path + "/repo/dangling", withDestinationPath: "nowhere")
        try files.createSymbolicLink(atPath: directory.path + "/repo/out", withDestinationPath: "../outside")
        return directory
    }

    @Test("a resolver that remembers folders agrees with realpath(3), link by link and after it has remembered")
    func agreesWithRealpath() throws {
        let directory = try Self.tree()
        let root = try #require(FilePaths.realPath(directory.path))
        let paths = [
            "repo", "repo/real/deep/file", "repo/folder-link/deep/file", "repo/real/file-link",
            "repo/folder-link/file-link", "repo/absolute-link/file", "repo/dangling", "repo/out/secret",
            "repo/out/missing", "repo/missing/file", "repo/real/deep/file/below", "repo/folder-link",
        ].map { root + "/" + $0 }
        let resolver = RealPaths()
        for round in 1...2 {
            for path in paths {
                #expect(resolver.resolve(path) == FilePaths.realPath(path), "round \(round): \(path)")
            }
        }
        #expect(resolver.resolve(root + "/repo/folder-link/deep/file") == root + "/repo/real/deep/file")
        #expect(resolver.resolve(root + "/repo/out/secret") == root + "/outside/secret")
        #expect(resolver.resolve(root + "/repo/dangling") == nil)
    }

    @Test("a folder's entries carry the kinds lstat gives, links not followed")
    func entryKinds() throws {
        let directory = try Self.tree()
        let folder = directory.path + "/repo"
        let entries = try FilePaths.entries(of: folder)
        #expect(Set(entries.map(\.name)) == Set(try FilePaths.contents(of: folder)))
        for entry in entries {
            var info = stat()
            try #require(lstat(folder + "/" + entry.name, &info) == 0)
            // A file system that records no kinds gives nil, for the caller to lstat.
            if let kind = entry.kind { #expect(kind == FileKind(mode: info.st_mode), "\(entry.name)") }
        }
        #expect(entries.contains { $0.name == "folder-link" && ($0.kind == nil || $0.kind == .symlink) })
    }
}
