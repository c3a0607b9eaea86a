import Foundation
import KilnBuild
import Testing

/// `RunTrace` on real logs: `strace -f -y` of `buildah run --isolation chroot` (buildah 1.28,
/// strace 6.1) running one busybox step, natively on amd64 and under qemu-aarch64-static for
/// arm64. The step, in `/tool`:
///
///     cat a.py protocol/x.py > /dev/null; ls /tool/protocol > /opt/list; [ -e /nope ] || true
///     mkdir -p /home/app && chmod -R 0777 /home/app; mv /work/old /work/new; cat /opt/link
///     ln -s /tool /opt/t; rm -r /work/new
@Suite("What a RUN step did, from strace logs of buildah")
struct RunTraceTests {
    static func trace(_ name: String) throws -> RunTrace {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path + "/Traces/\(name).strace.gz"
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", "-dc", path]
        let pipe = Pipe()
        gzip.standardOutput = pipe
        try gzip.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        gzip.waitUntilExit()
        #expect(gzip.terminationStatus == 0)
        return RunTrace(parsing: String(decoding: data, as: UTF8.self))
    }

    /// The paths the events name, with what each did, as text (`open a.py`, `list /tool`).
    static func summary(_ trace: RunTrace) -> [String] {
        trace.events.compactMap { event -> String? in
            switch event.operation {
            case .open(let place, _, _, _, _, _): "open \(place.path)"
            case .observe(let place, _): "observe \(place.path)"
            case .execute(let place): "execute \(place.path)"
            case .list(let path): "list \(path ?? "?")"
            case .makeDirectory(let place): "mkdir \(place.path)"
            case .makeSymlink(let place, let target): "symlink \(place.path) -> \(target)"
            case .rename(let from, let to, _): "rename \(from.path) \(to.path)"
            case .remove(let place, let directory): "remove\(directory ? "dir" : "") \(place.path)"
            case .chdir(let place): "chdir \(place.path)"
            default: nil
            }
        }
    }

    @Test(
        "the step's reads, listings, probes and changes are there in order, on both architectures and isolations, and nothing is unmodelled",
        arguments: ["amd64", "arm64", "oci-amd64", "oci-arm64"])
    func stepEvents(architecture: String) throws {
        let trace = try Self.trace("step-\(architecture)")
        #expect(trace.unmodelled == nil, "\(trace.unmodelled ?? "")")
        #expect(trace.processes > 3)
        let events = Self.summary(trace)
        func index(_ text: String) -> Int? { events.firstIndex(of: text) }
        #expect(index("open a.py") != nil, "a relative read, as the step named it: \(events.prefix(40))")
        #expect(index("list /tool/protocol") != nil, "ls lists the directory")
        #expect(events.contains { $0.hasPrefix("execute ") && $0.hasSuffix("/bin/sh") || $0 == "execute /bin/sh" })
        #expect(events.contains("observe /nope") || events.contains { $0.hasSuffix(" /nope") })
        #expect(index("rename /work/old /work/new") != nil)
        #expect(index("symlink /opt/t -> /tool") != nil)
        if let made = index("symlink /opt/t -> /tool"),
            let removed = events.lastIndex(where: { $0.contains("/work/new") })
        {
            #expect(made < removed, "in the order the step did them")
        }
        // A relative open names its working directory as the kernel printed it.
        let relative = trace.events.first { event in
            if case .open(let place, _, _, _, _, _) = event.operation { place.path == "a.py" } else { false }
        }
        if case .open(let place, _, _, _, _, _)? = relative?.operation {
            #expect(place.base == .cwd(seen: "/tool"))
        } else {
            Issue.record("no relative open of a.py")
        }
    }

    @Test(
        "buildah's and runc's own work is left out: host files, helpers (chrootuser-open reads /etc/passwd), mounts",
        arguments: ["amd64", "arm64", "oci-amd64", "oci-arm64"])
    func buildahLeftOut(architecture: String) throws {
        let trace = try Self.trace("step-\(architecture)")
        for event in Self.summary(trace) {
            #expect(!event.contains("/var/tmp/buildah"), "a host path: \(event)")
            #expect(!event.contains("containers"), "buildah's configuration: \(event)")
            #expect(!event.hasSuffix("/etc/group"), "\(event)")
        }
    }

    static let prologue = """
        10 execve("/proc/self/exe", ["buildah-chroot-exec", "/bin/sh"], 0x1 /* 4 vars */) = 0
        10 chroot("/r/root") = 0
        10 chdir("/w") = 0
        10 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD) = 2 /* 12 in strace's PID NS */

        """

