import Foundation
import KilnCore
import KilnLayers
import KilnTestSupport
import Testing

/// Layers unpacked onto a root directory as a working container's root is made: what container
/// engines do, and nothing a hostile layer asks for outside the root.
@Suite("Unpacking layers onto a root directory")
struct LayerApplierTests {
    /// Writes a gzip tar with Python's tarfile (which writes whatever names and links it is
    /// given, as a hostile layer would), from (name, kind, data or target) rows.
    static func pythonTar(_ path: String, _ members: [(name: String, kind: String, value: String)]) throws {
        let rows = members.map { "(\(pythonString($0.name)), \(pythonString($0.kind)), \(pythonString($0.value)))" }
        let script = """
            import io, sys, tarfile
            with tarfile.open(sys.argv[1], "w:gz", format=tarfile.PAX_FORMAT) as tar:
                for name, kind, value in [\(rows.joined(separator: ", "))]:
                    info = tarfile.TarInfo(name)
                    info.mtime = 1000000
                    data = None
                    if kind == "dir":
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                    elif kind == "symlink":
                        info.type, info.linkname = tarfile.SYMTYPE, value
                    elif kind == "hardlink":
                        info.type, info.linkname = tarfile.LNKTYPE, value
                    else:
                        info.mode, data = 0o644, value.encode()
                        info.size = len(data)
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(
            process.terminationStatus == 0, "python3 could not write the test tar (apt-get install python3): \(message)"
        )
    }

    static func pythonString(_ text: String) -> String {
        "'"
            + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
            .replacingOccurrences(of: "\n", with: "\\n") + "'"
    }

    static func apply(_ blob: String, to root: String) throws {
        let members = try MemberIndex.members(ofBlobAt: blob, index: blob + ".index")
        _ = try LayerApplier.apply(blob: blob, members: members, to: try RootDirectory(path: root), hashing: false)
    }

    @Test("symlinks, '..' and hard links in a layer resolve inside the root: nothing is written outside it")
    func hostileLayersStayInside() throws {
        let scratch = try TemporaryDirectory("apply")
        let root = try scratch.sub("root")
        let outside = try scratch.sub("outside")
        let hostPasswd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        try Self.pythonTar(
            scratch.path + "/one.tar.gz",
            [
                ("etc", "dir", ""), ("etc/passwd", "file", "root:x:0:0:inside\n"),
                ("escape", "symlink", "../../../../../../..\(outside)"), ("absolute", "symlink", outside),
                ("rootlink", "symlink", "/"),
            ])
        try Self.pythonTar(
            scratch.path + "/two.tar.gz",
            [
                ("escape/relative.txt", "file", "r"), ("absolute/absolute.txt", "file", "a"),
                ("../../dotdot.txt", "file", "d"), ("rootlink/etc/through-root.txt", "file", "t"),
                ("stolen", "hardlink", "../../../../etc/passwd"),
            ])
        try Self.apply(scratch.path + "/one.tar.gz", to: root)
        try Self.apply(scratch.path + "/two.tar.gz", to: root)

        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/dotdot.txt"))
        #expect(!FileManager.default.fileExists(atPath: "/dotdot.txt"))
        // Inside the root, where a process chrooted there would have put them.
        #expect(try String(contentsOfFile: root + outside + "/relative.txt", encoding: .utf8) == "r")
        #expect(try String(contentsOfFile: root + outside + "/absolute.txt", encoding: .utf8) == "a")
        #expect(try String(contentsOfFile: root + "/dotdot.txt", encoding: .utf8) == "d")
        #expect(try String(contentsOfFile: root + "/etc/through-root.txt", encoding: .utf8) == "t")
        // The hard link reached the root's /etc/passwd, not the machine's.
        #expect(try String(contentsOfFile: root + "/stolen", encoding: .utf8) == "root:x:0:0:inside\n")
        #expect(try String(contentsOfFile: "/etc/passwd", encoding: .utf8) == hostPasswd)
        var info = stat()
        #expect(lstat(root + "/escape", &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK, "the symlink stays")
    }

    @Test("whiteouts remove what lower layers made; an opaque directory loses its former contents only")
    func whiteouts() throws {
        let scratch = try TemporaryDirectory("apply")
        let root = try scratch.sub("root")
        try Self.pythonTar(
            scratch.path + "/one.tar.gz",
            [
                ("a", "dir", ""), ("a/gone.txt", "file", "g"), ("a/kept.txt", "file", "k"), ("tree", "dir", ""),
                ("tree/deep", "dir", ""), ("tree/deep/x", "file", "x"), ("opaque", "dir", ""),
                ("opaque/old.txt", "file", "o"), ("dir-to-file", "dir", ""), ("dir-to-file/child", "file", "c"),
                ("file-to-dir", "file", "f"),
            ])
        try Self.pythonTar(
            scratch.path + "/two.tar.gz",
            [
                ("a/.wh.gone.txt", "file", ""), (".wh.tree", "file", ""), ("opaque/new.txt", "file", "n"),
                ("opaque/.wh..wh..opq", "file", ""), ("dir-to-file", "file", "now a file"),
                ("file-to-dir", "dir", ""), ("file-to-dir/inside", "file", "i"),
            ])
        try Self.apply(scratch.path + "/one.tar.gz", to: root)
        try Self.apply(scratch.path + "/two.tar.gz", to: root)
        let found = try Set(FileManager.default.subpathsOfDirectory(atPath: root))
        #expect(
            found == [
                "a", "a/kept.txt", "opaque", "opaque/new.txt", "dir-to-file", "file-to-dir", "file-to-dir/inside",
            ])
        #expect(try String(contentsOfFile: root + "/dir-to-file", encoding: .utf8) == "now a file")
    }

    @Test("modes (set-user-ID included), numeric owners, times, extended attributes and FIFOs are kept")
    func metadata() throws {
        let scratch = try TemporaryDirectory("apply")
        let root = try scratch.sub("root")
        let entries: [LayerEntry] = [
            LayerEntry(
                path: try LayerPath("bin/tool"), content: .regularFile(.bytes(Array("#!/bin/sh\n".utf8))), mode: 0o4755,
                uid: 1234, gid: 5678, xattrs: ["user.kiln": Array("yes".utf8)]),
            LayerEntry(path: try LayerPath("srv"), content: .directory, mode: 0o1777, uid: 7, gid: 8),
            LayerEntry(path: try LayerPath("srv/pipe"), content: .special(.init(kind: .fifo)), mode: 0o600),
            LayerEntry(path: try LayerPath("srv/link"), content: .symlink(target: "../bin/tool"), uid: 3, gid: 4),
            LayerEntry(path: try LayerPath("srv/same"), content: .hardLink(target: try LayerPath("bin/tool"))),
        ]
        let blob = scratch.path + "/layer.tar.gz"
        let writer = try AtomicFileWriter(destination: blob)
        _ = try LayerWriter.write(entries, options: LayerOptions(epoch: 1_234_567), to: writer)
        try writer.commit()
        try Self.apply(blob, to: root)

        var info = stat()
        #expect(lstat(root + "/bin/tool", &info) == 0)
        #expect(info.st_mode & 0o7777 == 0o4755 && info.st_uid == 1234 && info.st_gid == 5678)
        #expect(info.st_mtim.tv_sec == 1_234_567 && info.st_nlink == 2)
        #expect(lstat(root + "/srv", &info) == 0 && info.st_mode & 0o7777 == 0o1777 && info.st_uid == 7)
        #expect(info.st_mtim.tv_sec == 1_234_567, "a directory's time is set after what went into it")
        #expect(lstat(root + "/srv/pipe", &info) == 0 && (info.st_mode & S_IFMT) == S_IFIFO)
        #expect(lstat(root + "/srv/link", &info) == 0 && info.st_uid == 3 && info.st_mtim.tv_sec == 1_234_567)
        #expect(try DirectoryScanner.xattrs(of: root + "/bin/tool")["user.kiln"] == Array("yes".utf8))
    }
}
