import Foundation

/// A processor with RUN steps (an install simulated by a RUN that sleeps and writes files), on
/// the busybox base in a loopback registry, side by side with `buildah bud --layers` + push:
///   (a) a file copied after the last RUN changed, both tools' caches warm;
///   (b) a fresh runner (empty kiln cache) with the registry cache warm.
enum RunBenchmark {
    static func run() throws {
        let runs = Int(option("--runs") ?? "5") ?? 5
        let buildahRuns = Int(option("--buildah-runs") ?? "3") ?? 3
        // What the simulated install leaves behind: a site-packages-sized tree.
        let installMiB = Int(option("--install-mib") ?? "64") ?? 64
        let directory = work + "/run-steps"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory + "/context/lib", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/context/app", withIntermediateDirectories: true)
        let context = directory + "/context"
        try "common\n".write(toFile: context + "/lib/common.txt", atomically: true, encoding: .utf8)
        try "print('v0')\n".write(toFile: context + "/app/main.py", atomically: true, encoding: .utf8)
        try """
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
        ENV PYTHONDONTWRITEBYTECODE=1 TZ=UTC
        RUN sleep 3 && mkdir -p /opt/deps && for i in $(seq 300); do echo "package $i" > /opt/deps/p$i; done \\
            && dd if=/dev/urandom of=/opt/deps/native.so bs=1048576 count=\(installMiB) 2>/dev/null
        WORKDIR /tool
        COPY lib/ /tool/libs/
        RUN sleep 2 && ls /tool/libs > /opt/libs.txt
        COPY app/ /tool/app/
        EXPOSE 8000
        CMD ["sh", "-c", "cat /tool/app/main.py"]

        """.write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)

        try PushBenchmark.withRegistry { host in
            let base = try LaneBenchmark.pushBase(host: host, directory: directory)
            let cache = directory + "/kiln-cache"
            func kilnBuild(_ cache: String) -> String {
                "'\(kiln)' build --platform linux/amd64 --build-arg BASE_IMAGE=\(base) -t \(host)/bench/run:1 --cache-dir '\(cache)' '\(context)' > /dev/null 2>&1"
            }
            let cold = PushBenchmark.timed(kilnBuild(cache))
            var changedAfterLastRun = [Double]()
            var freshRunner = [Double]()
            for run in 0..<runs {
                try "print('kiln \(run)')\n".write(toFile: context + "/app/main.py", atomically: true, encoding: .utf8)
                changedAfterLastRun.append(PushBenchmark.timed(kilnBuild(cache)))
                freshRunner.append(PushBenchmark.timed(kilnBuild(directory + "/fresh-\(run)")))
            }

            let storage =
                "--storage-driver vfs --root '\(directory)/buildah/storage' --runroot '\(directory)/buildah/run'"
            let buildah = """
                buildah \(storage) bud --layers --isolation chroot --tls-verify=false --platform linux/amd64 \
                --build-arg BASE_IMAGE=\(base) -t localhost/bench-run '\(context)' > /dev/null 2>&1 && \
                buildah \(storage) push --tls-verify=false localhost/bench-run docker://\(host)/bench/buildah-run:1 > /dev/null 2>&1
                """
            let buildahCold = PushBenchmark.timed(buildah)
            var buildahChanged = [Double]()
            for run in 0..<buildahRuns {
                try "print('buildah \(run)')\n".write(
                    toFile: context + "/app/main.py", atomically: true, encoding: .utf8)
                buildahChanged.append(PushBenchmark.timed(buildah))
            }

            let a = median(changedAfterLastRun)
            let b = median(freshRunner)
            let peer = median(buildahChanged)
            func f(_ value: Double) -> String { String(format: "%.3f", value) }
            print(
                """
                ## RUN steps: a processor with two RUNs (3 s and 2 s of simulated install, \(installMiB) MiB installed), linux/amd64

                | case | kiln median s | buildah bud --layers + push, median s | kiln speed-up | goal |
                | --- | ---: | ---: | ---: | --- |
                | (a) file copied after the last RUN changed, caches warm | \(f(a)) | \(f(peer)) | \(String(format: "%.0f", peer / a))× | ≥ 20× |
                | (b) fresh runner, registry cache warm | \(f(b)) | — | — | builds nothing |

                cold first builds — kiln: \(f(cold)) s, buildah: \(f(buildahCold)) s
                all runs (s) — kiln (a): \(changedAfterLastRun.map(f).joined(separator: " ")); (b): \(freshRunner.map(f).joined(separator: " ")); \
                buildah (a): \(buildahChanged.map(f).joined(separator: " "))
                """)
        }
    }
}
