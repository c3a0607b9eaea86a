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
@Suite("What a RUN step touched, from strace logs of buildah")
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

    @Test(
        "the step's reads, listings, probes and changes are there, on both architectures",
        arguments: ["amd64", "arm64"])
    func stepTouches(architecture: String) throws {
        let trace = try Self.trace("step-\(architecture)")
        let touches = Set(trace.touches)
        func has(_ path: String, _ access: RunTrace.Access) -> Bool {
            touches.contains(RunTrace.Touch(path: path, access: access))
        }
        #expect(trace.processes > 3)
        #expect(has("/tool/a.py", .entry), "a relative read resolves against the working directory")
        #expect(has("/tool/protocol/x.py", .entry))
        #expect(has("/tool/protocol", .listing), "ls lists the directory")
        #expect(has("/nope", .entry), "a probe of a missing path is a dependency")
        #expect(has("/home/app", .entry) && has("/home/app", .listing), "chmod -R lists and changes")
        #expect(has("/work/old", .tree), "a renamed directory depends on everything below it")
        #expect(has("/work/new", .entry))
        #expect(has("/opt/link", .entry))
        #expect(has("/opt/t", .entry), "a symlink made by the step")
        #expect(has("/opt/list", .entry), "a file the step wrote")
        #expect(has("/bin/sh", .entry), "the programs it ran")
    }

    @Test(
        "buildah's own work is left out: its host files, helpers and the image's mounted files",
        arguments: ["amd64", "arm64"])
    func buildahLeftOut(architecture: String) throws {
        let trace = try Self.trace("step-\(architecture)")
        for touch in trace.touches {
            #expect(touch.path.hasPrefix("/"))
            #expect(!touch.path.hasPrefix("/var/tmp/buildah"), "a host path: \(touch.path)")
            #expect(!touch.path.contains("containers"), "buildah's configuration: \(touch.path)")
            #expect(!touch.path.hasPrefix("/proc") && !touch.path.hasPrefix("/dev"), "\(touch.path)")
            #expect(touch.path != "/etc/hosts" && touch.path != "/etc/resolv.conf", "\(touch.path)")
        }
        // chrootuser-open reads /etc/passwd and /etc/group inside the root for the user lookup;
        // this step itself never reads them.
        #expect(!trace.touches.contains { $0.path == "/etc/group" }, "\(trace.touches.map(\.path))")
    }

    @Test(
        "unfinished and resumed halves join; padded pids and quoted paths parse; threads of the chroot-exec are not the step"
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
            10 <... clone resumed>) = 12
            12 <... execve resumed>) = 0
            12 stat("rel/f\\303\\251 \\"q\\"", 0x3) = -1 ENOENT (No such file or directory)
            12 openat(5</r/root/w/sub>, "x", O_RDONLY) = 4</r/root/w/sub/x>
            12 getdents64(4</r/root/w/sub>, 0x4 /* 3 entries */, 32768) = 72
            12 unlinkat(AT_FDCWD</r/root/w>, "gone", AT_REMOVEDIR) = 0
            12 openat(AT_FDCWD</r/root/w>, "/proc/self/status", O_RDONLY) = 4</r/root/proc/12/status>
            13 openat(AT_FDCWD</r/root/w>, "/not-a-step", O_RDONLY) = 4</r/root/not-a-step>
            12 clone(child_stack=NULL, flags=SIGCHLD) = 999
            999  openat(AT_FDCWD</r/root/w>, "padded", O_RDONLY) = 4</r/root/w/padded>
            """
        let trace = RunTrace(parsing: log)
        #expect(
            trace.touches == [
                .init(path: "/bin/sh", access: .entry),
                .init(path: "/w/gone", access: .tree),
                .init(path: "/w/padded", access: .entry),
                .init(path: "/w/rel/fé \"q\"", access: .entry),
                .init(path: "/w/sub", access: .listing),
                .init(path: "/w/sub/x", access: .entry),
            ])
        #expect(trace.processes == 2)
    }
}

@Test(
    "normalize keeps `..` and drops empty and `.` components",
    arguments: [
        ("/", "/"), ("/a/b", "/a/b"), ("/a//b/", "/a/b"), ("/a/./b", "/a/b"), ("a/b", "/a/b"), ("/./", "/"),
        ("/a/..", "/a/.."), ("/.a/b.", "/.a/b."), ("/a/.", "/a"), ("//", "/"),
    ])
func normalizePaths(path: String, expected: String) {
    #expect(RunTrace.normalize(path) == expected)
}
