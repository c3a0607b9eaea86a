import Foundation
import Testing

@Suite("Layers are reproducible", .serialized)
struct ReproducibilityTests {
    @Test("the same tree with other mtimes, owners and creation order gives byte-identical layers")
    func identicalAcrossCopies() throws {
        let scratch = try Scratch("repro")
        let first = try scratch.sub("first")
        let second = try scratch.sub("second")
        try SampleTree.create(at: first)
        try SampleTree.create(at: second, reversed: true)
        // Give the second copy other owners and times, as another checkout on another machine would have.
        try Tools.shell(
            "chown -hR 1234:5678 '\(second)' && find '\(second)' -exec touch -h -d '2021-03-04 05:06:07' {} +")
        #expect(
            try Tools.shell("stat -c %Y '\(first)/run.sh'").stdout
                != (try Tools.shell("stat -c %Y '\(second)/run.sh'").stdout))

        let a = try Tools.kiln([
            "layer", "create", "--from", first, "--prefix", "/app", "-o", scratch.path + "/a.tar.gz",
        ])
        let b = try Tools.kiln([
            "layer", "create", "--from", second, "--prefix", "/app", "-o", scratch.path + "/b.tar.gz",
        ])
        #expect(a.status == 0, "\(a.stderr)")
        #expect(b.status == 0, "\(b.stderr)")
        #expect(try Tools.run(["cmp", scratch.path + "/a.tar.gz", scratch.path + "/b.tar.gz"]).status == 0)
        #expect(a.stdout == b.stdout.replacingOccurrences(of: "b.tar.gz", with: "a.tar.gz"))
    }

    @Test("the digest is sha256sum of the blob and the diffID is sha256sum of the gunzipped tar")
    func digestsMatchCoreutils() throws {
        try Tools.require("sha256sum", package: "coreutils")
        try Tools.require("gunzip", package: "gzip")
        let (scratch, tree) = try Scratch.withSampleTree("sums")
        let blob = scratch.path + "/layer.tar.gz"
        let result = try Tools.kiln(["layer", "create", "--from", tree, "-o", blob, "--json"])
        try #require(result.status == 0, "\(result.stderr)")
        let report = try JSONSerialization.jsonObject(with: result.stdoutBytes) as! [String: Any]
        let blobSum = try Tools.shell("sha256sum '\(blob)' | cut -d' ' -f1").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        let tarSum = try Tools.shell("gunzip -c '\(blob)' | sha256sum | cut -d' ' -f1").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let size = try Tools.shell("stat -c %s '\(blob)'").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(report["digest"] as? String == "sha256:" + blobSum)
        #expect(report["diffID"] as? String == "sha256:" + tarSum)
        #expect("\(report["size"] ?? "")" == size)
        let digest = try Tools.kiln(["digest", blob])
        #expect(digest.stdout.hasPrefix("sha256:\(blobSum)  \(size)  "))
    }

    @Test("SOURCE_DATE_EPOCH changes the bytes and is the time every entry carries")
    func sourceDateEpoch() throws {
        try Tools.require("tar", package: "tar")
        let (scratch, tree) = try Scratch.withSampleTree("epoch")
        let plain = try Tools.kiln(["layer", "create", "--from", tree, "-o", scratch.path + "/plain.tar.gz"])
        let stamped = try Tools.kiln(
            ["layer", "create", "--from", tree, "-o", scratch.path + "/stamped.tar.gz"],
            environment: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(plain.status == 0 && stamped.status == 0)
        #expect(
            try Tools.run(["cmp", "-s", scratch.path + "/plain.tar.gz", scratch.path + "/stamped.tar.gz"]).status == 1)
        let listing = try Tools.run(
            ["tar", "--full-time", "-tvzf", scratch.path + "/stamped.tar.gz"], environment: ["TZ": "UTC"])
        let lines = listing.stdout.split(separator: "\n")
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { $0.contains("2023-11-14 22:13:20") }, "\(listing.stdout)")
        let plainListing = try Tools.run(
            ["tar", "--full-time", "-tvzf", scratch.path + "/plain.tar.gz"], environment: ["TZ": "UTC"])
        #expect(plainListing.stdout.split(separator: "\n").allSatisfy { $0.contains("1970-01-01 00:00:00") })
    }

    @Test("an invalid SOURCE_DATE_EPOCH is refused with a message naming it")
    func invalidEpoch() throws {
        let scratch = try Scratch("badepoch")
        let tree = try scratch.sub("tree")
        let result = try Tools.kiln(
            ["layer", "create", "--from", tree, "-o", scratch.path + "/x.tar.gz"],
            environment: ["SOURCE_DATE_EPOCH": "soon"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("SOURCE_DATE_EPOCH='soon'"))
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/x.tar.gz"))
    }
}
