import Foundation

/// Push throughput of a single-layer image to a loopback `docker-registry`, side by side with
/// `skopeo copy` of the same OCI layout, each run against a fresh registry (so neither finds the
/// blob already there nor mounts it); then the no-op case: pushing 24 images a second time.
enum PushBenchmark {
    static func run() throws {
        let mebibytes = Int(option("--size-mib") ?? "512") ?? 512
        let pushRuns = Int(option("--runs") ?? "3") ?? 3
        let layout = try makeImage(mebibytes: mebibytes)
        let blobMiB = Double(mebibytes)

        var kilnChunked = [Double]()
        var kilnWhole = [Double]()
        var skopeo = [Double]()
        var curl = [Double]()
        let blob = try largestBlob(in: layout)
        for _ in 0..<pushRuns {
            // The registry's own ingest ceiling: the blob as one PUT, nothing else.
            curl.append(
                try withRegistry { host in
                    timed(
                        """
                        loc=$(curl -sf -D - -o /dev/null -X POST http://\(host)/v2/bench/curl/blobs/uploads/ | tr -d '\\r' | awk 'tolower($1)=="location:"{print $2}')
                        case "$loc" in http*) ;; *) loc="http://\(host)$loc" ;; esac
                        curl -sf -o /dev/null -T '\(blob.path)' -H 'Content-Type: application/octet-stream' -X PUT "$loc&digest=sha256:\(blob.hex)"
                        """)
                })
            kilnChunked.append(
                try withRegistry { host in
                    timed("'\(kiln)' push '\(layout):v1' \(host)/bench/app:v1 > /dev/null")
                })
            kilnWhole.append(
                try withRegistry { host in
                    timed("'\(kiln)' push '\(layout):v1' \(host)/bench/app:v1 --chunk-size 0 > /dev/null")
                })
            skopeo.append(
                try withRegistry { host in
                    timed("skopeo copy -q --dest-tls-verify=false 'oci:\(layout):v1' docker://\(host)/bench/app:v1")
                })
        }

        let (firstPushes, rePushes, together) = try withRegistry { host in try noOpPushes(host: host, images: 24) }

        let skopeoMedian = median(skopeo)
        let curlMedian = median(curl)
        func row(_ name: String, _ samples: [Double]) -> String {
            let value = median(samples)
            return
                "| \(name) | \(format(value)) | \(String(format: "%.0f", blobMiB / value)) | \(String(format: "%.2f", skopeoMedian / value))× | \(String(format: "%.3f", curlMedian / value))× |"
        }
        print(
            """
            ## Push of a \(mebibytes) MiB single-layer image to a loopback docker-registry (\(pushRuns) runs each, median)

            | | median s | MiB/s | speed vs skopeo | speed vs curl -T |
            | --- | ---: | ---: | ---: | ---: |
            \(row("kiln push (4 MiB chunks, default)", kilnChunked))
            \(row("kiln push --chunk-size 0 (one request)", kilnWhole))
            \(row("skopeo copy", skopeo))
            \(row("curl -T (the blob alone, one PUT)", curl))

            all runs (s) — kiln chunked: \(kilnChunked.map(format).joined(separator: " ")); \
            kiln whole: \(kilnWhole.map(format).joined(separator: " ")); skopeo: \(skopeo.map(format).joined(separator: " ")); \
            curl: \(curl.map(format).joined(separator: " "))

            ## 24 small images pushed, then pushed again unchanged (one kiln process each)

            first push: median \(format(median(firstPushes) * 1000)) ms per image
            second push: median \(format(median(rePushes) * 1000)) ms per image, \(format(rePushes.reduce(0, +) * 1000)) ms for all 24, \
            max \(format((rePushes.max() ?? 0) * 1000)) ms
            second push of all 24 in one `kiln push` run: median \(format(median(together) * 1000)) ms \
            (runs: \(together.map { format($0 * 1000) }.joined(separator: " ")) ms)
            """)
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    static func timed(_ script: String) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = shell(script)
        precondition(result.status == 0, "failed: \(script)")
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The layout's biggest blob (its layer): the path and the digest's hex.
    static func largestBlob(in layout: String) throws -> (path: String, hex: String) {
        let directory = layout + "/blobs/sha256"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        let sized = names.map { name -> (String, Int) in
            let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as? Int) ?? 0
            return (name, size)
        }
        let biggest = sized.max { $0.1 < $1.1 }!.0
        return (directory + "/" + biggest, biggest)
    }

    /// A layout with one uncompressed layer of random bytes (so the blob is the full size).
    static func makeImage(mebibytes: Int) throws -> String {
        let directory = work + "/push-\(mebibytes)"
        let layout = directory + "/layout"
        if FileManager.default.fileExists(atPath: layout + "/index.json") { return layout }
        try FileManager.default.createDirectory(atPath: directory + "/tree", withIntermediateDirectories: true)
        precondition(shell("head -c \(mebibytes << 20) /dev/urandom > '\(directory)/tree/blob.bin'").status == 0)
        precondition(
            shell(
                "'\(kiln)' image create --from '\(directory)/tree' --level 0 -o 'oci:\(layout):v1' --cache-dir '\(directory)/store' > /dev/null"
            ).status == 0)
        return layout
    }

    /// 24 distinct small images pushed once, then again; the seconds each push took.
    static func noOpPushes(host: String, images: Int) throws -> ([Double], [Double], [Double]) {
        var first = [Double]()
        var second = [Double]()
        for number in 0..<images {
            let directory = work + "/small-\(number)"
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory + "/tree", withIntermediateDirectories: true)
            try "processor \(number)\n".write(toFile: directory + "/tree/main.py", atomically: true, encoding: .utf8)
            precondition(
                shell(
                    "'\(kiln)' image create --from '\(directory)/tree' --prefix /tool --platform linux/amd64,linux/arm64 -o 'oci:\(directory)/layout:v1' --cache-dir '\(directory)/store' > /dev/null"
                ).status == 0)
            first.append(
                timed("'\(kiln)' push '\(directory)/layout:v1' \(host)/bench/p\(number):v1 2> /dev/null > /dev/null"))
        }
        for number in 0..<images {
            second.append(
                timed(
                    "'\(kiln)' push '\(work)/small-\(number)/layout:v1' \(host)/bench/p\(number):v1 2> /dev/null > /dev/null"
                ))
        }
        let pairs = (0..<images).map { "'\(work)/small-\($0)/layout:v1' \(host)/bench/p\($0):v1" }.joined(
            separator: " ")
        var together = [Double]()
        for _ in 0..<5 { together.append(timed("'\(kiln)' push \(pairs) 2> /dev/null > /dev/null")) }
        return (first, second, together)
    }

    /// Runs `body` against a fresh docker-registry on a free loopback port, stopping it after.
    static func withRegistry<T>(_ body: (String) throws -> T) throws -> T {
        let directory = work + "/registry-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = freePort()
        try """
        version: 0.1
        log: {level: error, accesslog: {disabled: true}}
        storage: {filesystem: {rootdirectory: \(directory)/data}}
        http: {addr: 127.0.0.1:\(port), secret: bench}
        """.write(toFile: directory + "/config.yml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker-registry", "serve", directory + "/config.yml"]
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        for _ in 0..<100 where shell("curl -s -o /dev/null http://127.0.0.1:\(port)/v2/").status != 0 {
            usleep(100_000)
        }
        return try body("127.0.0.1:\(port)")
    }

    static func freePort() -> Int {
        let output = shell(
            "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])'"
        ).output
        return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 5999
    }
}
