import Testing

@testable import KilnDockerfile

struct IgnoreCase: CustomTestStringConvertible, Sendable {
    var patterns: String
    var path: String
    var excluded: Bool
    var testDescription: String { "\(patterns.split(separator: "\n").joined(separator: " | ")) :: \(path)" }
}

@Suite(".dockerignore")
struct DockerIgnoreTests {
    static let cases: [IgnoreCase] = [
        IgnoreCase(patterns: "*.log", path: "app.log", excluded: true),
        IgnoreCase(patterns: "*.log", path: "logs/app.log", excluded: false),
        IgnoreCase(patterns: "**/*.log", path: "logs/deep/app.log", excluded: true),
        IgnoreCase(patterns: "**/*.log", path: "app.log", excluded: true),
        IgnoreCase(patterns: "**/__pycache__/", path: "code/libs/x/__pycache__/m.pyc", excluded: true),
        IgnoreCase(patterns: "**/*.pyc", path: "a/b/c.pyc", excluded: true),
        IgnoreCase(patterns: "docs", path: "docs/index.md", excluded: true),
        IgnoreCase(patterns: "docs", path: "code/docs/index.md", excluded: false),
        IgnoreCase(patterns: "/docs", path: "docs", excluded: true),
        IgnoreCase(patterns: "./docs/", path: "docs/a", excluded: true),
        IgnoreCase(patterns: "code/apps/**/tests", path: "code/apps/core/x/tests/test_a.py", excluded: true),
        IgnoreCase(patterns: "code/apps/**/tests", path: "code/apps/tests/a.py", excluded: true),
        IgnoreCase(patterns: "code/apps/**/tests", path: "code/libs/tests/a.py", excluded: false),
        IgnoreCase(patterns: "*\n!keep.txt", path: "keep.txt", excluded: false),
        IgnoreCase(patterns: "*\n!keep.txt", path: "other.txt", excluded: true),
        IgnoreCase(patterns: "!keep.txt\n*", path: "keep.txt", excluded: true),
        IgnoreCase(patterns: "build\n!build/keep", path: "build/keep/x.txt", excluded: false),
        IgnoreCase(patterns: "build\n!build/keep", path: "build/other.txt", excluded: true),
        IgnoreCase(patterns: "build\n!build/keep\nbuild/keep/secret", path: "build/keep/secret", excluded: true),
        IgnoreCase(patterns: "# a comment\n#*.md\nREADME.md", path: "NOTES.md", excluded: false),
        IgnoreCase(patterns: "  *.tmp  \n", path: "a.tmp", excluded: true),
        IgnoreCase(patterns: ".git\n.hg", path: ".git/HEAD", excluded: true),
        IgnoreCase(patterns: "a/../b", path: "b/x", excluded: true),
        IgnoreCase(patterns: "dir/*/file", path: "dir/x/file", excluded: true),
        IgnoreCase(patterns: "dir/*/file", path: "dir/x/y/file", excluded: false),
        IgnoreCase(patterns: "**/registry.yaml", path: "tools/a/1/registry.yaml", excluded: true),
        IgnoreCase(patterns: "**/registry.yaml", path: "tools/a/1/Dockerfile", excluded: false),
        IgnoreCase(patterns: "**/registry.yaml", path: "tools/registry.yaml/x", excluded: true),
        IgnoreCase(patterns: "tools/*/registry.yaml\nsrc", path: "src/main.py", excluded: true),
        IgnoreCase(patterns: "tools/*/registry.yaml\nsrc", path: "tools/a/b/registry.yaml", excluded: false),
        IgnoreCase(patterns: "a/registry.yaml\n**/*.yml", path: "b/c.yml", excluded: true),
        IgnoreCase(patterns: "**", path: "anything/at/all", excluded: true),
        IgnoreCase(patterns: "**\n!src/**", path: "src/a/b.py", excluded: false),
        IgnoreCase(patterns: "data?", path: "data1", excluded: true),
        IgnoreCase(patterns: "[a-c].txt", path: "b.txt", excluded: true),
        IgnoreCase(patterns: "\\#literal", path: "#literal", excluded: true),
    ]

    @Test("decides like Docker", arguments: cases)
    func decides(_ example: IgnoreCase) {
        #expect(DockerIgnore(parsing: example.patterns).excludes(example.path) == example.excluded)
    }

    @Test("an entry of an included directory is decided by its own path alone, as by every prefix", arguments: cases)
    func entryOfIncludedDirectory(_ example: IgnoreCase) {
        let ignore = DockerIgnore(parsing: example.patterns)
        let components = example.path.split(separator: "/")
        for count in 1...components.count {
            let path = components[..<count].joined(separator: "/")
            let parent = components[..<(count - 1)].joined(separator: "/")
            guard count == 1 || !ignore.excludes(parent) else { continue }
            #expect(ignore.excludes(path, parentIncluded: true) == ignore.excludes(path), "\(path)")
        }
    }

    @Test("patterns added after parsing are matched, also by an entry's own path")
    func addedPatterns() {
        var ignore = DockerIgnore(parsing: "**/registry.yaml")
        #expect(!ignore.excludes("a/b.txt", parentIncluded: true))
        ignore.patterns += DockerIgnore(parsing: "**/b.txt").patterns
        #expect(ignore.excludes("a/b.txt", parentIncluded: true))
        #expect(ignore.excludes("a/registry.yaml", parentIncluded: true))
    }

    @Test("patterns are cleaned: leading slash and ./ trimmed, trailing slash dropped, ! kept apart")
    func cleaning() {
        let ignore = DockerIgnore(parsing: "/a/\n./b\n! c/d/\n")
        #expect(ignore.patterns.map(\.text) == ["a", "b", "c/d"])
        #expect(ignore.patterns.map(\.reincludes) == [false, false, true])
    }
}
