import Foundation
import Testing

/// kiln started in the background, for tests that signal it (SIGTERM, SIGINT, SIGKILL) at a
/// chosen moment or run several kiln processes side by side.
final class BackgroundKiln: @unchecked Sendable {
    let process = Process()
    private let errors = Pipe()
    private let output = Pipe()
    // Guarded by `lock`.
    private var stderrText = ""
    private var stdoutData = Data()
    private let lock = NSLock()
    private let done = DispatchGroup()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: Tools.kiln)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SOURCE_DATE_EPOCH")
        env["CI"] = "true"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardError = errors
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for (pipe, isError) in [(errors, true), (output, false)] {
            done.enter()
            Thread.detachNewThread { [self] in
                let handle = pipe.fileHandleForReading
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    lock.lock()
                    if isError {
                        stderrText += String(decoding: chunk, as: UTF8.self)
                    } else {
                        stdoutData.append(chunk)
                    }
                    lock.unlock()
                }
                done.leave()
            }
        }
    }

    var stderr: String {
        lock.lock()
        defer { lock.unlock() }
        return stderrText
    }

    var stdout: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: stdoutData, as: UTF8.self)
    }

    /// Waits until stderr contains `text` (or the process ends, or `seconds` pass); whether it did.
    @discardableResult
    func waitFor(_ text: String, seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stderr.contains(text) { return true }
            if !process.isRunning { return stderr.contains(text) }
            usleep(20_000)
        }
        return false
    }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Waits for the process to end (up to `seconds`, then SIGKILL); its exit status, 128 + the
    /// signal for a signalled process.
    @discardableResult
    func wait(seconds: Double = 120) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        done.wait()
        return process.terminationReason == .uncaughtSignal
            ? 128 + process.terminationStatus : process.terminationStatus
    }
}

/// Files under `roots` whose bytes (gunzipped when gzip) contain `needle`: where a secret went.
enum SecretScan {
    static func files(containing needle: String, under roots: [String]) throws -> [String] {
        let scan = try Tools.run(
            [
                "python3", "-c",
                """
                import gzip, os, sys
                for root in sys.argv[2:]:
                    for folder, _, files in os.walk(root):
                        for name in files:
                            path = os.path.join(folder, name)
                            try:
                                if os.path.islink(path) or not os.path.isfile(path): continue
                                data = open(path, 'rb').read()
                            except OSError:
                                continue
                            try: data = gzip.decompress(data)
                            except Exception: pass
                            if sys.argv[1].encode() in data: print(path)
                """,
                needle,
            ] + roots)
        try #require(scan.status == 0, "\(scan.stderr)")
        return scan.stdout.split(separator: "\n").map(String.init)
    }
}
