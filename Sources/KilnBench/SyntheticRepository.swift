import Foundation
import KilnCore

/// A generated processor monorepo for measuring the lane at scale (`kiln bench --synthetic N`):
/// N processors (every fourth name in two versions), each copying `code/libs/common`, one of
/// the libraries `code/libs/libK` and its own `src/`, onto `BASE_IMAGE` (default `scratch`), for
/// linux/amd64 and linux/arm64; a `.dockerignore` hides tests and docs. The contents depend only
/// on N, so two runs measure the same tree.
package enum SyntheticRepository {
    /// Writes the repository into `root` (which must not exist yet, or be empty).
    package static func generate(at root: String, processors count: Int) throws {
        let libraries = max(3, count / 40)
        try write(
            root, "kiln.yaml",
            "processors: [tools/**/registry.yaml]\nowner: synthetic\nplatforms: [linux/amd64, linux/arm64]\n")
        try write(root, ".dockerignore", "**/tests/\n**/*.md\n**/__pycache__/\n")
        try write(
            root, "README.md",
            "A synthetic processor monorepo of \(count) processors, made by kiln bench --synthetic.\n")
        for file in 0..<12 {
            try write(root, "code/libs/common/common_\(file).py", source(lines: 120, seed: file))
        }
        try write(root, "code/libs/common/tests/test_common.py", source(lines: 40, seed: 7))
        for library in 0..<libraries {
            for file in 0..<8 {
                try write(root, "code/libs/lib\(library)/mod_\(file).py", source(lines: 100, seed: library * 31 + file))
            }
        }
        var made = 0
        var name = 0
        while made < count {
            let versions = name % 4 == 3 && made + 2 <= count ? 2 : 1
            for version in 1...versions {
                try processor(root, name: name, version: version, library: name % libraries)
                made += 1
            }
            name += 1
        }
    }

    static func processor(_ root: String, name: Int, version: Int, library: Int) throws {
        let id = String(format: "p%04d", name)
        let folder = "tools/synthetic/\(id)/\(version)"
        try write(
            root, "\(folder)/registry.yaml",
            """
            ref: synthetic/\(id)@\(version)
            build:
              context: .
              dockerfile: Dockerfile
            image:
              platforms:
                amd64: sha256:pending
                arm64: sha256:pending

            """)
        try write(
            root, "\(folder)/Dockerfile",
            """
            ARG BASE_IMAGE=scratch
            FROM ${BASE_IMAGE}
            WORKDIR /app
            COPY code/libs/common /app/libs/common
            COPY code/libs/lib\(library) /app/libs/lib\(library)
            COPY \(folder)/src/ /app/src/
            ENV PROCESSOR=synthetic/\(id)@\(version) PYTHONDONTWRITEBYTECODE=1
            EXPOSE 8000
            CMD ["python", "-m", "src.main"]

            """)
        for file in 0..<6 {
            let fileName = file == 0 ? "main.py" : "part_\(file).py"
            try write(root, "\(folder)/src/\(fileName)", source(lines: 60, seed: name * 100 + version * 10 + file))
        }
        try write(root, "\(folder)/src/tests/test_main.py", source(lines: 20, seed: name))
        try write(root, "\(folder)/README.md", "# \(id) v\(version)\n")
    }

    static func write(_ root: String, _ path: String, _ text: String) throws {
        let full = root + "/" + path
        try FilePaths.makeDirectories(FilePaths.directory(of: full))
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
    }

    /// Python-looking lines that differ by seed (so layers compress like source code).
    static func source(lines: Int, seed: Int) -> String {
        (0..<lines).map { line in
            "value_\(seed)_\(line) = compute(\((line * 7919 + seed) % 1000), 'text \(seed) \(line)')  # line \(line)"
        }.joined(separator: "\n") + "\n"
    }
}
