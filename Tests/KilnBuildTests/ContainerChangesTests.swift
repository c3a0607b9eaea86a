import Foundation
import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnStore
import Testing

/// A RUN step's layer taken from its working container: the lower layers unpacked into a root,
/// the root changed as a step would change it, the changes written as a layer; unpacking the
/// lower layers and that layer into a second root must give the same tree.
@Suite("A RUN step's layer from its working container")
struct ContainerChangesTests {
    final class Fixture {
        let folder = "/tmp/kiln-changes-\(UUID().uuidString.prefix(8).lowercased())"
        let store: ContentStore

        init() throws {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            store = try ContentStore(root: folder + "/store")
        }
        deinit { try? FileManager.default.removeItem(atPath: folder) }

        func layer(_ entries: [LayerEntry]) throws -> Descriptor {
            let ingest = try store.beginIngest()
            let result = try LayerWriter.write(entries, options: LayerOptions(epoch: 1000), to: ingest)
            _ = try ingest.commit(expected: result.digest)
            return Descriptor(mediaType: .ociLayerGzip, digest: result.digest, size: result.size)
        }

        /// A new root holding `layers`.
        func root(_ name: String, _ layers: [Descriptor]) throws -> String {
            let path = folder + "/" + name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let root = try RootDirectory(path: path)
            for layer in layers {
                let blob = store.blobPath(layer.digest)
                let members = try MemberIndex.members(ofBlobAt: blob, index: store.memberIndexPath(layer.digest))
                _ = try LayerApplier.apply(blob: blob, members: members, to: root, hashing: false)
            }
            return path
        }
    }

    static func file(_ path: String, _ text: String, mode: UInt32 = 0o644, uid: Int = 0, gid: Int = 0) throws
        -> LayerEntry
    {
        LayerEntry(
            path: try LayerPath(path), content: .regularFile(.bytes(Array(text.utf8))), mode: mode, uid: uid, gid: gid)
    }

