import Foundation
import Testing

/// Debian's `docker-registry` (distribution 2.8) started for one test on 127.0.0.1 with a free
/// port and its own storage root, and stopped when the value goes away. Its access log is kept,
/// so tests can count the requests kiln made.
final class RegistryServer {
    struct Options {
        /// `http.relativeurls`: upload `Location` headers relative, as GHCR sends them.
        var relativeURLs = false
        /// Serve TLS with this certificate and key.
        var tls: (certificate: String, key: String)?
        /// htpasswd auth with this file.
        var htpasswd: String?
        /// Extra YAML under `auth:` (token auth).
        var authYAML: String?
    }

    let scratch: Scratch
    let port: Int
    private(set) var process: Process
    let logPath: String

    /// `127.0.0.1:PORT`
    var host: String { "127.0.0.1:\(port)" }

    init(_ options: Options = Options()) throws {
        try Tools.require("docker-registry", package: "docker-registry")
        scratch = try Scratch("registry")
        port = try Self.freePort()
        logPath = scratch.path + "/registry.log"
        var config = """
            version: 0.1
            log:
              level: info
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: \(scratch.path)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
              secret: kiln-test-secret
              relativeurls: \(options.relativeURLs)

            """
        if let tls = options.tls {
            config += "  tls:\n    certificate: \(tls.certificate)\n    key: \(tls.key)\n"
        }
        if let htpasswd = options.htpasswd {
            config += "auth:\n  htpasswd:\n    realm: kiln-test\n    path: \(htpasswd)\n"
        } else if let authYAML = options.authYAML {
            config += "auth:\n" + authYAML
        }
        try config.write(toFile: scratch.path + "/config.yml", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try Self.launch(config: scratch.path + "/config.yml", port: port, logPath: logPath)
    }

    private static func launch(config: String, port: Int, logPath: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker-registry", "serve", config]
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        try waitForPort(port, process: process, logPath: logPath)
        return process
    }

    /// Stops the server (as if it went down mid-run); `start()` brings it back with its storage.
    func stop() { Tools.stop(process) }

    func start() throws {
        guard !process.isRunning else { return }
        process = try Self.launch(config: scratch.path + "/config.yml", port: port, logPath: logPath)
    }

    deinit { Tools.stop(process) }

    /// The access-log request lines (`METHOD PATH`) logged so far, optionally after a mark.
    func requests(since mark: Int = 0) -> [String] {
        answeredRequests(since: mark).map(\.request)
    }

    /// The access-log entries logged so far: `METHOD PATH` and the status it was answered with.
    func answeredRequests(since mark: Int = 0) -> [(request: String, status: Int)] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        let text = String(decoding: data.dropFirst(mark), as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            guard let open = line.firstIndex(of: "\""), line.contains("] \"") else { return nil }
            let rest = line[line.index(after: open)...]
            guard let close = rest.firstIndex(of: "\"") else { return nil }
            let request = rest[..<close].split(separator: " ")
            let status = rest[rest.index(after: close)...].split(separator: " ").first.flatMap { Int($0) } ?? 0
            return request.count >= 2 ? ("\(request[0]) \(request[1])", status) : nil
        }
    }

    /// A position in the log, for `requests(since:)`.
    func mark() -> Int { (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int) ?? 0 }

    /// The whole log, for failure messages.
    var log: String {
        (FileManager.default.contents(atPath: logPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw Tools.MissingTool(description: "could not find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits until something accepts connections on `port` (up to 15 s).
    static func waitForPort(_ port: Int, process: Process, logPath: String) throws {
        for _ in 0..<150 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            close(fd)
            if connected { return }
            if !process.isRunning { break }
            usleep(100_000)
        }
        let log = FileManager.default.contents(atPath: logPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        throw Tools.MissingTool(description: "the server on port \(port) did not start: \(log.suffix(2000))")
    }
}
