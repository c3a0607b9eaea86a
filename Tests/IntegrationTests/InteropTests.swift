import Foundation
import Testing

@Suite("Layers and layouts read by tools kiln did not write", .serialized)
struct InteropTests {
    @Test("tar and gzip accept the layer and list every entry with owner 0/0")
    func tarAndGzip() throws {
        try Tools.require("tar", package: "tar")
        try Tools.require("gzip", package: "gzip")
        let (scratch, tree) = try Scratch.withSampleTree("tar")
        let blob = scratch.path + "/layer.tar.gz"
        try #require(try Tools.kiln(["layer", "create", "--from", tree, "--prefix", "/app", "-o", blob]).status == 0)
        #expect(try Tools.run(["gzip", "-t", blob]).status == 0)
        let listing = try Tools.run(["tar", "-tvzf", blob])
        #expect(listing.status == 0, "\(listing.stderr)")
        let lines = listing.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == SampleTree.items.count + 1, "every item plus the /app directory: \(listing.stdout)")
        #expect(lines.allSatisfy { $0.contains(" 0/0 ") })
        #expect(lines.contains { $0.hasPrefix("-rwxr-xr-x") && $0.hasSuffix("app/run.sh") })
        #expect(lines.contains { $0.hasPrefix("lrwxrwxrwx") && $0.hasSuffix("app/current -> lib/nested") })
        #expect(lines.contains { $0.hasSuffix("app/data file é ü.txt") })
        #expect(lines.contains { $0.hasPrefix("hrw-r--r--") && $0.contains("app/config.yaml") })
    }

    @Test("umoci unpacks an image layout kiln wrote, giving back the same tree")
    func umociUnpack() throws {
        try Tools.require("umoci", package: "umoci")
        let (scratch, tree) = try Scratch.withSampleTree("umoci")
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--prefix", "/app", "--cmd", "/app/run.sh", "-o", "oci:\(layout):v1",
            "--cache-dir", scratch.path + "/store",
        ])
        try #require(created.status == 0, "\(created.stderr)")
        let bundle = scratch.path + "/bundle"
        let unpack = try Tools.run(["umoci", "unpack", "--image", "\(layout):v1", bundle])
        try #require(unpack.status == 0, "umoci: \(unpack.stderr)")
        try TreeComparison.expectEqual(source: tree, unpacked: bundle + "/rootfs/app")
        let config = try String(contentsOfFile: bundle + "/config.json", encoding: .utf8)
        #expect(config.contains("/app/run.sh"), "umoci carried the image's Cmd into the runtime config")
    }

    @Test("skopeo reads a multi-platform layout as an index and copies it whole")
    func skopeoIndex() throws {
        try Tools.require("skopeo", package: "skopeo")
        let (scratch, tree) = try Scratch.withSampleTree("skopeo")
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--prefix", "/srv", "--platform", "linux/amd64,linux/arm64",
            "-o", "oci:\(layout):multi", "--cache-dir", scratch.path + "/store", "--json",
        ])
        try #require(created.status == 0, "\(created.stderr)")
        let report = try JSONSerialization.jsonObject(with: created.stdoutBytes) as! [String: Any]
        let raw = try Tools.run(["skopeo", "inspect", "--raw", "oci:\(layout):multi"])
        try #require(raw.status == 0, "\(raw.stderr)")
        let index = try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as! [String: Any]
        let manifests = index["manifests"] as! [[String: Any]]
        #expect(index["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        #expect(
            manifests.compactMap { ($0["platform"] as? [String: Any])?["architecture"] as? String } == [
                "amd64", "arm64",
            ])
        let rawDigest = try Tools.shell("skopeo inspect --raw oci:\(layout):multi | sha256sum | cut -d' ' -f1").stdout
        #expect(report["digest"] as? String == "sha256:" + rawDigest.trimmingCharacters(in: .whitespacesAndNewlines))
        let arm = try Tools.run(["skopeo", "--override-arch", "arm64", "inspect", "oci:\(layout):multi"])
        #expect(arm.status == 0 && arm.stdout.contains("\"Architecture\": \"arm64\""), "\(arm.stderr)")
        let copy = try Tools.run(["skopeo", "copy", "--all", "oci:\(layout):multi", "oci:\(scratch.path)/copy:multi"])
        #expect(copy.status == 0, "\(copy.stderr)")
    }
}

/// Compares a source tree with what a tool unpacked: names, contents, permission bits, link
/// targets, and which files are hard links of each other.
enum TreeComparison {
    static func expectEqual(source: String, unpacked: String) throws {
        let fm = FileManager.default
        let sourceNames = Set(try fm.subpathsOfDirectory(atPath: source))
        let unpackedNames = Set(try fm.subpathsOfDirectory(atPath: unpacked))
        #expect(sourceNames == unpackedNames)
        for name in sourceNames.sorted() {
            let a = try fm.attributesOfItem(atPath: source + "/" + name)
            let b = try fm.attributesOfItem(atPath: unpacked + "/" + name)
            #expect(a[.type] as? FileAttributeType == b[.type] as? FileAttributeType, "\(name)")
            if a[.type] as? FileAttributeType == .typeSymbolicLink {
                #expect(
                    try fm.destinationOfSymbolicLink(atPath: source + "/" + name)
                        == fm.destinationOfSymbolicLink(atPath: unpacked + "/" + name), "\(name)")
                continue
            }
            #expect((a[.posixPermissions] as? Int) == (b[.posixPermissions] as? Int), "mode of \(name)")
            if a[.type] as? FileAttributeType == .typeRegular {
                #expect(
                    fm.contents(atPath: source + "/" + name) == fm.contents(atPath: unpacked + "/" + name), "\(name)")
            }
        }
        let original = try fm.attributesOfItem(atPath: unpacked + "/config.yaml")[.systemFileNumber] as? Int
        let link = try fm.attributesOfItem(atPath: unpacked + "/config-hardlink.yaml")[.systemFileNumber] as? Int
        #expect(original != nil && original == link, "the hard link is still a hard link")
    }
}
