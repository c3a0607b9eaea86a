import Foundation
import KilnCore
import KilnLayers
import KilnOCI
import Testing

@testable import KilnBuild

/// The replay of a traced step on a model of its file system: paths resolved as the kernel
/// resolves them, the step's own links followed, working directories per process, and what it
/// cannot model refused. Synthetic logs in strace's format, on layers in a real store.
@Suite("What a RUN step observed, replayed as the kernel resolves paths")
struct StepReplayTests {
    typealias Layers = LowerFilesystemTests.Layers

    /// The base every case starts from: `/app/data`, `/app/a/data`, `/app/b/data`, `/app/cur`
    /// → `a`, `/bin/sh` → `busybox`, a `/etc/passwd`, and a 41-link chain `/app/l0` … to `data`.
    static func base(_ layers: Layers) throws -> [Descriptor] {
        var links = ["app/cur": "a", "bin/sh": "busybox"]
        for index in 0..<41 { links["app/l\(index)"] = "l\(index + 1)" }
        links["app/l41"] = "data"
        let files = [
            "app/data": "d", "app/a/data": "a", "app/b/data": "b", "bin/busybox": "elf", "etc/passwd": "root",
            "etc/group": "root", "app/tool.sh": "#!/app/interp\n", "app/interp": "#!/bin/sh\necho\n",
        ]
        return [try layers.layer(files, links: links, directories: ["tmp", "w"])]
    }

    /// Replays `lines` (one step process, pid 12, starting in `/`) on the base.
    static func replay(_ lines: String, layers: Layers? = nil) throws -> StepReplay {
        let layers = try layers ?? Layers()
        let log = RunTraceTests.prologue.replacingOccurrences(of: "chdir(\"/w\")", with: "chdir(\"/\")") + lines + "\n"
        let trace = RunTrace(parsing: log)
        var replay = StepReplay(
            lower: try LowerFilesystem(layers: try base(layers), store: layers.store), mounts: StepReplay.Mounts())
        if let reason = trace.unmodelled { replay.refuse(reason) }
        for event in trace.events { replay.apply(event) }
        return replay
    }

    static func has(_ replay: StepReplay, _ path: String, _ kind: Observation.Kind) -> Bool {
        replay.observations.contains(Observation(path, kind))
    }

