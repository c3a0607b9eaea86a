import KilnTestSupport
import Testing

@testable import KilnBuild

@Suite("Build context walks")
struct BuildContextWalkTests {
    /// A context with a shared library, nested folders, an ignored folder at two depths and a
    /// Dockerfile-specific ignore file beside a second Dockerfile.
    static func makeContext() throws -> TemporaryDirectory {
        let folder = try TemporaryDirectory("walk")
        for path in [
            "code/libs/common/a.py", "code/libs/common/deep/b.py", "code/libs/common/tests/t.py",
            "code/libs/common/deep/tests/u.py", "code/libs/common/README.md", "code/libs/common/deep/x.md",
        ] {
            try folder.write(path, "# \(path)\n")
        }
        try folder.write(".dockerignore", "**/tests/\n**/*.md\n")
        try folder.write("one/Dockerfile", "FROM scratch\n")
        try folder.write("two/Dockerfile", "FROM scratch\n")
        try folder.write("two/Dockerfile.dockerignore", "**/deep\n")
        return folder
    }

    static func walk(_ context: BuildContext, _ source: String) throws -> [String] {
        try context.resolve(source: source, at: nil).flatMap { try context.walk($0) }.map(\.path)
    }

    @Test("a walk leaves out what .dockerignore names at any depth, and a shared memo changes nothing")
    func memoIsTransparent() throws {
        let folder = try Self.makeContext()
        let plain = try BuildContext(root: folder.path, dockerfile: folder.path + "/one/Dockerfile")
        let expected = try Self.walk(plain, "code/libs/common")
        #expect(expected == ["code/libs/common/a.py", "code/libs/common/deep", "code/libs/common/deep/b.py"])

        let memo = BuildContext.WalkMemo()
        let first = try BuildContext(root: folder.path, dockerfile: folder.path + "/one/Dockerfile", walks: memo)
        let second = try BuildContext(root: folder.path, dockerfile: folder.path + "/one/Dockerfile", walks: memo)
        #expect(try Self.walk(first, "code/libs/common") == expected)
        #expect(try Self.walk(second, "code/libs/common") == expected)
        // A Dockerfile with its own ignore file shares the memo but not the walk.
        let other = try BuildContext(root: folder.path, dockerfile: folder.path + "/two/Dockerfile", walks: memo)
        #expect(
            try Self.walk(other, "code/libs/common") == [
                "code/libs/common/README.md", "code/libs/common/a.py", "code/libs/common/tests",
                "code/libs/common/tests/t.py",
            ])
    }

    @Test("a walk from inside an ignored folder still leaves it out")
    func startsInsideIgnoredFolder() throws {
        let folder = try Self.makeContext()
        let context = try BuildContext(root: folder.path, dockerfile: folder.path + "/one/Dockerfile")
        let tests = BuildContext.Item(path: "code/libs/common/deep", kind: .directory, mode: 0o755)
        #expect(try context.walk(tests).map(\.path) == ["code/libs/common/deep/b.py"])
        let ignored = BuildContext.Item(path: "code/libs/common/tests", kind: .directory, mode: 0o755)
        #expect(try context.walk(ignored).isEmpty)
    }
}