    /// Every path's kind, mode, owner, size, content and link target (times aside).
    static func listing(_ root: String) throws -> [String] {
        let listed = Process()
        listed.executableURL = URL(fileURLWithPath: "/bin/sh")
        listed.arguments = [
            "-c",
            "cd '\(root)' && find . -printf '%y %m %U:%G %s %p %l\\n' | grep -v '^d' | LC_ALL=C sort -k5; find . -type d -printf '%m %U:%G %p\\n' | LC_ALL=C sort -k3; find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2",
        ]
        let pipe = Pipe()
        listed.standardOutput = pipe
        try listed.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        listed.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("every kind of change a step makes comes back from its layer, and nothing it left alone is in it")
    func roundTrip() throws {
        let fixture = try Fixture()
        let base = try fixture.layer([
            try Self.file("bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755),
            try Self.file("etc/config", "setting=1\n"), try Self.file("etc/same-size", "AAAA\n"),
            try Self.file("etc/owned", "o\n", uid: 1000, gid: 1000), try Self.file("srv/tree/a/b", "b\n"),
            try Self.file("srv/tree/c", "c\n"), try Self.file("srv/dir-to-file/x", "x\n"),
            try Self.file("srv/file-to-dir", "f\n"), try Self.file("srv/recreated/old", "old\n"),
            try Self.file("untouched/deep/file", "u\n"),
            LayerEntry(path: try LayerPath("bin/link"), content: .symlink(target: "tool")),
        ])
        let copied = try fixture.layer([try Self.file("app/main.py", "print(1)\n")])
        let layers = [base, copied]
        let root = try fixture.root("container", layers)

        let mark = try ContainerChanges.Watermark.take(in: fixture.folder)
        func write(_ path: String, _ text: String) throws {
            try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
        }
        let manager = FileManager.default
        try write("etc/config", "setting=2\n")
        // Same size, modification time put back: only the change time shows it.
        var before = stat()
        lstat(root + "/etc/same-size", &before)
        try write("etc/same-size", "BBBB\n")
        let times = [before.st_atim, before.st_mtim]
        utimensat(AT_FDCWD, root + "/etc/same-size", times, AT_SYMLINK_NOFOLLOW)
        chmod(root + "/bin/tool", 0o4711)
        chown(root + "/etc/owned", 0, 0)
        try manager.removeItem(atPath: root + "/srv/tree")
        try manager.removeItem(atPath: root + "/srv/dir-to-file")
        try write("srv/dir-to-file", "now a file\n")
        try manager.removeItem(atPath: root + "/srv/file-to-dir")
        try manager.createDirectory(atPath: root + "/srv/file-to-dir/inner", withIntermediateDirectories: true)
        try manager.removeItem(atPath: root + "/srv/recreated")
        try manager.createDirectory(atPath: root + "/srv/recreated", withIntermediateDirectories: false)
        try write("srv/recreated/new", "new\n")
        try manager.createDirectory(atPath: root + "/usr/lib/pkg", withIntermediateDirectories: true)
        try write("usr/lib/pkg/one.py", "one\n")
        link(root + "/usr/lib/pkg/one.py", root + "/usr/lib/pkg/two.py")
        symlink("/usr/lib/pkg/one.py", root + "/usr/lib/pkg/link.py")
        mkfifo(root + "/srv/pipe", 0o640)
        let attribute = Process()
        attribute.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        attribute.arguments = [
            "python3", "-c", "import os, sys; os.setxattr(sys.argv[1], 'user.kiln', b'cap')",
            root + "/usr/lib/pkg/one.py",
        ]
        try attribute.run()
        attribute.waitUntilExit()
        try manager.removeItem(atPath: root + "/bin/link")
        try write("app/main.py", "print(2)\n")

        let entries = try ContainerChanges.entries(
            in: root, lowerLayers: layers, store: fixture.store, since: mark)
        let paths = Set(entries.map(\.path.description))
        #expect(paths.contains("etc/same-size"), "a rewrite with the old size and time is a change")
        #expect(paths.contains("srv/.wh.tree") && paths.contains("bin/.wh.link"))
        #expect(!paths.contains { $0.hasPrefix("untouched") } && paths.contains("etc/owned"))
        #expect(!paths.contains("srv/recreated/.wh.new") && paths.contains("srv/recreated/.wh.old"))
        #expect(!paths.contains("srv/tree/a/b"), "a removed directory is one whiteout")
        let layer = try fixture.layer(entries)

        let rebuilt = try fixture.root("rebuilt", layers + [layer])
        let expected = try Self.listing(root)
        let found = try Self.listing(rebuilt)
        #expect(found == expected, "\(Set(expected).symmetricDifference(found).sorted())")
        #expect(try DirectoryScanner.xattrs(of: rebuilt + "/usr/lib/pkg/one.py")["user.kiln"] == Array("cap".utf8))
        var info = stat()
        lstat(rebuilt + "/usr/lib/pkg/two.py", &info)
        #expect(info.st_nlink == 2, "files that shared an inode still do")

        try ContainerChanges.settle(entries, in: try RootDirectory(path: root), epoch: 1000)
        lstat(root + "/etc/config", &info)
        #expect(info.st_mtim.tv_sec == 1000, "the root holds the layer's times again")
        let mark2 = try ContainerChanges.Watermark.take(in: fixture.folder)
        let none = try ContainerChanges.entries(
            in: root, lowerLayers: layers + [layer], store: fixture.store, since: mark2)
        #expect(none.isEmpty, "\(none.map(\.path.description))")
    }

    @Test(
        "the runtime's mount stubs the image lacked are not in the step's layer; what the image had, or the step wrote there, is"
    )
    func mountStubs() throws {
        let fixture = try Fixture()
        let base = try fixture.layer([
            try Self.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), try Self.file("etc/hostname", "image\n"),
        ])
        let root = try fixture.root("container", [base])
        let mark = try ContainerChanges.Watermark.take(in: fixture.folder)
        let manager = FileManager.default
        // What buildah and runc make to mount over.
        for file in ["etc/hosts", "etc/resolv.conf", "run/.containerenv"] {
            try manager.createDirectory(
                atPath: root + "/" + (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            manager.createFile(atPath: root + "/" + file, contents: nil)
        }
        for directory in ["dev", "proc"] {
            try manager.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
        }
        // What the step made: a file under /run, a symlink where a stub would be.
        try "1\n".write(toFile: root + "/run/app.pid", atomically: false, encoding: .utf8)
        symlink("/tmp/elsewhere", root + "/sys")

        let entries = try ContainerChanges.entries(in: root, lowerLayers: [base], store: fixture.store, since: mark)
        let paths = Set(entries.map(\.path.description))
        for stub in ["etc/hosts", "etc/resolv.conf", "run/.containerenv", "dev", "proc"] {
            #expect(!paths.contains(stub), "\(stub) is the runtime's, not the step's: \(paths.sorted())")
            #expect(!manager.fileExists(atPath: root + "/" + stub))
        }
        #expect(paths.contains("run/app.pid") && paths.contains("run"), "\(paths.sorted())")
        #expect(paths.contains("sys"), "a symlink the step made stays: \(paths.sorted())")
        #expect(!paths.contains("etc/hostname") && !paths.contains("etc"), "the image's own files are left alone")
        #expect(try String(contentsOfFile: root + "/etc/hostname", encoding: .utf8) == "image\n")
    }
}
