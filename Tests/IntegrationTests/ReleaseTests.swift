import Foundation
import Testing

/// The release archive `make release` writes, installed the way README.md says on a Debian
/// machine that has nothing but the install line's packages: a fresh bookworm made with
/// debootstrap, the binary run there with chroot.
@Suite("The release binary on a bare Debian", .serialized)
struct ReleaseTests {
    /// Where the bare root is kept between runs.
    static let fixtures = Tools.packageRoot + "/cache/fixtures/release"

    /// The archive for this machine's architecture, checked against its `.sha256`.
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

    @Test("kiln runs from the archive on bookworm with only libarchive13, zlib1g, libssl3 and ca-certificates")
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
        let unpacked = try Tools.run(["tar", "-xzf", archive, "-C", root + "/usr/local/bin", "kiln"])
        try #require(unpacked.status == 0, "\(unpacked.stderr)")
        try #require(Tools.run(["mount", "-t", "proc", "proc", root + "/proc"]).status == 0, "cannot mount /proc")
        defer { _ = try? Tools.run(["umount", "-l", root + "/proc"]) }
        func inRoot(_ script: String) throws -> Tools.Result {
            try Tools.run(
                ["/usr/sbin/chroot", root, "/bin/sh", "-c", "PATH=/usr/local/bin:/usr/bin:/bin; " + script])
        }

        let libraries = try inRoot("ldd /usr/local/bin/kiln")
        #expect(libraries.status == 0)
        #expect(!libraries.stdout.contains("not found"), "\(libraries.stdout)")
        #expect(!libraries.stdout.contains("libswift") && !libraries.stdout.contains("libFoundation"))
        let version = try inRoot("kiln version")
        #expect(version.status == 0, "\(version.stderr)")
        #expect(version.stdout.contains("0."), "\(version.stdout)")
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
