import Foundation
import Testing

/// A `RUN` step cannot reach the machine that builds it (issue 33): the classic chroot escape,
/// the first process's environment, the host's process list, the checkout and kiln's store, each
/// tried from inside a step built by `kiln build` with its default isolation, on amd64 and on
/// arm64 under QEMU. The step writes what it found into the image; the test reads it back with
/// `buildah run`, and looks on the host for what an escape would have written.
@Suite("RUN steps stay in their own root (issue 33)", .serialized)
struct ContainmentTests {
    /// A static helper without libc, built for both architectures by the toolchain's clang: it
    /// calls `chroot` into a new directory without `chdir`, climbs with `chdir("..")`, calls
    /// `chroot(".")`, and writes `escaped` to the path it is given. In buildah's chroot
    /// isolation that lands on the host; in a pivoted root it lands in the step's own root.
    static let escapeSource = """
        #if defined(__x86_64__)
        enum { WRITE = 1, OPENAT = 257, MKDIRAT = 258, CHDIR = 80, CHROOT = 161, EXIT = 60 };
        static long sys(long n, long a, long b, long c, long d) {
            long r;
            register long r10 __asm__("r10") = d;
            __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
            return r;
        }
        __asm__(".globl _start\\n_start:\\n mov %rsp, %rdi\\n and $-16, %rsp\\n call begin\\n");
        #elif defined(__aarch64__)
        enum { WRITE = 64, OPENAT = 56, MKDIRAT = 34, CHDIR = 49, CHROOT = 51, EXIT = 93 };
        static long sys(long n, long a, long b, long c, long d) {
            register long x8 __asm__("x8") = n;
            register long x0 __asm__("x0") = a;
            register long x1 __asm__("x1") = b;
            register long x2 __asm__("x2") = c;
            register long x3 __asm__("x3") = d;
            __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
            return x0;
        }
        __asm__(".globl _start\\n_start:\\n mov x0, sp\\n bl begin\\n");
        #endif
        static long length(const char *s) { long n = 0; while (s[n]) n++; return n; }
        static void say(const char *s) { sys(WRITE, 1, (long)s, length(s), 0); }
        void begin(long *stack) {
            const char *target = ((char **)(stack + 1))[1];
            sys(MKDIRAT, -100, (long)"escape-jail", 0755, 0);
            if (sys(CHROOT, (long)"escape-jail", 0, 0, 0) != 0) say("chroot refused\\n");
            for (int i = 0; i < 64; i++) sys(CHDIR, (long)"..", 0, 0, 0);
            sys(CHROOT, (long)".", 0, 0, 0);
            long fd = sys(OPENAT, -100, (long)target, 01 | 0100 | 01000, 0644);
            if (fd < 0) { say("could not write\\n"); sys(EXIT, 0, 0, 0, 0); }
            sys(WRITE, fd, (long)"escaped\\n", 8, 0);
            say("wrote\\n");
            sys(EXIT, 0, 0, 0, 0);
        }
        """

    /// Builds the helper for `architecture` (`x86_64`, `aarch64`) into `path`.
    static func buildEscape(architecture: String, to path: String, scratch: Scratch) throws {
        try Tools.require("clang", package: "the Swift toolchain's clang")
        let source = scratch.path + "/escape.c"
        try escapeSource.write(toFile: source, atomically: true, encoding: .utf8)
        let built = try Tools.run([
            "clang", "--target=\(architecture)-linux-gnu", "-O1", "-nostdlib", "-static", "-ffreestanding",
            "-fno-stack-protector", "-fuse-ld=lld", "-o", path, source,
        ])
        try #require(built.status == 0, "clang could not build the escape helper: \(built.stderr)")
    }

