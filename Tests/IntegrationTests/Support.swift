import Foundation
import KilnTestSupport
import Testing

/// Runs programs for the integration tests: kiln's own binary and the tools nobody here wrote
/// (tar, gzip, sha256sum, umoci, skopeo, /usr/bin/time) that check kiln's output.
enum Tools {
    /// The package root, found from this file's location.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The kiln executable: `$KILN_BIN`, else the debug build beside the tests.
    static var kiln: String {
        if let explicit = ProcessInfo.processInfo.environment["KILN_BIN"], !explicit.isEmpty { return explicit }
        return packageRoot + "/.build/debug/kiln"
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutBytes: Data
    }

    /// Fails the test with an install hint when a tool is missing, rather than passing silently.
    static func require(_ tool: String, package: String) throws {
        let found =
            ProcessInfo.processInfo.environment["PATH", default: "/usr/bin:/bin"]
            .split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
            || (tool.hasPrefix("/") && FileManager.default.isExecutableFile(atPath: tool))
        if !found {
            throw MissingTool(description: "'\(tool)' is needed by this test: run 'apt-get install -y \(package)'")
        }
    }

    struct MissingTool: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `arguments` (the first is looked up on PATH unless absolute) and waits for it.
    @discardableResult
    static func run(
        _ arguments: [String], environment: [String: String] = [:], directory: String? = nil,
        stdin: Data? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SOURCE_DATE_EPOCH")
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        // Read both pipes before waiting, so a chatty tool cannot block on a full pipe.
        let group = DispatchGroup()
        nonisolated(unsafe) var errData = Data()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self), stdoutBytes: outData)
    }

    /// Stops a server the tests started. SIGKILL, because children inherit the test thread's
    /// blocked-signal mask, and a server that does not reset it (Python does not) ignores SIGTERM.
    static func stop(_ process: Process) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The single stderr line of a failed command, after checking there is exactly one and that
    /// it is a message, not a crash report.
    static func oneLine(_ result: Result) -> String {
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "expected one line on stderr, got: \(result.stderr)")
        #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("Stack"))
        return lines.first.map(String.init) ?? ""
    }

    /// Runs kiln with `arguments`.
    @discardableResult
    static func kiln(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try run([kiln] + arguments, environment: environment)
    }

    /// Runs a shell pipeline.
    @discardableResult
    static func shell(_ script: String, environment: [String: String] = [:]) throws -> Result {
        try run(["bash", "-o", "pipefail", "-c", script], environment: environment)
    }
}

/// Every integration test's scratch folder (`TemporaryDirectory`, shared by all test targets).
typealias Scratch = TemporaryDirectory

extension TemporaryDirectory {
    /// A scratch directory holding the sample tree in its `tree` folder.
    static func withSampleTree(_ label: String) throws -> (Scratch, tree: String) {
        let scratch = try Scratch(label)
        let tree = try scratch.sub("tree")
        try SampleTree.create(at: tree)
        return (scratch, tree)
    }
}

/// The mixed tree the acceptance criteria name: nested directories, symlinks, a hard link, an
/// empty file, a 0755 script, and a name with spaces and UTF-8.
enum SampleTree {
    struct Item {
        enum Kind {
            case directory
            case file(String, mode: Int)
            case symlink(String)
            case hardLink(String)
        }
        var path: String
        var kind: Kind
    }

    static let items: [Item] = [
        Item(path: "lib", kind: .directory),
        Item(path: "lib/nested", kind: .directory),
        Item(path: "lib/nested/deeper", kind: .directory),
        Item(path: "empty-dir", kind: .directory),
        Item(path: "lib/nested/deeper/module.py", kind: .file("print('deep')\n", mode: 0o644)),
        Item(path: "lib/__init__.py", kind: .file("", mode: 0o644)),
        Item(path: "run.sh", kind: .file("#!/bin/sh\necho running\n", mode: 0o755)),
        Item(path: "data file é ü.txt", kind: .file("spaces and UTF-8\n", mode: 0o600)),
        Item(path: "config.yaml", kind: .file(String(repeating: "key: value\n", count: 500), mode: 0o644)),
        Item(path: "current", kind: .symlink("lib/nested")),
        Item(path: "lib/absolute-link", kind: .symlink("/usr/bin/env")),
        Item(path: "config-hardlink.yaml", kind: .hardLink("config.yaml")),
    ]

    /// Creates the tree under `root`, in the given order of items (hard links after their target).
    static func create(at root: String, reversed: Bool = false) throws {
        let fm = FileManager.default
        var order = items.filter { if case .hardLink = $0.kind { false } else { true } }
        if reversed { order.reverse() }
        for item in order {
            let full = root + "/" + item.path
            try fm.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            switch item.kind {
            case .directory:
                try fm.createDirectory(atPath: full, withIntermediateDirectories: true)
            case .file(let text, let mode):
                #expect(fm.createFile(atPath: full, contents: Data(text.utf8)))
                chmod(full, mode_t(mode))
            case .symlink(let target):
                try fm.createSymbolicLink(atPath: full, withDestinationPath: target)
            case .hardLink:
                break
            }
        }
        for item in items {
            if case .hardLink(let target) = item.kind {
                try fm.linkItem(atPath: root + "/" + target, toPath: root + "/" + item.path)
            }
        }
    }
}