    @Test("'..' is taken after the directory before it resolves: a missing one ends the walk there")
    func dotDot() throws {
        let replay = try Self.replay(
            #"12 openat(AT_FDCWD</r/root>, "/app/nope/../data", O_RDONLY) = -1 ENOENT (No such file or directory)"#)
        #expect(replay.unmodelled == nil)
        #expect(Self.has(replay, "/app/nope", .lookup), "the missing directory is what it saw")
        #expect(!Self.has(replay, "/app/data", .entry), "never reached: \(replay.observations)")
    }

    @Test("a link the step made is followed as the kernel followed it, to the lower file it leads to")
    func stepSymlink() throws {
        let replay = try Self.replay(
            """
            12 symlink("/app", "/tmp/l") = 0
            12 openat(AT_FDCWD</r/root>, "/tmp/l/data", O_RDONLY) = 3</r/root/app/data>
            """)
        #expect(replay.unmodelled == nil)
        #expect(Self.has(replay, "/app/data", .entry))
        #expect(Self.has(replay, "/tmp/l", .lookup), "it was missing below the step")
    }

    @Test("a link the step repoints is followed to its new target")
    func repointed() throws {
        let replay = try Self.replay(
            """
            12 symlink("b", "/app/cur.tmp") = 0
            12 rename("/app/cur.tmp", "/app/cur") = 0
            12 openat(AT_FDCWD</r/root>, "/app/cur/data", O_RDONLY) = 3</r/root/app/b/data>
            """)
        #expect(replay.unmodelled == nil, "\(replay.unmodelled ?? "")")
        #expect(Self.has(replay, "/app/b/data", .entry))
        #expect(!Self.has(replay, "/app/a/data", .entry))
        #expect(Self.has(replay, "/app/cur", .tree), "what the rename replaced")
    }

    @Test("more than 40 links on a path end the walk (ELOOP): the file behind them is not reached")
    func linkLoop() throws {
        let replay = try Self.replay(
            #"12 openat(AT_FDCWD</r/root>, "/app/l0", O_RDONLY) = -1 ELOOP (Too many levels of symbolic links)"#)
        #expect(replay.unmodelled == nil)
        #expect(Self.has(replay, "/app/l40", .lookup))
        #expect(!Self.has(replay, "/app/data", .entry) && !Self.has(replay, "/app/l41", .lookup))
    }

    @Test("paths through /dev and /proc: '..' out of a mount is modelled; the image through /proc is not")
    func pseudoFileSystems() throws {
        let dev = try Self.replay(#"12 openat(AT_FDCWD</r/root>, "/dev/../app/data", O_RDONLY) = 3</r/root/app/data>"#)
        #expect(dev.unmodelled == nil && Self.has(dev, "/app/data", .entry))
        for path in ["/proc/self/root/app/data", "/proc/self/cwd/data", "/proc/12/fd/3/data", "/dev/fd/3/data"] {
            let replay = try Self.replay(
                #"12 openat(AT_FDCWD</r/root>, "\#(path)", O_RDONLY) = 3</r/root/app/data>"#)
            #expect(replay.unmodelled?.contains("through") == true, "\(path): \(replay.unmodelled ?? "nil")")
        }
        let status = try Self.replay(
            #"12 openat(AT_FDCWD</r/root>, "/proc/self/status", O_RDONLY) = 3</proc/12/status>"#)
        #expect(status.unmodelled == nil && status.observations.allSatisfy { !$0.path.hasPrefix("/proc") })
    }

    @Test("a child starts in its parent's directory as of the fork; a CLONE_FS thread shares it")
    func workingDirectories() throws {
        let forked = try Self.replay(
            """
            12 chdir("/app/a") = 0
            12 clone(child_stack=NULL, flags=SIGCHLD) = 5 /* 20 in strace's PID NS */
            12 chdir("/app/b") = 0
            20 open("data", O_RDONLY) = 3</r/root/app/a/data>
            """)
        #expect(forked.unmodelled == nil, "\(forked.unmodelled ?? "")")
        #expect(Self.has(forked, "/app/a/data", .entry) && !Self.has(forked, "/app/b/data", .entry))
        let threads = try Self.replay(
            """
            12 chdir("/app/a") = 0
            12 clone3({flags=CLONE_VM|CLONE_FS|CLONE_THREAD, exit_signal=0} => {parent_tid=[6]}, 88) = 6 /* 21 in strace's PID NS */
            21 chdir("/app/b") = 0
            12 open("data", O_RDONLY) = 3</r/root/app/b/data>
            """)
        #expect(threads.unmodelled == nil, "\(threads.unmodelled ?? "")")
        #expect(Self.has(threads, "/app/b/data", .entry))
    }

    @Test("where the kernel disagrees with the model, the step is not modelled")
    func disagreements() throws {
        let opened = try Self.replay(#"12 openat(AT_FDCWD</r/root>, "/app/data", O_RDONLY) = 3</r/root/elsewhere>"#)
        #expect(opened.unmodelled?.contains("the kernel opened /elsewhere") == true, "\(opened.unmodelled ?? "")")
        let cwd = try Self.replay(
            """
            12 chdir("/app/a") = 0
            12 openat(AT_FDCWD</r/root/app/b>, "data", O_RDONLY) = 3</r/root/app/b/data>
            """)
        #expect(cwd.unmodelled?.contains("working directory") == true)
        let missing = try Self.replay(#"12 newfstatat(AT_FDCWD</r/root>, "/nothing", {st_mode=S_IFREG|0644}, 0) = 0"#)
        #expect(missing.unmodelled?.contains("succeeded where kiln's model has nothing") == true)
    }

    @Test("executing a script observes its interpreter, and the interpreter's, as the kernel opens them")
    func interpreters() throws {
        let replay = try Self.replay(
            #"12 execve("/app/tool.sh", ["/app/tool.sh"], 0x1 /* 1 var */) = 0"#)
        #expect(replay.unmodelled == nil, "\(replay.unmodelled ?? "")")
        #expect(Self.has(replay, "/app/tool.sh", .entry) && Self.has(replay, "/app/interp", .entry))
        #expect(Self.has(replay, "/bin/sh", .lookup) && Self.has(replay, "/bin/busybox", .entry))
    }

    @Test("buildah's reads for the step: the user and group files, and an exec form's PATH lookup")
    func launch() throws {
        let layers = try Layers()
        var replay = StepReplay(
            lower: try LowerFilesystem(layers: try Self.base(layers), store: layers.store), mounts: StepReplay.Mounts())
        replay.start(workingDirectory: "/w", program: "mytool", path: "/app/bin1:/bin")
        for path in ["/etc/passwd", "/etc/group", "/w"] { #expect(Self.has(replay, path, .entry), "\(path)") }
        #expect(Self.has(replay, "/app/bin1", .lookup) && Self.has(replay, "/bin/mytool", .lookup))
    }

    @Test("what the step made is no observation; what it replaced or removed is, with everything below")
    func madeAndRemoved() throws {
        let replay = try Self.replay(
            """
            12 mkdirat(AT_FDCWD</r/root>, "/new", 0755) = 0
            12 openat(AT_FDCWD</r/root>, "/new/f", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3</r/root/new/f>
            12 openat(AT_FDCWD</r/root>, "/new/f", O_RDONLY) = 3</r/root/new/f>
            12 unlinkat(AT_FDCWD</r/root>, "/app/a", AT_REMOVEDIR) = 0
            12 openat(AT_FDCWD</r/root>, "/app/a/data", O_RDONLY) = -1 ENOENT (No such file or directory)
            """)
        #expect(replay.unmodelled == nil, "\(replay.unmodelled ?? "")")
        #expect(Self.has(replay, "/new", .lookup), "it was not there below")
        #expect(!replay.observations.contains { $0.path == "/new/f" }, "made by the step")
        #expect(Self.has(replay, "/app/a", .tree))
        #expect(!Self.has(replay, "/app/a/data", .entry), "removed before it was looked for")
    }
}