    @Test(
        "unfinished and resumed halves join at the place the call started; namespace pids translate; threads of the chroot-exec are not the step"
    )
    func syntheticLog() {
        let log = """
            10 execve("/proc/self/exe", ["buildah-chroot-exec", "/bin/sh"], 0x1 /* 4 vars */) = 0
            10 clone3({flags=CLONE_VM|CLONE_THREAD} => {parent_tid=[11]}, 88) = 11
            10 chroot("/r/root") = 0
            10 chdir("/w") = 0
            11 openat(AT_FDCWD</r/root/w>, "/etc/buildah-thread", O_RDONLY) = 3</r/root/etc/buildah-thread>
            10 clone(child_stack=NULL, flags=CLONE_VM|CLONE_VFORK|SIGCHLD <unfinished ...>
            12 execve("/bin/sh", ["/bin/sh", "-c", "x"], 0x2 /* 3 vars */ <unfinished ...>
            10 <... clone resumed>) = 2 /* 12 in strace's PID NS */
            12 <... execve resumed>) = 0
            12 stat("rel/f\\303\\251 \\"q\\"", 0x3) = -1 ENOENT (No such file or directory)
            12 openat(5</r/root/w/sub>, "x", O_RDONLY) = 4</r/root/w/sub/x>
            12 getdents64(4</r/root/w/sub>, 0x4 /* 3 entries */, 32768) = 72
            12 unlinkat(AT_FDCWD</r/root/w>, "gone", AT_REMOVEDIR) = 0
            13 openat(AT_FDCWD</r/root/w>, "/not-a-step", O_RDONLY) = 4</r/root/not-a-step>
            12 clone(child_stack=NULL, flags=SIGCHLD) = 3 /* 999 in strace's PID NS */
            999  openat(AT_FDCWD</r/root/w>, "padded", O_RDONLY|O_CREAT, 0644) = 4</r/root/w/padded>
            999 +++ exited with 0 +++
            """
        let trace = RunTrace(parsing: log)
        #expect(trace.unmodelled == nil)
        #expect(trace.processes == 2)
        #expect(
            trace.events.map(\.operation) == [
                .enterRoot,
                .chdir(.init(base: .cwd(seen: nil), path: "/w")),
                .fork(child: 12, sharesFS: false),
                .execute(.init(base: .cwd(seen: nil), path: "/bin/sh")),
                .observe(.init(base: .cwd(seen: nil), path: "rel/fé \"q\""), follow: true),
                .open(
                    .init(base: .directory("/w/sub"), path: "x"), create: false, exclusive: false, follow: true,
                    write: false, temporary: false),
                .list("/w/sub"),
                .remove(.init(base: .cwd(seen: "/w"), path: "gone"), directory: true),
                .fork(child: 999, sharesFS: false),
                .open(
                    .init(base: .cwd(seen: "/w"), path: "padded"), create: true, exclusive: false, follow: true,
                    write: false, temporary: false),
            ])
        #expect(trace.events.last?.returned == .inside("/w/padded"))
        #expect(trace.events[4].succeeded == false)
    }

    @Test(
        "OCI isolation: the process below runc init that pivots is the step from its execve on; runc's mounts, its threads and a later step's pivot_root are told apart"
    )
    func ociLog() {
        let runtime = """
            20 execve("/proc/self/exe", ["/usr/sbin/runc", "init"], 0x1 /* 7 vars */) = 0
            20 clone(child_stack=0x1, flags=CLONE_PARENT|SIGCHLD) = 21
            21 unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID) = 0
            21 clone(child_stack=0x1, flags=CLONE_PARENT|SIGCHLD) = 22
            22 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_THREAD} => {parent_tid=[2 /* 23 in strace's PID NS */]}, 88) = 2 /* 23 in strace's PID NS */
            23 openat(AT_FDCWD</b/rootfs>, "/runtime-thread", O_RDONLY) = 3</runtime-thread>
            22 mkdirat(AT_FDCWD</b/rootfs>, "/b/rootfs/proc", 0755) = 0
            22 mount("proc", "/proc/self/fd/6", "proc", MS_NOSUID, NULL) = 0
            22 pivot_root(".", ".") = 0
            22 umount2(".", MNT_DETACH) = 0
            22 chdir("/w") = 0
            22 mount("/dev/null", "/proc/kcore", 0x1, MS_BIND, NULL) = 0
            22 openat(AT_FDCWD</w>, "/dev/null", O_RDWR|O_CLOEXEC) = 6</dev/null>
            22 execve("/bin/sh", ["/bin/sh", "-c", "x"], 0x2 /* 3 vars */) = 0
            22 openat(AT_FDCWD</w>, "data", O_RDONLY) = 3</w/data>
            22 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_THREAD} => {parent_tid=[5 /* 25 in strace's PID NS */]}, 88) = 5 /* 25 in strace's PID NS */
            25 newfstatat(AT_FDCWD</w>, "thread-read", 0x3, 0) = -1 ENOENT (No such file or directory)
            22 clone(child_stack=NULL, flags=SIGCHLD) = 6 /* 26 in strace's PID NS */
            26 getdents64(3</w/sub>, 0x4 /* 3 entries */, 32768) = 72

            """
        let trace = RunTrace(parsing: runtime)
        #expect(trace.unmodelled == nil, "\(trace.unmodelled ?? "")")
        #expect(trace.processes == 3)
        #expect(
            trace.events.map(\.operation) == [
                .enterRoot,
                .chdir(.init(base: .cwd(seen: nil), path: "/w")),
                .execute(.init(base: .cwd(seen: nil), path: "/bin/sh")),
                .open(
                    .init(base: .cwd(seen: "/w"), path: "data"), create: false, exclusive: false, follow: true,
                    write: false, temporary: false),
                .fork(child: 25, sharesFS: true),
                .observe(.init(base: .cwd(seen: "/w"), path: "thread-read"), follow: true),
                .fork(child: 26, sharesFS: false),
                .list("/w/sub"),
            ], "\(trace.events.map(\.operation))")
        #expect(trace.events[3].returned == .inside("/w/data"))
        // A step that pivots or mounts itself is not modelled.
        for line in ["26 pivot_root(\".\", \"old\") = 0", "22 mount(\"none\", \"/x\", \"tmpfs\", 0, NULL) = 0"] {
            #expect(RunTrace(parsing: runtime + line + "\n").unmodelled?.contains("the step called") == true, "\(line)")
        }
        // `git init` in a step is not runc's init.
        let gitInit =
            runtime + """
                26 execve("/usr/bin/git", ["git", "init"], 0x2 /* 3 vars */) = 0
                26 clone(child_stack=NULL, flags=SIGCHLD) = 7 /* 27 in strace's PID NS */
                27 pivot_root(".", ".") = 0

                """
        #expect(RunTrace(parsing: gitInit).unmodelled?.contains("pivot_root") == true)
    }

    @Test(
        "a descriptor path holding ( ) \" < > or a newline does not end the call's arguments",
        arguments: ["w)", "p(x", "q\"d", "a\\76b", "n\\nl", "x)\", y"])
    func descriptorPaths(directory: String) {
        let log =
            Self.prologue + """
                12 openat(AT_FDCWD</r/root/\(directory)>, "/app/data", O_RDONLY) = 3</r/root/app/data>
                12 newfstatat(AT_FDCWD</r/root/\(directory)>, "f", {st_mode=S_IFREG|0644, st_size=3, ...}, AT_SYMLINK_NOFOLLOW) = 0
                """
        let trace = RunTrace(parsing: log)
        #expect(trace.unmodelled == nil)
        let decoded = directory.replacingOccurrences(of: "\\76", with: ">").replacingOccurrences(of: "\\n", with: "\n")
        let operations = trace.events.map(\.operation).suffix(2)
        #expect(
            Array(operations) == [
                .open(
                    .init(base: .cwd(seen: "/" + decoded), path: "/app/data"), create: false, exclusive: false,
                    follow: true, write: false, temporary: false),
                .observe(.init(base: .cwd(seen: "/" + decoded), path: "f"), follow: false),
            ], "\(trace.events)")
        #expect(trace.events.last?.succeeded == true)
    }

    @Test(
        "what kiln does not model makes the trace unmodelled, with the reason",
        arguments: [
            ("12 chroot(\"/jail\") = 0", "the step called chroot"),
            ("12 unshare(CLONE_NEWNS) = 0", "the step called unshare"),
            ("12 mount(\"none\", \"/x\", \"tmpfs\", 0, NULL) = 0", "the step called mount"),
            (
                "12 openat2(AT_FDCWD</r/root/w>, \"a\", {flags=O_RDONLY, resolve=RESOLVE_IN_ROOT}, 24) = 3</r/root/w/a>",
                "RESOLVE_IN_ROOT"
            ),
            ("12 +++ killed by SIGKILL +++", "still running when the step ended"),
            ("12 something that is no call", "a trace line kiln cannot read"),
            ("12 frobnicate(\"/x\") = 0", "the step called frobnicate"),
            (
                "12 openat(3</r/root/gone (deleted)>, \"x\", O_RDONLY) = -1 ENOENT (No such file or directory)",
                "deleted"
            ),
            ("12 execveat(3</r/root/bin/tool>, \"\", [\"tool\"], 0x1, AT_EMPTY_PATH) = 0", "execveat"),
        ])
    func unmodelled(line: String, reason: String) {
        let trace = RunTrace(parsing: Self.prologue + line + "\n")
        #expect(trace.unmodelled?.contains(reason) == true, "\(trace.unmodelled ?? "nil")")
    }

    @Test("a refused unshare or chroot (buildah's seccomp profile refuses unshare) changes nothing: still modelled")
    func refusedCalls() {
        let trace = RunTrace(
            parsing: Self.prologue + """
                12 unshare(CLONE_NEWUSER) = -1 EPERM (Operation not permitted)
                12 chroot("/jail") = -1 EPERM (Operation not permitted)
                12 +++ killed by SIGTERM +++
                """)
        #expect(trace.unmodelled == nil)
    }

    @Test("the calls strace stops for include the ones a step can observe paths with, unknown names skipped")
    func tracedCalls() {
        let calls = Set(RunTrace.tracedCallNames)
        for call in [
            "openat", "openat2", "newfstatat", "statx", "execve", "getdents64", "lgetxattr", "getxattr",
            "inotify_add_watch", "chroot", "mount", "unshare", "clone3", "readlinkat", "renameat2", "connect",
        ] {
            #expect(calls.contains(call), "\(call)")
        }
    }
}
