import Foundation
import Testing

/// The fault and bad-input campaign, kept as a permanent suite: every input that once made kiln
/// hang, run out of memory, write a wrong file, lose a secret or mislabel an error, each with what
/// it must do now.
@Suite("Bad-input and fault campaign", .serialized)
struct CampaignTests {
    /// A context with one small file and a Dockerfile.
    static func context(_ scratch: Scratch, _ dockerfile: String) throws -> String {
        let context = try scratch.sub("context-" + UUID().uuidString.prefix(6))
        try "x\n".write(toFile: context + "/f", atomically: true, encoding: .utf8)
        try dockerfile.write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        return context
    }

    /// `kiln build -o` of a context, under a 2 GiB address-space cap so a runaway expansion fails
    /// fast instead of taking the machine.
    static func build(_ context: String, scratch: Scratch, extra: [String] = []) throws -> Tools.Result {
        let output = scratch.path + "/out-" + UUID().uuidString.prefix(6)
        let command =
            ([
                Tools.kiln, "build", "-f", context + "/Dockerfile", "-o", "oci:\(output):x", "--cache-dir",
                scratch.path + "/cache",
            ] + extra + [context])
            .map { "'\($0)'" }.joined(separator: " ")
        return try Tools.shell("ulimit -v 2097152; timeout 120 \(command)")
    }

    // MARK: - Dockerfiles

    /// Dockerfiles that must be refused with exit 2 and one line naming the file, line and column.
    static let refused: [(name: String, dockerfile: String, line: Int, fragment: String)] = [
        (
            "31 doubling ARGs",
            "FROM scratch\nARG A0=xxxxxxxxxxxxxxxx\n"
                + (1...30).map { "ARG A\($0)=${A\($0 - 1)}${A\($0 - 1)}\n" }.joined() + "COPY f /f\n",
            19, "expands to more than 1 MiB"
        ),
        (
            "31 doubling ENVs",
            "FROM scratch\nENV A0=xxxxxxxxxxxxxxxx\n"
                + (1...30).map { "ENV A\($0)=${A\($0 - 1)}${A\($0 - 1)}\n" }.joined() + "COPY f /f\n",
            19, "expands to more than 1 MiB"
        ),
        ("a NUL in a COPY destination", "FROM scratch\nCOPY f /dest\u{0}evil\n", 2, "NUL byte"),
        ("a symlink loop", "FROM scratch\nCOPY loop-a /x\n", 2, "loop of symlinks"),
    ]

