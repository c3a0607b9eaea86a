import Foundation
import Testing

@Suite("Bad input gives one clear line and leaves nothing behind", .serialized)
struct BadInputTests {
    /// Names in a directory (including dot-files such as leftover temporary files).
    static func names(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    @Test("a FIFO in the tree is named in the error; no blob or temporary file is left")
    func fifo() throws {
        let (scratch, tree) = try Scratch.withSampleTree("fifo")
        let out = try scratch.sub("out")
        #expect(mkfifo(tree + "/lib/queue", 0o644) == 0)
        let result = try Tools.kiln(["layer", "create", "--from", tree, "-o", out + "/layer.tar.gz"])
        #expect(result.status == 2)
        let line = Tools.oneLine(result)
        #expect(line.contains(tree + "/lib/queue") && line.contains("FIFO"), "\(line)")
        #expect(try Self.names(out).isEmpty)
    }

    @Test("a '..' path that climbs out of the image is refused, naming it")
    func dotDot() throws {
        let (scratch, tree) = try Scratch.withSampleTree("dotdot")
        let store = scratch.path + "/store"
        let result = try Tools.kiln([
            "layer", "create", "--from", tree, "--prefix", "app/../../etc", "--cache-dir", store,
        ])
        #expect(result.status == 2)
        let line = Tools.oneLine(result)
        #expect(line.contains("'app/../../etc'") && line.contains("'..'"), "\(line)")
        let blobs = store + "/blobs/sha256"
        let leftovers = FileManager.default.fileExists(atPath: blobs) ? try Self.names(blobs) : []
        #expect(leftovers.isEmpty)
    }

    @Test("an unreadable file is named in the error; the store keeps no blob and no temporary file")
    func unreadable() throws {
        try Tools.require("setpriv", package: "util-linux")
        let scratch = try Scratch("unreadable")
        chmod(scratch.path, 0o755)
        let tree = try scratch.sub("tree")
        try SampleTree.create(at: tree)
        let secret = tree + "/lib/secret.key"
        #expect(FileManager.default.createFile(atPath: secret, contents: Data("key".utf8)))
        chmod(secret, 0)
        let store = try scratch.sub("store")
        chmod(store, 0o777)
        // Root reads any file, so run kiln as an unprivileged user when we are root.
        let prefix = getuid() == 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] : []
        try Tools.shell("chmod -R a+rX '\(tree)' && chmod 0 '\(secret)'")
        let result = try Tools.run(prefix + [Tools.kiln, "layer", "create", "--from", tree, "--cache-dir", store])
        #expect(result.status == 3)
        let line = Tools.oneLine(result)
        #expect(line.contains(secret) && line.contains("Permission denied"), "\(line)")
        #expect(try Self.names(store + "/blobs/sha256").isEmpty)
    }

    @Test("--json turns an error into one JSON object with category and message")
    func jsonError() throws {
        let result = try Tools.kiln([
            "layer", "create", "--from", "/nonexistent/kiln-tree", "-o", "/tmp/never.tar.gz", "--json",
        ])
        #expect(result.status == 3)
        let line = Tools.oneLine(result)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [String: String]]
        #expect(object?["error"]?["category"] == "io")
        #expect(object?["error"]?["message"]?.contains("/nonexistent/kiln-tree") == true)
        #expect(result.stdout.isEmpty)
    }

    @Test("a malformed platform or tag is refused before any work")
    func badTargets() throws {
        let scratch = try Scratch("targets")
        let tree = try scratch.sub("tree")
        let badPlatform = try Tools.kiln([
            "image", "create", "--from", tree, "--platform", "linux", "-o", "oci:\(scratch.path)/l",
        ])
        #expect(badPlatform.status == 2)
        #expect(Tools.oneLine(badPlatform).contains("'linux' is not a platform"))
        let badTag = try Tools.kiln(["image", "create", "--from", tree, "-o", "oci:\(scratch.path)/l:-bad"])
        #expect(badTag.status == 2)
        #expect(Tools.oneLine(badTag).contains("'-bad' is not a valid tag"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/l"))
    }
}

@Suite("Command line basics")
struct CommandLineTests {
    @Test("kiln version prints the version, also as JSON")
    func version() throws {
        let text = try Tools.kiln(["version"])
        #expect(text.status == 0 && text.stdout.hasPrefix("kiln 0."))
        let json = try Tools.kiln(["version", "--json"])
        let object = try JSONSerialization.jsonObject(with: json.stdoutBytes) as? [String: String]
        #expect(object?["version"]?.isEmpty == false)
    }

    @Test("help teaches with an example")
    func help() throws {
        let help = try Tools.kiln(["layer", "create", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("kiln layer create --from ./app --prefix /app -o app.tar.gz"))
        #expect(help.stdout.contains("SOURCE_DATE_EPOCH"))
    }

    @Test("kiln digest agrees with sha256sum for several files and fails naming a missing one")
    func digest() throws {
        let scratch = try Scratch("digest")
        let a = scratch.path + "/a"
        let b = scratch.path + "/b"
        try "alpha".write(toFile: a, atomically: true, encoding: .utf8)
        try "".write(toFile: b, atomically: true, encoding: .utf8)
        let result = try Tools.kiln(["digest", a, b])
        let expected = try Tools.shell("sha256sum '\(a)' '\(b)' | cut -d' ' -f1").stdout.split(separator: "\n")
        #expect(
            result.stdout.split(separator: "\n").map { $0.split(separator: " ")[0] } == expected.map { "sha256:" + $0 })
        let missing = try Tools.kiln(["digest", scratch.path + "/none"])
        #expect(missing.status == 3 && missing.stderr.contains(scratch.path + "/none"))
    }
}
