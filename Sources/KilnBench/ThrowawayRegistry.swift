import Foundation
import KilnCore

/// Debian's `docker-registry` (distribution) on 127.0.0.1, on a free port, storing into a scratch
/// folder: the registry `kiln bench` pushes to when no `--registry` is given. Stopped by `stop()`.
package final class ThrowawayRegistry: @unchecked Sendable {
    package let host: String
    private let process: Process

    /// The `docker-registry` binary on `PATH`, if installed.
    package static func binary() -> String? {
        ChildProcess.find("docker-registry", path: ProcessInfo.processInfo.environment["PATH"])
    }

    /// Starts one storing into `directory`.
    package init(binary: String, directory: String) throws {
        var lastLog = ""
        for _ in 0..<3 {
            let port = try Self.freePort()
            let config = directory + "/config.yml"
            try """
            version: 0.1
            log:
              level: warn
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(directory)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
              secret: kiln-bench-\(UInt64.random(in: 0...UInt64.max))

            """.write(toFile: config, atomically: true, encoding: .utf8)
            let log = directory + "/registry.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["serve", config]
            process.standardInput = FileHandle.nullDevice
            let handle = FileHandle(forWritingAtPath: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            if Self.waitForPort(port, while: process) {
                self.host = "127.0.0.1:\(port)"
                self.process = process
                return
            }
            process.terminate()
            process.waitUntilExit()
            lastLog = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        }
        throw BenchError.registryDidNotStart(String(lastLog.suffix(2000)))
    }

    package func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { stop() }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw BenchError.registryDidNotStart("no free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// Waits up to 15 s for the port to accept a connection, as long as the server runs.
    static func waitForPort(_ port: Int, while process: Process) -> Bool {
        for _ in 0..<150 {
            guard process.isRunning else { return false }
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = loopback(port: port)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if connected { return true }
            usleep(100_000)
        }
        return false
    }
}
