import Foundation

/// RUN steps reused by what they read (issue 14), on the processor shape that motivated it: a
/// real Debian bookworm base with python3 and pip (debootstrap; arm64 through QEMU), the code
/// copied *before* a real `pip install` from PyPI, then `mkdir`/`chmod`. Per platform, side by
/// side with `buildah bud --layers` + push to the same loopback registry:
///   - cold: kiln traced (reuse by reads on, the default), kiln untraced (`--no-reuse-by-reads`),
///     buildah, each first in turn; the tracing overhead is the pip step's seconds in kiln's
///     report, traced / untraced;
///   - a one-line code edit, caches warm: kiln (the install is reused by its read set) and buildah
///     (its positional cache misses, pip runs again).
enum ReadsBenchmark {
    static let dockerfile = """
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
        ENV PYTHONDONTWRITEBYTECODE=1 TZ=UTC
        WORKDIR /tool
        COPY libs/runtime_common /tool/libs/runtime_common
        COPY protocol/ /tool/protocol/
        RUN pip install --no-cache-dir "fastapi>=0.114" "pydantic>=2.8" "uvicorn>=0.30" "httpx>=0.27"
        RUN mkdir -p /home/app && chmod -R 0777 /home/app
        CMD ["python3", "-c", "import fastapi, sys; sys.path.insert(0, '/tool'); import protocol.main"]

        """

    static func run() throws {
        let platforms = (option("--platforms") ?? "linux/amd64,linux/arm64").split(separator: ",").map(String.init)
        let edits = Int(option("--runs") ?? "3") ?? 3
        let buildahEdits = Int(option("--buildah-runs") ?? "2") ?? 2
        let colds = Int(option("--cold-runs") ?? "5") ?? 5
        let mirror = option("--mirror") ?? "http://deb.debian.org/debian"
        let directory = work + "/reads"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let architectures = platforms.map { String($0.split(separator: "/").last!) }
        for tool in ["debootstrap", "buildah", "strace", "docker-registry"] {
            precondition(
                shell("command -v \(tool) > /dev/null").status == 0,
                "kiln-bench reads needs \(tool) (apt-get install \(tool))")
        }
        if architectures.contains("arm64") { registerQEMU() }
        for arch in architectures { try debootstrap(arch: arch, into: directory + "/rootfs-\(arch)", mirror: mirror) }

        let context = directory + "/context"
        try? FileManager.default.removeItem(atPath: context)
        try FileManager.default.createDirectory(
            atPath: context + "/libs/runtime_common", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: context + "/protocol", withIntermediateDirectories: true)
        for file in 0..<12 {
            try LaneBenchmark.source(lines: 200, seed: file).write(
                toFile: context + "/libs/runtime_common/util_\(file).py", atomically: true, encoding: .utf8)
        }
        try "".write(toFile: context + "/protocol/__init__.py", atomically: true, encoding: .utf8)
        try "VERSION = 0\n".write(toFile: context + "/protocol/main.py", atomically: true, encoding: .utf8)
        try dockerfile.write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)