    @Test("refused with exit 2 at the line, in bounded memory", arguments: refused.indices)
    func refusedDockerfiles(_ index: Int) throws {
        let example = Self.refused[index]
        let scratch = try Scratch("campaign-refused")
        let context = try Self.context(scratch, example.dockerfile)
        try FileManager.default.createSymbolicLink(atPath: context + "/loop-a", withDestinationPath: "loop-b")
        try FileManager.default.createSymbolicLink(atPath: context + "/loop-b", withDestinationPath: "loop-a")
        let result = try Self.build(context, scratch: scratch)
        #expect(result.status == 2, "\(example.name): exit \(result.status): \(result.stderr.suffix(500))")
        let line = Tools.oneLine(result)
        #expect(
            line.contains("Dockerfile:\(example.line):") && line.contains(example.fragment), "\(example.name): \(line)")
    }

    @Test("100k LABEL lines and 100k ENV lines build in linear time (32k LABELs took 42 s)")
    func manyLines() throws {
        let scratch = try Scratch("campaign-lines")
        let labels = "FROM scratch\n" + (0..<100_000).map { "LABEL l\($0)=v\($0)\n" }.joined() + "COPY f /f\n"
        let envs = "FROM scratch\n" + (0..<100_000).map { "ENV e\($0)=v\($0)\n" }.joined() + "COPY f /f\n"
        for text in [labels, envs] {
            let started = Date()
            let result = try Self.build(try Self.context(scratch, text), scratch: scratch)
            #expect(result.status == 0, "\(result.stderr.suffix(500))")
            // Linear is a few seconds in a debug build; quadratic was minutes.
            #expect(Date().timeIntervalSince(started) < 60)
        }
    }

    @Test("ADD of a tar keeps its hard links and names a device node or FIFO instead of dropping it")
    func archives() throws {
        let scratch = try Scratch("campaign-tar")
        let source = try scratch.sub("tree")
        let made = try Tools.shell(
            """
            cd '\(source)' && mkdir sub && echo hello > a && ln a sub/hard && ln -s a sym && tar -cf ../plain.tar . \
            && mkfifo fifo && tar -cf ../special.tar .
            """)
        try #require(made.status == 0, "\(made.stderr)")
        let context = try Self.context(scratch, "FROM scratch\nADD x.tar /d/\n")
        try FileManager.default.copyItem(atPath: scratch.path + "/plain.tar", toPath: context + "/x.tar")
        let output = scratch.path + "/plain"
        let built = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "-o", "oci:\(output):x", "--cache-dir", scratch.path + "/cache",
            context,
        ])
        try #require(built.status == 0, "\(built.stderr)")
        let unpacked = try Tools.run(["umoci", "raw", "unpack", "--image", "\(output):x", scratch.path + "/rootfs"])
        try #require(unpacked.status == 0, "\(unpacked.stderr)")
        let links = try Tools.shell("stat -c '%h %i' '\(scratch.path)/rootfs/d/a' '\(scratch.path)/rootfs/d/sub/hard'")
            .stdout.split(separator: "\n")
        #expect(
            links.count == 2 && links[0] == links[1] && links[0].hasPrefix("2 "),
            "not one file with two names: \(links)")

        try FileManager.default.removeItem(atPath: context + "/x.tar")
        try FileManager.default.copyItem(atPath: scratch.path + "/special.tar", toPath: context + "/x.tar")
        let refused = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "-o", "oci:\(scratch.path)/special:x", "--cache-dir",
            scratch.path + "/cache", context,
        ])
        #expect(refused.status == 2)
        let line = Tools.oneLine(refused)
        #expect(line.contains("Dockerfile:2:") && line.contains("'fifo'") && line.contains("FIFO"), "\(line)")
    }

    @Test("a layout on a full disk exits 3 and leaves no temporary file; a corrupt layout blob on push exits 4")
    func exitStatuses() throws {
        let scratch = try Scratch("campaign-exits")
        let small = try scratch.sub("small")
        let mounted = try Tools.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small])
        try #require(mounted.status == 0, "mounting a small tmpfs needs root: \(mounted.stderr)")
        defer { _ = try? Tools.run(["umount", small]) }
        let context = try Self.context(scratch, "FROM scratch\nCOPY big /big\n")
        try #require(try Tools.shell("head -c 3M /dev/urandom > '\(context)/big'").status == 0)
        let full = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "-o", "oci:\(small)/out:x", "--cache-dir", scratch.path + "/cache",
            context,
        ])
        #expect(full.status == 3, "\(full.stderr)")
        #expect(Tools.oneLine(full).contains("No space left on device"))
        let left = try Tools.shell("find '\(small)' -name '.kiln-tmp-*' | wc -l").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        #expect(left == "0")

        let layout = scratch.path + "/layout"
        let built = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "-o", "oci:\(layout):x", "--cache-dir", scratch.path + "/cache",
            context,
        ])
        try #require(built.status == 0, "\(built.stderr)")
        let blob = try Tools.shell("ls -S '\(layout)/blobs/sha256' | head -1").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        try #require(
            try Tools.shell(
                "printf 'garbage' | dd of='\(layout)/blobs/sha256/\(blob)' bs=1 seek=100 conv=notrunc 2>/dev/null"
            ).status == 0)
        let registry = try RegistryServer()
        let pushed = try Tools.kiln(["push", "\(layout):x", "\(registry.host)/acme/corrupt:1"])
        #expect(pushed.status == 4, "\(pushed.stderr)")
        #expect(Tools.oneLine(pushed).contains("corrupt"))
    }

    @Test("an index that lists another index for the platform is followed, and the error lists only platform images")
    func nestedIndex() throws {
        let scratch = try Scratch("campaign-index")
        let registry = try RegistryServer()
        let base = try BusyboxBase(registry: registry, scratch: scratch)
        let copied = try Tools.run([
            "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
            "docker://\(base.reference)", "docker://\(registry.host)/fixtures/nested:inner",
        ])
        try #require(copied.status == 0, "\(copied.stderr)")
        let inner = try Tools.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(base.reference)"])
        let digest = "sha256:" + (inner.stdoutBytes.sha256Hex ?? "")
        let outer =
            #"{"manifests":[{"digest":"\#(digest)","mediaType":"application/vnd.oci.image.index.v1+json","platform":{"architecture":"amd64","os":"linux"},"size":\#(inner.stdoutBytes.count)}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        let put = try Tools.run([
            "python3", "-c",
            "import sys,urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(), method='PUT', headers={'Content-Type':'application/vnd.oci.image.index.v1+json'}))",
            "http://\(registry.host)/v2/fixtures/nested/manifests/1", outer,
        ])
        try #require(put.status == 0, "\(put.stderr)")
        let context = try Self.context(scratch, "FROM \(registry.host)/fixtures/nested:1\nCOPY f /f\n")
        let built = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "-o", "oci:\(scratch.path)/nested:x", "--cache-dir",
            scratch.path + "/cache", context,
        ])
        #expect(built.status == 0, "\(built.stderr)")
        let arm = try Tools.kiln([
            "build", "-f", context + "/Dockerfile", "--platform", "linux/riscv64", "-o", "oci:\(scratch.path)/nested:y",
            "--cache-dir", scratch.path + "/cache", context,
        ])
        #expect(arm.status == 2)
        #expect(Tools.oneLine(arm).contains("has no linux/riscv64 image (it lists no platform image)"), "\(arm.stderr)")
    }

    // MARK: - Pins and configuration files

    @Test(
        "a killed pin write's temporary file never reaches an image and is removed; concurrent lanes on one checkout both succeed"
    )
    func pinTemporaries() throws {
        let fixture = try LaneFixture("campaign-pin-temp")
        // text/summarize copies its whole folder: a temporary file beside its registry.yaml would
        // be copied into the image.
        let folder = fixture.repo + "/code/apps/core/processors/text_summarize"
        let stale = folder + "/.kiln-tmp-99999999-registry.yaml-AbCdEf"
        let old = folder + "/.tmp-registry.yaml-XyZ123"
        for path in [stale, old] {
            try "image: {oci: half-written}\n".write(toFile: path, atomically: false, encoding: .utf8)
        }
        _ = try Tools.run(["touch", "-d", "10 minutes ago", old])
        let first = try fixture.lane()
        #expect(first["text/summarize@3"]?["status"] as? String == "built")
        #expect(
            !FileManager.default.fileExists(atPath: stale) && !FileManager.default.fileExists(atPath: old),
            "stale temporaries left")
        let files = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "docker://\(fixture.registry.host)/acme/text-summarize:3",
            "oci:\(fixture.scratch.path)/summ:x",
        ])
        try #require(files.status == 0, "\(files.stderr)")
        let inImage = try Tools.shell(
            "for f in '\(fixture.scratch.path)'/summ/blobs/sha256/*; do tar -tzf \"$f\" 2>/dev/null; done | grep -c 'tmp-' || true"
        )
        #expect(inImage.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")

        // Two lanes at once on one checkout (a developer's plan while CI pins): both succeed.
        try fixture.append("code/libs/textkit/normalize.py", "# concurrent\n")
        let one = try BackgroundKiln(["build", "--push", "--pin"] + fixture.common + ["--cache-dir", fixture.cache])
        let two = try BackgroundKiln(
            ["build", "--push", "--pin"] + fixture.common + ["--cache-dir", try fixture.scratch.sub("cache-2")])
        #expect(one.wait() == 0, "\(one.stdout.suffix(800))")
        #expect(two.wait() == 0, "\(two.stdout.suffix(800))")
        let leftovers = try Tools.shell("find '\(fixture.repo)' -name '.kiln-tmp-*' -o -name '.tmp-*' | wc -l").stdout
        #expect(leftovers.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test(
        "a symlinked registry.yaml is pinned through the link, keeping the target's mode; a FIFO registry.yaml is refused at once"
    )
    func configFiles() throws {
        let fixture = try LaneFixture("campaign-config")
        let folder = fixture.repo + "/tools/llm/litellm/1"
        let kept = fixture.repo + "/registry-files/llm-litellm.yaml"
        try FileManager.default.createDirectory(
            atPath: fixture.repo + "/registry-files", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: folder + "/registry.yaml", toPath: kept)
        chmod(kept, 0o640)
        try FileManager.default.createSymbolicLink(
            atPath: folder + "/registry.yaml", withDestinationPath: "../../../../registry-files/llm-litellm.yaml")
        let reports = try fixture.lane()
        #expect(reports["llm/litellm@1"]?["pinned"] as? Bool == true)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: folder + "/registry.yaml")
        #expect(link == "../../../../registry-files/llm-litellm.yaml", "the link was replaced")
        #expect(
            try String(contentsOfFile: kept, encoding: .utf8).contains(
                "amd64: \(fixture.registry.host)/acme/llm-litellm@sha256:"))
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: kept)[.posixPermissions] as? Int)
        #expect(mode == 0o640, "mode \(String(mode, radix: 8))")

        let fifo = fixture.repo + "/tools/text/echo/1/registry.yaml"
        try FileManager.default.removeItem(atPath: fifo)
        #expect(mkfifo(fifo, 0o644) == 0)
        let started = Date()
        let result = try Tools.shell(
            "timeout 20 '\(Tools.kiln)' plan --root '\(fixture.repo)' --registry \(fixture.registry.host)")
        #expect(result.status == 2 && Date().timeIntervalSince(started) < 15, "\(result.status): \(result.stderr)")
        #expect(
            result.stderr.contains("tools/text/echo/1/registry.yaml") && result.stderr.contains("FIFO"),
            "\(result.stderr)")
    }

    // MARK: - Killed runs

    @Test(
        "kill -9 at random moments of builds and lanes: store verify finds nothing corrupt, every pin is whole, a rerun completes"
    )
    func killLoop() throws {
        let fixture = try LaneFixture("campaign-kill")
        try Tools.shell("head -c 24M /dev/urandom > '\(fixture.repo)/tools/text/echo/1/protocol/model.bin'")
        var generator = SystemRandomNumberGenerator()
        let before = try fixture.pins()
        for round in 0..<6 {
            try fixture.append("code/libs/textkit/normalize.py", "# round \(round)\n")
            let layout = fixture.scratch.path + "/layout"
            let arguments =
                round % 2 == 0
                ? ["build", "--push", "--pin"] + fixture.common + ["--cache-dir", fixture.cache]
                : [
                    "build", "-f", fixture.repo + "/tools/text/echo/1/Dockerfile", "--build-arg",
                    "BASE_IMAGE=\(fixture.baseReference)", "-o", "oci:\(layout):x", "--cache-dir", fixture.cache,
                    fixture.repo,
                ]
            let kiln = try BackgroundKiln(arguments)
            usleep(UInt32.random(in: 150_000...1_500_000, using: &generator))
            kiln.signal(SIGKILL)
            _ = kiln.wait()

            let verified = try Tools.kiln(["store", "verify", "--cache-dir", fixture.cache, "--json"])
            #expect(verified.status == 0, "round \(round): \(verified.stdout) \(verified.stderr)")
            #expect(verified.stdout.contains("\"removedCorrupt\":[]"), "round \(round): \(verified.stdout)")
            for (path, bytes) in try fixture.pins() {
                let text = String(decoding: bytes, as: UTF8.self)
                let parsed = try Tools.run([
                    "python3", "-c", "import sys, yaml; yaml.safe_load(open(sys.argv[1]))", fixture.repo + "/" + path,
                ])
                try #require(
                    !parsed.stderr.contains("No module named"), "PyYAML is needed: apt-get install -y python3-yaml")
                #expect(parsed.status == 0, "round \(round): \(path) is not whole YAML: \(text)")
                #expect(bytes == before[path] || text.contains("@sha256:"), "round \(round): \(path)")
            }
        }
        let final = try fixture.lane()
        #expect(
            LaneFixture.statuses(final).values.allSatisfy { ["built", "hit", "disabled"].contains($0) },
            "\(LaneFixture.statuses(final))")
        #expect(
            try fixture.run(["verify"]).values.allSatisfy {
                $0["status"] as? String == "ok" || $0["status"] as? String == "disabled"
            })
        let layout = fixture.scratch.path + "/layout"
        let rebuilt = try Tools.kiln([
            "build", "-f", fixture.repo + "/tools/text/echo/1/Dockerfile", "--build-arg",
            "BASE_IMAGE=\(fixture.baseReference)", "-o", "oci:\(layout):x", "--cache-dir", fixture.cache, fixture.repo,
        ])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(
            try Tools.shell("find '\(layout)' -name '.kiln-tmp-*' | wc -l").stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
        #expect(
            try Tools.shell("ls -A '\(fixture.cache)/tmp' 2>/dev/null | wc -l").stdout.trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
    }
}
