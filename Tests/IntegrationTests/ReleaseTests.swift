import Foundation
import Testing

/// The release archive `make release` writes, installed as the GitHub action installs it
/// (`scripts/action-install.sh`) on a Debian machine that has nothing but the install line's
/// packages: a fresh bookworm made with debootstrap, the binary run there with chroot.
@Suite("The release binary on a bare Debian", .serialized)
struct ReleaseTests {
    /// Where the bare root is kept between runs.
    static let fixtures = Tools.packageRoot + "/cache/fixtures/release"

    /// The archive for this machine's architecture, checked against its `.sha256`.
    enum FilePath {
        static func directory(of path: String) -> String { (path as NSString).deletingLastPathComponent }
        static func name(of path: String) -> String { (path as NSString).lastPathComponent }
    }

    static func archive() throws -> String {
        let arch = try Tools.run(["dpkg", "--print-architecture"]).stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let dist = Tools.packageRoot + "/dist"
        let name = (try? FileManager.default.contentsOfDirectory(atPath: dist))?
            .filter { $0.hasPrefix("kiln-") && $0.hasSuffix("-linux-\(arch).tar.gz") }.sorted().last
        let archive = try #require(
            name.map { dist + "/" + $0 },
            "no dist/kiln-VERSION-linux-\(arch).tar.gz: run 'make release' (make test does)")
        let checked = try Tools.run(["sha256sum", "-c", archive + ".sha256"], directory: dist)
        try #require(checked.status == 0, "the archive does not match its .sha256: \(checked.stdout)\(checked.stderr)")
        return archive
    }

    @Test(
        "the install script puts kiln on bookworm with only libarchive13, zlib1g, libssl3 and ca-certificates, and it runs"
    )
    func bareDebian() throws {
        try Tools.require("debootstrap", package: "debootstrap")
        try Tools.require("chroot", package: "coreutils")
        let archive = try Self.archive()
        let made = try Tools.run(["bash", Tools.packageRoot + "/Tests/Fixtures/release-root.sh", Self.fixtures])
        try #require(made.status == 0, "\(made.stderr)")
        let fixture = try LaneFixture("release")
        // A copy of the bare root per run, so nothing one run leaves is there for the next.
        let root = fixture.scratch.path + "/root"
        let copied = try Tools.run(["cp", "-a", Self.fixtures + "/root", root])
        try #require(copied.status == 0, "\(copied.stderr)")
        try #require(Tools.run(["mount", "-t", "proc", "proc", root + "/proc"]).status == 0, "cannot mount /proc")
        defer { _ = try? Tools.run(["umount", "-l", root + "/proc"]) }
        func inRoot(_ script: String) throws -> Tools.Result {
            try Tools.run(
                ["/usr/sbin/chroot", root, "/bin/sh", "-c", "PATH=/usr/local/bin:/usr/bin:/bin; " + script])
        }

        // Installed as the action installs it: the archive from its release location, checked
        // against its .sha256, the packages it needs already there (nothing is fetched).
        let dist = try Tools.run(["cp", "-a", FilePath.directory(of: archive), root + "/dist"])
        try #require(dist.status == 0, "\(dist.stderr)")
        try #require(
            try Tools.run(["cp", Tools.packageRoot + "/scripts/action-install.sh", root + "/tmp/install.sh"]).status
                == 0)
        let version = String(FilePath.name(of: archive).dropFirst("kiln-".count).prefix { $0 != "-" })
        let install = try inRoot(
            "VERSION=\(version) RELEASES=file:///dist RUN_STEPS=false bash /tmp/install.sh")
        try #require(install.status == 0, "the install script failed: \(install.stdout)\(install.stderr)")
        #expect(install.stdout.hasSuffix("kiln \(version)\n"), "\(install.stdout)")
        #expect(!install.stdout.contains("installing"), "the packages are there: \(install.stdout)")
        // A tampered archive is refused before anything is unpacked.
        let copiedArchive = root + "/dist/" + FilePath.name(of: archive)
        try #require(try Tools.run(["sh", "-c", "echo x >> '\(copiedArchive)'"]).status == 0)
        let tampered = try inRoot(
            "INSTALL_DIR=/tmp VERSION=\(version) RELEASES=file:///dist RUN_STEPS=false bash /tmp/install.sh")
        #expect(tampered.status != 0 && !FileManager.default.fileExists(atPath: root + "/tmp/kiln"))

        let libraries = try inRoot("ldd /usr/local/bin/kiln")
        #expect(libraries.status == 0)
        #expect(!libraries.stdout.contains("not found"), "\(libraries.stdout)")
        #expect(!libraries.stdout.contains("libswift") && !libraries.stdout.contains("libFoundation"))
        let printed = try inRoot("kiln version")
        #expect(printed.status == 0 && printed.stdout == "kiln \(version)\n", "\(printed.stdout)\(printed.stderr)")
        let help = try inRoot("kiln build --help")
        #expect(help.status == 0 && help.stdout.contains("USAGE"), "\(help.stdout)\(help.stderr)")

        // A lane: the bundled example, built, pushed to the test's loopback registry and pinned.
        let copiedRepo = try Tools.run(["cp", "-a", fixture.repo, root + "/repo"])
        try #require(copiedRepo.status == 0)
        let before = try String(contentsOfFile: root + "/repo/tools/text/echo/1/registry.yaml", encoding: .utf8)
        let lane = try inRoot(
            "kiln build --push --pin --root /repo --registry \(fixture.registryHost) --build-arg BASE_IMAGE=\(fixture.baseReference) --cache-dir /cache --json"
        )
        try #require(lane.status == 0, "the lane failed on the bare root: \(lane.stderr.suffix(2000))")
        let reports = LaneFixture.reports(lane.stdout)
        #expect(reports["text/echo@1"]?["status"] as? String == "built", "\(lane.stdout)")
        #expect(!reports.values.contains { $0["status"] as? String == "failed" }, "\(lane.stdout)")
        let after = try String(contentsOfFile: root + "/repo/tools/text/echo/1/registry.yaml", encoding: .utf8)
        #expect(after != before && after.contains("@sha256:"), "the pin was written")
    }
}
