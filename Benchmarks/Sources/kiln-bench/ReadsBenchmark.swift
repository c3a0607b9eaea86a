import Foundation

/// RUN steps reused by what they read (issues 14 and 31), on the processor shape that motivated
/// it: a real Debian bookworm base with python3 and pip (debootstrap; arm64 through QEMU),
/// `apt-get install` of build tools right after `FROM`, the code copied *before* a real `pip
/// install -r requirements.txt` from PyPI, then `mkdir`/`chmod`. Per platform, side by side with
/// `buildah bud --layers` + push to the same loopback registry:
///   - cold: kiln traced (reuse by reads on, the default), kiln untraced (`--no-reuse-by-reads`),
///     kiln traced with buildah's chroot isolation (`--isolation chroot`, against the default's
///     runc namespaces), buildah, each first in turn; the tracing overhead is the pip step's seconds in kiln's
///     report, traced / untraced, and the whole build's;
///   - a one-line code edit, caches warm: kiln (the install is reused by its read set) and buildah
///     (its positional cache misses, pip runs again);
///   - the same edit on a fresh runner: kiln with an empty store, the checkpoints and read sets in
///     the registry (what the store holds afterwards is what it downloaded);
///   - a new file in the copied folder, warm;
///   - a changed requirements file: the install must run again.
enum ReadsBenchmark {
    static let dockerfile = """
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
        ENV PYTHONDONTWRITEBYTECODE=1 TZ=UTC
        RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
        WORKDIR /tool
        COPY libs/runtime_common /tool/libs/runtime_common
        COPY protocol/ /tool/protocol/
        COPY requirements.txt /tool/
        RUN pip install --no-cache-dir -r /tool/requirements.txt
        RUN mkdir -p /home/app && chmod -R 0777 /home/app
        CMD ["python3", "-c", "import fastapi, sys; sys.path.insert(0, '/tool'); import protocol.main"]

        """

