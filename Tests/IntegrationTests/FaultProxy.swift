import Foundation
import Testing

/// `Tests/Fixtures/fault-proxy.py` in front of a real docker-registry: requests pass through
/// unless a rule (re-read on every request) injects a fault — an error status, a connection
/// reset before or in the middle of a body, a delay, a wrong `Docker-Content-Digest`.
final class FaultProxy {
    /// One rule; see the script's header for the fields.
    struct Rule: Encodable {
        var method: String?
        var path: String?
        var fault: String
        var status: Int?
        var code: String?
        var retryAfter: Int?
        var seconds: Double?
        var times: Int?
        var every: Int?
        var probability: Double?
        var seed: Int?

        init(
            _ fault: String, method: String? = nil, path: String? = nil, status: Int? = nil, code: String? = nil,
            retryAfter: Int? = nil, seconds: Double? = nil, times: Int? = nil, every: Int? = nil,
            probability: Double? = nil, seed: Int? = nil
        ) {
            self.fault = fault
            self.method = method
            self.path = path
            self.status = status
            self.code = code
            self.retryAfter = retryAfter
            self.seconds = seconds
            self.times = times
            self.every = every
            self.probability = probability
            self.seed = seed
        }
    }

    /// One request the proxy saw.
    struct Entry {
        var fault: String
        var method: String
        var path: String
        var status: String
    }

    let scratch: Scratch
    let port: Int
    let process: Process
    let rulesPath: String
    let logPath: String

    /// `127.0.0.1:PORT`: use it where the registry's host would go.
    var host: String { "127.0.0.1:\(port)" }

    init(upstream: RegistryServer, rules: [Rule] = []) throws {
        try Tools.require("python3", package: "python3")
        scratch = try Scratch("fault-proxy")
        port = try RegistryServer.freePort()
        rulesPath = scratch.path + "/rules.json"
        logPath = scratch.path + "/requests.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Tools.packageRoot + "/Tests/Fixtures/fault-proxy.py", "\(port)", upstream.host, rulesPath,
            logPath,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try set(rules)
        try process.run()
        try RegistryServer.waitForPort(port, process: process, logPath: logPath)
    }

    deinit { Tools.stop(process) }

    /// Replaces the rules; the next request sees them.
    func set(_ rules: [Rule]) throws {
        let encoder = JSONEncoder()
        try encoder.encode(rules).write(to: URL(fileURLWithPath: rulesPath), options: .atomic)
    }

    /// The requests seen so far.
    func entries() -> [Entry] {
        let text = (FileManager.default.contents(atPath: logPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 3).map(String.init)
            guard parts.count == 4, ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"].contains(parts[1]) else {
                return nil
            }
            return Entry(fault: parts[0], method: parts[1], path: parts[2], status: parts[3])
        }
    }

    /// The requests that got a fault.
    func faults() -> [Entry] { entries().filter { $0.fault != "-" } }
}
