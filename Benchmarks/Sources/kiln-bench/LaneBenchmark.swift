import Foundation

/// The build-and-pin lane on a generated monorepo of 24 processors (linux/amd64 + linux/arm64,
/// each copying a shared library and its own code onto a busybox base in a loopback registry),
/// side by side with `buildah bud --layers` + `buildah manifest push` of the same processors:
///   (a) nothing changed; (b) one processor's file changed; (c) the shared library changed.
enum LaneBenchmark {
    static let processors = Int(option("--processors") ?? "24") ?? 24

    static func run() throws {
        let kilnRuns = Int(option("--runs") ?? "5") ?? 5
        let buildahRuns = Int(option("--buildah-runs") ?? "2") ?? 2
        let directory = work + "/lane"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try PushBenchmark.withRegistry { host in
            let base = try pushBase(host: host, directory: directory)
            let repo = directory + "/repo"
            try makeMonorepo(at: repo)
            let cache = directory + "/kiln-cache"
            let lane =
                "'\(kiln)' build --push --pin --root '\(repo)' --registry \(host) --build-arg BASE_IMAGE=\(base) --cache-dir '\(cache)' > /dev/null 2>&1"

            let cold = PushBenchmark.timed(lane)
            var unchanged = [Double]()
            var oneChanged = [Double]()
            var sharedChanged = [Double]()
            for run in 0..<kilnRuns {
                unchanged.append(PushBenchmark.timed(lane))
                try append("# run \(run)\n", to: repo + "/tools/bench/p7/1/protocol/main.py")
                oneChanged.append(PushBenchmark.timed(lane))
                try append("# run \(run)\n", to: repo + "/code/libs/shared/util_0.py")
                sharedChanged.append(PushBenchmark.timed(lane))
            }

            let buildah = Buildah(root: directory + "/buildah", host: host, base: base, repo: repo)
            _ = buildah.all()  // the first build fills buildah's layer cache
            var buildahCached = [Double]()
            var buildahShared = [Double]()
            for run in 0..<buildahRuns {
                buildahCached.append(buildah.all())
                try append("# buildah run \(run)\n", to: repo + "/code/libs/shared/util_0.py")
                buildahShared.append(buildah.all())
            }

            let a = median(unchanged)
            let b = median(oneChanged)
            let c = median(sharedChanged)
            let bA = median(buildahCached)
            let bC = median(buildahShared)
            func f(_ value: Double) -> String { String(format: "%.3f", value) }
            print(
                """
                ## The lane: \(processors) processors × linux/amd64 + linux/arm64, loopback registry

                | case | kiln median s | buildah bud --layers + push, median s | kiln speed-up | target |
                | --- | ---: | ---: | ---: | --- |
                | (a) nothing changed | \(f(a)) | \(f(bA)) (layer cache warm) | \(String(format: "%.0f", bA / a))× | < 0.5 s, ≥ 50× |
                | (b) one processor's file changed | \(f(b)) | — | — | < 2 s |
                | (c) shared library changed (all rebuild) | \(f(c)) | \(f(bC)) | \(String(format: "%.1f", bC / c))× | ≥ 10× |

                kiln cold first run (bases fetched, all built and pushed): \(f(cold)) s
                all runs (s) — kiln (a): \(unchanged.map(f).joined(separator: " ")); (b): \(oneChanged.map(f).joined(separator: " ")); \
                (c): \(sharedChanged.map(f).joined(separator: " ")); buildah cached: \(buildahCached.map(f).joined(separator: " ")); \
                buildah shared change: \(buildahShared.map(f).joined(separator: " "))
                10-minute target: kiln's worst case here, (c), is \(String(format: "%.2f", c / 600 * 100))% of it.
                """)
        }
    }

    static func append(_ text: String, to path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
        try handle.close()
    }