    static let requirements = "fastapi>=0.114\npydantic>=2.8\nuvicorn>=0.30\nhttpx>=0.27\n"

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
        try requirements.write(toFile: context + "/requirements.txt", atomically: true, encoding: .utf8)
        try dockerfile.write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)

        try PushBenchmark.withRegistry { host in
            let base = try pushBase(host: host, directory: directory, architectures: architectures)
            var report = """
                ## RUN steps reused by what they read: apt-get, the code COPY, a real `pip install -r`

                Debian bookworm (debootstrap minbase, python3, pip); `apt-get install gcc libc6-dev` right after \
                `FROM`; the code copied; `pip install --no-cache-dir -r requirements.txt` (fastapi, pydantic, uvicorn, \
                httpx) from PyPI; then `mkdir -p /home/app && chmod -R 0777 /home/app`; a loopback docker-registry; \
                per platform \(colds) cold builds of each (in turn), \(edits) kiln and \(buildahEdits) buildah code edits; \
                medians. A fresh runner is an empty store with the checkpoints in the registry; "store" is what it \
                held afterwards (everything it downloaded or wrote).

                | platform | pip step traced / untraced | kiln cold traced / untraced | kiln cold, oci / chroot isolation | buildah cold | kiln code edit | fresh runner edit (store) | new file in the COPY | buildah code edit |
                | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |

                """
            var details = [String]()
            for (platform, arch) in zip(platforms, architectures) {
                let run = try measure(
                    platform: platform, arch: arch, base: base, host: host, context: context, directory: directory,
                    edits: edits, buildahEdits: buildahEdits, colds: colds)
                func f(_ value: Double) -> String { String(format: "%.1f s", value) }
                func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
                report +=
                    "| \(platform) | \(f(run.tracedStep)) / \(f(run.untracedStep)) = \(ratio(run.tracedStep / run.untracedStep)) | \(f(run.traced)) / \(f(run.untraced)) = \(ratio(run.traced / run.untraced)) | \(f(run.traced)) / \(f(run.chroot)) = \(ratio(run.traced / run.chroot)) | \(f(run.buildahCold)) | \(String(format: "%.2f s", median(run.kilnEdits))) | \(String(format: "%.2f s", median(run.freshEdits))) (\(String(format: "%.1f MB", run.freshStore / 1e6))) | \(String(format: "%.2f s", median(run.newFiles))) | \(f(median(run.buildahEdits))) |\n"
                details.append("\(platform) — \(run.note)")
            }
            print(report + "\n" + details.joined(separator: "\n"))
        }
    }

    struct Figures {
        var traced: Double
        var untraced: Double
        /// Traced, with `--isolation chroot` (the default is runc's namespaces).
        var chroot: Double
        var buildahCold: Double
        /// The pip install step's own seconds (kiln's report), traced and untraced.
        var tracedStep: Double
        var untracedStep: Double
        var kilnEdits: [Double]
        var freshEdits: [Double]
        /// Bytes in a fresh runner's store after its build (median).
        var freshStore: Double
        var newFiles: [Double]
        var buildahEdits: [Double]
        var note: String
    }

    static func measure(
        platform: String, arch: String, base: String, host: String, context: String, directory: String, edits: Int,
        buildahEdits: Int, colds: Int
    ) throws -> Figures {
        func f(_ value: Double) -> String { String(format: "%.2f", value) }
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
        func lastReport() -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: scratch + "/last.json"))))
                as? [String: Any] ?? [:]
        }
        // The seconds kiln's report gives the pip install: running it, taking the layer back
        // and, traced, recording its read set.
        func pipSeconds() -> Double {
            let report = lastReport()
            let steps = report["runSteps"] as? [[String: Any]] ?? []
            guard let seconds = steps.first(where: { ($0["line"] as? Int) == 9 })?["seconds"] as? Double else {
                preconditionFailure("kiln's report gives no seconds for the pip install: \(report)")
            }
            return seconds
        }
        /// What became of the pip install in the last build: reused, run or from its key.
        func pipOutcome() -> String {
            let steps = lastReport()["runSteps"] as? [[String: Any]] ?? []
            return steps.first(where: { ($0["line"] as? Int) == 9 })?["outcome"] as? String ?? "?"
        }
        try setVersion("cold")
        var tracedColds = [Double]()
        var untracedColds = [Double]()
        var chrootColds = [Double]()
        var buildahColds = [Double]()
        var tracedSteps = [Double]()
        var untracedSteps = [Double]()
        for run in 0..<colds {
            _ = shell(
                "rm -rf '\(scratch)/traced' '\(scratch)/untraced' '\(scratch)/chroot' '\(scratch)/buildah' '\(scratch)/buildah-run'"
            )
            let suffix = run == colds - 1 ? "" : "-\(run)"
            let builds: [() -> Void] = [
                {
                    untracedColds.append(
                        PushBenchmark.timed(
                            kilnBuild("untraced", tag: "reads-untraced-\(arch)\(suffix)", "--no-reuse-by-reads")))
                    untracedSteps.append(pipSeconds())
                },
                {
                    tracedColds.append(PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)\(suffix)")))
                    tracedSteps.append(pipSeconds())
                },
                {
                    chrootColds.append(
                        PushBenchmark.timed(
                            kilnBuild("chroot", tag: "reads-chroot-\(arch)\(suffix)", "--isolation chroot")))
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
        var outcomes = [String]()
        var kilnEdits = [Double]()
        for run in 0..<edits {
            try setVersion("kiln \(run)")
            kilnEdits.append(PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)")))
            outcomes.append("edit: pip \(pipOutcome())")
        }
        // A fresh runner: an empty store; what it holds afterwards is what it downloaded or wrote.
        var freshEdits = [Double]()
        var freshStores = [Double]()
        for run in 0..<edits {
            try setVersion("fresh \(run)")
            _ = shell("rm -rf '\(scratch)/fresh'")
            freshEdits.append(PushBenchmark.timed(kilnBuild("fresh", tag: "reads-\(arch)")))
            outcomes.append("fresh: pip \(pipOutcome())")
            freshStores.append(
                Double(
                    shell("du -sb '\(scratch)/fresh' | cut -f1").output.trimmingCharacters(in: .whitespacesAndNewlines))
                    ?? -1)
        }
        var newFiles = [Double]()
        for run in 0..<edits {
            try "# new \(run)\n".write(
                toFile: context + "/libs/runtime_common/new_\(run).py", atomically: true, encoding: .utf8)
            newFiles.append(PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)")))
            outcomes.append("new file: pip \(pipOutcome())")
        }
        for run in 0..<edits {
            try? FileManager.default.removeItem(atPath: context + "/libs/runtime_common/new_\(run).py")
        }
        let check = shell(
            "buildah --storage-driver vfs --root '\(scratch)/check' --runroot '\(scratch)/check-run' from --quiet --tls-verify=false --arch \(arch) docker://\(host)/bench/reads-\(arch):1 | xargs -I{} buildah --storage-driver vfs --root '\(scratch)/check' --runroot '\(scratch)/check-run' run --isolation chroot {} python3 -c 'import fastapi, sys; sys.path.insert(0, \"/tool\"); import protocol.main as m; print(fastapi.__version__, m.VERSION)'"
        )
        precondition(check.status == 0, "the edited image does not run: \(check.output)")
        // The requirements change: the install must run again.
        try (requirements + "six>=1.16\n").write(
            toFile: context + "/requirements.txt", atomically: true, encoding: .utf8)
        let requirementsChange = PushBenchmark.timed(kilnBuild("traced", tag: "reads-\(arch)"))
        outcomes.append("requirements change: pip \(pipOutcome())")
        try requirements.write(toFile: context + "/requirements.txt", atomically: true, encoding: .utf8)

        var peerEdits = [Double]()
        for run in 0..<buildahEdits {
            try setVersion("buildah \(run)")
            peerEdits.append(PushBenchmark.timed(buildah("buildah-reads-\(arch)")))
        }
        _ = shell("rm -rf '\(scratch)'")
        return Figures(
            traced: traced, untraced: untraced, chroot: median(chrootColds), buildahCold: buildahCold,
            tracedStep: median(tracedSteps),
            untracedStep: median(untracedSteps), kilnEdits: kilnEdits, freshEdits: freshEdits,
            freshStore: median(freshStores), newFiles: newFiles, buildahEdits: peerEdits,
            note: """
                all runs (s): pip step traced \(tracedSteps.map(f).joined(separator: " ")), untraced \(untracedSteps.map(f).joined(separator: " ")); \
                colds kiln traced \(tracedColds.map(f).joined(separator: " ")), untraced \(untracedColds.map(f).joined(separator: " ")), chroot isolation \(chrootColds.map(f).joined(separator: " ")), buildah \(buildahColds.map(f).joined(separator: " ")); \
                kiln edits \(kilnEdits.map(f).joined(separator: " ")); fresh edits \(freshEdits.map(f).joined(separator: " ")) with stores of \(freshStores.map { String(format: "%.1f MB", $0 / 1e6) }.joined(separator: " ")); \
                new files \(newFiles.map(f).joined(separator: " ")); requirements change \(f(requirementsChange)); buildah edits \(peerEdits.map(f).joined(separator: " ")); \
                \(outcomes.joined(separator: ", ")); the edited image runs: \(check.output.split(separator: "\n").last ?? "")
                """
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