        try PushBenchmark.withRegistry { host in
            let base = try pushBase(host: host, directory: directory, architectures: architectures)
            var report = """
                ## RUN steps reused by what they read: a real `pip install` after the code COPY

                Debian bookworm (debootstrap minbase, python3, pip), `pip install --no-cache-dir fastapi pydantic \
                uvicorn httpx` from PyPI, then `mkdir -p /home/app && chmod -R 0777 /home/app`; a loopback \
                docker-registry; per platform \(colds) cold builds of each (in turn), \(edits) kiln and \(buildahEdits) buildah code \
                edits; medians.

                | platform | pip step, traced | pip step, untraced | tracing overhead (step) | kiln cold, traced | kiln cold, untraced | buildah cold | cold vs buildah | kiln code edit | buildah code edit | edit speed-up |
                | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |

                """
            var details = [String]()
            for (platform, arch) in zip(platforms, architectures) {
                let run = try measure(
                    platform: platform, arch: arch, base: base, host: host, context: context, directory: directory,
                    edits: edits, buildahEdits: buildahEdits, colds: colds)
                func f(_ value: Double) -> String { String(format: "%.1f s", value) }
                func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
                let edit = median(run.kilnEdits)
                let peerEdit = median(run.buildahEdits)
                report +=
                    "| \(platform) | \(f(run.tracedStep)) | \(f(run.untracedStep)) | \(ratio(run.tracedStep / run.untracedStep)) | \(f(run.traced)) | \(f(run.untraced)) | \(f(run.buildahCold)) | \(ratio(run.traced / run.buildahCold)) | \(String(format: "%.2f s", edit)) | \(f(peerEdit)) | \(String(format: "%.0f×", peerEdit / edit)) |\n"
                details.append(
                    "\(platform) all runs (s) — kiln edits: \(run.kilnEdits.map { String(format: "%.2f", $0) }.joined(separator: " ")); buildah edits: \(run.buildahEdits.map { String(format: "%.1f", $0) }.joined(separator: " ")); \(run.note)"
                )
            }
            print(report + "\n" + details.joined(separator: "\n"))
        }
    }

    struct Figures {
        var traced: Double
        var untraced: Double
        var buildahCold: Double
        /// The pip install step's own seconds (kiln's report), traced and untraced.
        var tracedStep: Double
        var untracedStep: Double
        var kilnEdits: [Double]
        var buildahEdits: [Double]
        var note: String
    }

    static func measure(
        platform: String, arch: String, base: String, host: String, context: String, directory: String, edits: Int,
        buildahEdits: Int, colds: Int
    ) throws -> Figures {
        func f(_ value: Double) -> String { String(format: "%.1f", value) }
        let scratch = directory + "/run-\(arch)"
        try? FileManager.default.removeItem(atPath: scratch)
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        func kilnBuild(_ cache: String, tag: String, _ extra: String = "") -> String {
            "'\(kiln)' build --json \(extra) --platform \(platform) --build-arg BASE_IMAGE=\(base) -t \(host)/bench/\(tag):1 --cache-dir '\(scratch)/\(cache)' '\(context)' > '\(scratch)/last.json' 2> '\(scratch)/last.err'"
        }
        func setVersion(_ value: String) throws {
            try "VERSION = \"\(value)\"\n".write(
                toFile: context + "/protocol/main.py", atomically: true, encoding: .utf8)
        }
        // Cold builds, the three side by side in turn (the machine is noisy): each from an empty
        // cache or storage, into a repository of its own (no shared checkpoints).
        let storage = "--storage-driver vfs --root '\(scratch)/buildah' --runroot '\(scratch)/buildah-run'"
        func buildah(_ tag: String) -> String {
            """
            buildah \(storage) bud --layers --isolation chroot --tls-verify=false --platform \(platform) \
            --build-arg BASE_IMAGE=\(base) -t localhost/bench-reads-\(arch) '\(context)' > '\(scratch)/buildah.log' 2>&1 && \
            buildah \(storage) push --tls-verify=false localhost/bench-reads-\(arch) docker://\(host)/bench/\(tag):1 >> '\(scratch)/buildah.log' 2>&1
            """
        }
        try setVersion("cold")
        var tracedColds = [Double]()
        var untracedColds = [Double]()
        var buildahColds = [Double]()
        var tracedSteps = [Double]()
        var untracedSteps = [Double]()
        // The seconds kiln's report gives the first RUN (the pip install): loading its image into
        // buildah, running it, taking the layer back and, traced, recording its read set.
        func stepSeconds() -> Double {
            let report =
                (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch + "/last.json"))))
                as? [String: Any] ?? [:]
            let steps = report["runSteps"] as? [[String: Any]] ?? []
            guard let seconds = steps.first?["seconds"] as? Double else {
                preconditionFailure("kiln's report gives no seconds for the first RUN: \(report)")
            }
            return seconds
        }
        for run in 0..<colds {
            _ = shell("rm -rf '\(scratch)/traced' '\(scratch)/untraced' '\(scratch)/buildah' '\(scratch)/buildah-run'")
            let suffix = run == colds - 1 ? "" : "-\(run)"
            let builds: [() -> Void] = [
                {
                    untracedColds.append(
                        PushBenchmark.timed(
                            kilnBuild("untraced", tag: "reads-untraced-\(arch)\(suffix)", "--no-reuse-by-reads")))
                    untracedSteps.append(stepSeconds())
                },
                {
                    tracedColds.append(PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)\(suffix)")))
                    tracedSteps.append(stepSeconds())
                },
                { buildahColds.append(PushBenchmark.timed(buildah("buildah-reads-\(arch)\(suffix)"))) },
            ]
            // Each in turn goes first: the disk is still writing back (and discarding) what the
            // build before it wrote, which slows whichever comes next.
            for offset in 0..<builds.count {
                settle()
                builds[(run + offset) % builds.count]()
            }
        }
        let (traced, untraced, buildahCold) = (median(tracedColds), median(untracedColds), median(buildahColds))
        var kilnEdits = [Double]()
        var reused = [String]()
        for run in 0..<edits {
            try setVersion("kiln \(run)")
            kilnEdits.append(PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)")))
            let report =
                (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch + "/last.json"))))
                as? [String: Any] ?? [:]
            reused.append("\(report["stepsReused"] ?? "?") reused, \(report["executorRuns"] ?? "?") containers")
        }
        let check = shell(
            "buildah --storage-driver vfs --root '\(scratch)/check' --runroot '\(scratch)/check-run' from --quiet --tls-verify=false --arch \(arch) docker://\(host)/bench/reads-\(arch):1 | xargs -I{} buildah --storage-driver vfs --root '\(scratch)/check' --runroot '\(scratch)/check-run' run --isolation chroot {} python3 -c 'import fastapi, sys; sys.path.insert(0, \"/tool\"); import protocol.main as m; print(fastapi.__version__, m.VERSION)'"
        )
        precondition(check.status == 0, "the edited image does not run: \(check.output)")

        var peerEdits = [Double]()
        for run in 0..<buildahEdits {
            try setVersion("buildah \(run)")
            peerEdits.append(PushBenchmark.timed(buildah("buildah-reads-\(arch)")))
        }
        _ = shell("rm -rf '\(scratch)'")
        return Figures(
            traced: traced, untraced: untraced, buildahCold: buildahCold, tracedStep: median(tracedSteps),
            untracedStep: median(untracedSteps), kilnEdits: kilnEdits, buildahEdits: peerEdits,
            note:
                "pip step (s) — traced \(tracedSteps.map(f).joined(separator: " ")), untraced \(untracedSteps.map(f).joined(separator: " ")); cold (s) — kiln traced \(tracedColds.map(f).joined(separator: " ")), untraced \(untracedColds.map(f).joined(separator: " ")), buildah \(buildahColds.map(f).joined(separator: " ")); kiln edits: \(reused.joined(separator: "; ")); edited image runs: \(check.output.split(separator: "\n").last ?? "")"
        )
    }

    /// Lets the disk write back what the last build wrote before the next one is timed.
    static func settle() {
        _ = shell("sync")
        sleep(5)
    }

    /// QEMU for arm64 in binfmt_misc (with the F flag, so it works inside a chroot), as the
    /// tests register it.
    static func registerQEMU() {
        let directory = "/proc/sys/fs/binfmt_misc"
        if FileManager.default.fileExists(atPath: directory + "/qemu-aarch64") { return }
        let script = """
            set -e
            [ -e \(directory)/register ] || mount -t binfmt_misc binfmt_misc \(directory)
            magic=$(sed -n 's/^magic //p' /usr/share/binfmts/qemu-aarch64)
            mask=$(sed -n 's/^mask //p' /usr/share/binfmts/qemu-aarch64)
            printf '%s' ":qemu-aarch64:M:0:$magic:$mask:/usr/bin/qemu-aarch64-static:FP" > \(directory)/register
            """
        precondition(
            shell(script).status == 0,
            "cannot register qemu-aarch64 in binfmt_misc (needs root and qemu-user-static)")
    }

    /// A Debian bookworm root with python3 and pip for `arch` (kept between runs): debootstrap,
    /// foreign plus the second stage under QEMU for another architecture, with this machine's CA
    /// bundle so pip's TLS verifies inside the container.
    static func debootstrap(arch: String, into root: String, mirror: String) throws {
        if !FileManager.default.fileExists(atPath: root + "/usr/bin/pip3") {
            try? FileManager.default.removeItem(atPath: root)
            let host = shell("dpkg --print-architecture").output.trimmingCharacters(in: .whitespacesAndNewlines)
            let options = "--variant=minbase --include=python3,python3-pip --arch=\(arch)"
            let script =
                host == arch
                ? "debootstrap \(options) bookworm '\(root)' \(mirror)"
                : "debootstrap --foreign \(options) bookworm '\(root)' \(mirror) && chroot '\(root)' /debootstrap/debootstrap --second-stage"
            let result = shell("(\(script)) > '\(root).log' 2>&1")
            precondition(result.status == 0, "debootstrap for \(arch) failed: see \(root).log")
        }
        precondition(
            shell("cp /etc/ssl/certs/ca-certificates.crt '\(root)/etc/ssl/certs/ca-certificates.crt'").status == 0)
    }

    /// The roots as one multi-platform base image, built by kiln from the folders (devices and
    /// the package caches left out) with `PIP_BREAK_SYSTEM_PACKAGES=1`, pushed to the registry.
    static func pushBase(host: String, directory: String, architectures: [String]) throws -> String {
        try """
        FROM scratch
        ARG TARGETARCH
        COPY rootfs-${TARGETARCH}/ /
        ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PIP_BREAK_SYSTEM_PACKAGES=1 LANG=C.UTF-8
        CMD ["python3"]

        """.write(toFile: directory + "/base.Dockerfile", atomically: true, encoding: .utf8)
        try
            "rootfs-*/dev/**\nrootfs-*/proc/**\nrootfs-*/sys/**\nrootfs-*/var/cache/apt/**\nrootfs-*/var/lib/apt/lists/**\nrootfs-*/debootstrap/**\ncontext/\nrun-*/\nbase-cache/\n*.log\n"
            .write(toFile: directory + "/.dockerignore", atomically: true, encoding: .utf8)
        let reference = "\(host)/base/python:bookworm"
        let platforms = architectures.map { "linux/\($0)" }.joined(separator: ",")
        let built = shell(
            "'\(kiln)' build -f '\(directory)/base.Dockerfile' --platform \(platforms) -t \(reference) --cache-dir '\(directory)/base-cache' '\(directory)' 2>&1"
        )
        precondition(built.status == 0, "the base image did not build: \(built.output)")
        return reference
    }
}