    /// The busybox fixture (Debian's busybox-static for both platforms) as a two-platform base.
    static func pushBase(host: String, directory: String) throws -> String {
        let fixtures = root + "/cache/fixtures/busybox"
        precondition(
            shell("bash '\(root)/Tests/Fixtures/busybox-rootfs.sh' '\(fixtures)'").status == 0, "busybox fixture failed"
        )
        try "FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\nCMD [\"sh\"]\n".write(
            toFile: directory + "/base.Dockerfile", atomically: true, encoding: .utf8)
        let reference = "\(host)/fixtures/busybox:1"
        precondition(
            shell(
                "'\(kiln)' build -f '\(directory)/base.Dockerfile' --platform linux/amd64,linux/arm64 -t \(reference) --cache-dir '\(directory)/base-cache' '\(fixtures)' > /dev/null"
            ).status == 0)
        return reference
    }

    /// `processors` processors under tools/bench/pN/1, each copying code/libs/shared (40 files,
    /// ~640 KiB) and its own protocol/ folder (8 files, ~64 KiB).
    static func makeMonorepo(at repo: String) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: repo + "/code/libs/shared", withIntermediateDirectories: true)
        try "processors: [tools/**/registry.yaml]\nowner: bench\nplatforms: [linux/amd64, linux/arm64]\n"
            .write(toFile: repo + "/kiln.yaml", atomically: true, encoding: .utf8)
        try "**/__pycache__/\n*.log\n".write(toFile: repo + "/.dockerignore", atomically: true, encoding: .utf8)
        for file in 0..<40 {
            try source(lines: 400, seed: file).write(
                toFile: repo + "/code/libs/shared/util_\(file).py", atomically: true, encoding: .utf8)
        }
        for number in 0..<processors {
            let folder = repo + "/tools/bench/p\(number)/1"
            try manager.createDirectory(atPath: folder + "/protocol", withIntermediateDirectories: true)
            for file in 0..<8 {
                let name = file == 0 ? "main.py" : "part_\(file).py"
                try source(lines: 200, seed: number * 100 + file).write(
                    toFile: folder + "/protocol/" + name, atomically: true, encoding: .utf8)
            }
            try """
            ARG BASE_IMAGE
            FROM ${BASE_IMAGE}
            ENV PYTHONDONTWRITEBYTECODE=1
            WORKDIR /tool
            COPY code/libs/shared /tool/libs/shared
            COPY tools/bench/p\(number)/1/protocol/ /tool/protocol/
            EXPOSE 8000
            CMD ["python", "-m", "protocol.main"]

            """.write(toFile: folder + "/Dockerfile", atomically: true, encoding: .utf8)
            try """
            build:
              context: .
              dockerfile: Dockerfile
            enabled: true
            image:
              platforms:
                amd64: sha256:pending
                arm64: sha256:pending
            ref: bench/p\(number)@1

            """.write(toFile: folder + "/registry.yaml", atomically: true, encoding: .utf8)
        }
    }

    static func source(lines: Int, seed: Int) -> String {
        (0..<lines).map { "value_\(seed)_\($0) = compute(\($0 * 7919 % 1000), 'text \(seed)')  # line \($0)" }.joined(
            separator: "\n") + "\n"
    }

    /// buildah with its own vfs storage: each processor built for both platforms into a
    /// manifest list with the layer cache on, then pushed with all its images.
    struct Buildah {
        let root: String
        let host: String
        let base: String
        let repo: String

        /// Seconds to build and push every processor.
        func all() -> Double {
            let storage = "--storage-driver vfs --root '\(root)/storage' --runroot '\(root)/run'"
            var script = ""
            for number in 0..<processors {
                let image = "localhost/bench-p\(number)"
                script += """
                    buildah \(storage) manifest rm \(image) >/dev/null 2>&1 || true
                    buildah \(storage) bud --layers --isolation chroot --tls-verify=false --platform linux/amd64,linux/arm64 \
                    --manifest \(image) --build-arg BASE_IMAGE=\(base) -f '\(repo)/tools/bench/p\(number)/1/Dockerfile' '\(repo)' >/dev/null
                    buildah \(storage) manifest push --all --tls-verify=false \(image) docker://\(host)/bench/buildah-p\(number):1 >/dev/null

                    """
            }
            return PushBenchmark.timed(script)
        }
    }
}