    @Test(
        "a step cannot write on the host (chroot escape), read kiln's environment, see host processes, or reach the checkout and the store",
        arguments: ["amd64", "arm64"])
    func stepStaysInside(arch: String) throws {
        if arch == "arm64" { try ARM64Emulation.register() }
        try Tools.require("runc", package: "runc")
        let setup = try RunStepTests.Setup("contain-\(arch)")
        let scratch = setup.scratch
        try Self.buildEscape(
            architecture: arch == "amd64" ? "x86_64" : "aarch64", to: setup.context + "/escape", scratch: scratch)
        // What a step must not reach: a file beside the checkout, the checkout's credentials, the store.
        let hostFile = scratch.path + "/host-secret"
        try "host secret\n".write(toFile: hostFile, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: setup.context + "/.git", withIntermediateDirectories: true)
        try "[http]\n\textraheader = AUTHORIZATION: basic canary-checkout-token\n".write(
            toFile: setup.context + "/.git/config", atomically: true, encoding: .utf8)
        try "Dockerfile\n.git\n".write(toFile: setup.context + "/.dockerignore", atomically: true, encoding: .utf8)
        let escaped = scratch.path + "/escaped-\(arch)"
        // The host's root file system's device (`major minor`), which a step could read raw.
        let device = try Tools.run(["mountpoint", "-d", "/"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let disk = device.replacingOccurrences(of: ":", with: " ")
        let cache = setup.cache
        try setup.write(
            "Dockerfile",
            """
            FROM \(setup.base.reference)
            COPY escape /escape
            RUN /escape \(escaped) > /report-escape; \
                tr '\\0' '\\n' < /proc/1/environ > /report-environ; \
                for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done > /report-processes; \
                (cat \(hostFile) && echo REACHED) > /report-host 2>&1; \
                (cat \(setup.context)/.git/config && echo REACHED) > /report-git 2>&1; \
                (ls \(cache) && echo REACHED) > /report-store 2>&1; \
                grep CapEff /proc/self/status > /report-caps; \
                (mknod /disk b \(disk) && head -c 512 /disk > /dev/null && echo REACHED) > /report-disk 2>&1; true

            """)
        let canary = "canary-\(UUID().uuidString)"
        let isolation = ProcessInfo.processInfo.environment["KILN_TEST_ISOLATION"].map { ["--isolation", $0] }
        _ = try setup.build(
            platform: "linux/\(arch)",
            environment: ["GITHUB_TOKEN": canary, "KILN_REGISTRY_PASSWORD": canary, "AWS_SECRET_ACCESS_KEY": canary],
            extra: isolation ?? [])

        #expect(!FileManager.default.fileExists(atPath: escaped), "the step wrote on the host through chroot")
        let reports = try setup.inImage(
            "for f in escape environ processes host git store caps disk; do echo \"== $f\"; cat /report-$f; done",
            arch: arch)
        func section(_ name: String) -> String {
            guard let start = reports.range(of: "== \(name)\n") else { return "" }
            let rest = reports[start.upperBound...]
            return String(rest[..<(rest.range(of: "\n== ")?.lowerBound ?? rest.endIndex)])
        }
        #expect(!reports.contains(canary), "kiln's environment reached the step:\n\(reports)")
        #expect(!section("host").contains("REACHED") && !section("host").contains("host secret"))
        #expect(!section("git").contains("REACHED") && !reports.contains("canary-checkout-token"))
        #expect(!section("store").contains("REACHED"))
        let processes = section("processes")
        let foreign = processes.split(separator: "\n").filter {
            $0.contains(" build --json") || $0.hasPrefix("buildah") || $0.contains("/buildah ")
                || $0.contains("swift")
        }
        #expect(foreign.isEmpty, "host processes seen:\n\(processes)")
        #expect(section("escape").contains("could not write"), "\(section("escape"))")
        #expect(!section("disk").contains("REACHED"), "the step read the host's disk: \(section("disk"))")
        // BuildKit's default capabilities but NET_RAW: none that reaches past the step.
        let capabilities = section("caps").split(separator: "\t").last.flatMap {
            UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)
        }
        let effective = try #require(capabilities, "no CapEff in \(section("caps"))")
        let forbidden: [(String, UInt64)] = [
            ("DAC_READ_SEARCH", 2), ("NET_ADMIN", 12), ("NET_RAW", 13), ("SYS_MODULE", 16), ("SYS_RAWIO", 17),
            ("SYS_PTRACE", 19), ("SYS_ADMIN", 21), ("SYS_BOOT", 22), ("SYS_TIME", 25), ("MAC_ADMIN", 33),
            ("BPF", 39),
        ]
        for (name, bit) in forbidden {
            #expect(effective & (1 << bit) == 0, "the step has CAP_\(name) (CapEff \(String(effective, radix: 16)))")
        }
        #expect(effective & (1 << 0) != 0 && effective & (1 << 27) != 0, "CHOWN and MKNOD, as BuildKit gives")
    }

    @Test("--isolation oci is refused where runc is missing, naming the package; kiln.yaml rejects other values")
    func isolationChoice() throws {
        let scratch = try Scratch("isolation-choice")
        let context = try scratch.sub("context")
        try "FROM scratch\nRUN true\nRUN true\n".write(
            toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        // A PATH with buildah but no runc.
        let bin = try scratch.sub("bin")
        for tool in ["buildah", "strace", "unshare"] {
            if let found = try? Tools.run(["sh", "-c", "command -v \(tool)"]), found.status == 0 {
                let path = found.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: path)
            }
        }
        let refused = try Tools.kiln(
            ["build", "--isolation", "oci", "-o", "oci:\(scratch.path)/out:latest", context],
            environment: ["PATH": bin])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("apt-get install runc"), "\(refused.stderr)")
        // Not asked for: kiln falls back to chroot isolation and names the risk, once.
        let fallback = try Tools.kiln(
            ["build", "-o", "oci:\(scratch.path)/out:latest", context], environment: ["PATH": bin])
        let warnings = fallback.stderr.components(separatedBy: "chroot isolation because runc is not installed")
        #expect(warnings.count == 2, "\(fallback.stderr)")
        #expect(fallback.stderr.contains("write any file on this machine"), "\(fallback.stderr)")

        try "isolation: container\n".write(toFile: context + "/kiln.yaml", atomically: true, encoding: .utf8)
        let bad = try Tools.kiln(["plan", "--root", context])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("kiln.yaml") && bad.stderr.contains("isolation"), "\(bad.stderr)")
    }
}
