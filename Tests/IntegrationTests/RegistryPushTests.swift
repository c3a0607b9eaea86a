import Foundation
import Testing

@Suite("Pushing to a real registry over plain HTTP on loopback", .serialized)
struct RegistryPushTests {
    /// A two-platform image kiln built from the sample tree, in an OCI layout tagged `v1`.
    static func builtImage(_ scratch: Scratch, tree: String) throws -> String {
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--prefix", "/app", "--platform", "linux/amd64,linux/arm64",
            "--cmd", "/app/run.sh", "-o", "oci:\(layout):v1", "--cache-dir", scratch.path + "/store",
        ])
        try #require(created.status == 0, "\(created.stderr)")
        return layout
    }

    static func json(_ result: Tools.Result) throws -> [String: Any] {
        try #require(result.status == 0, "kiln failed: \(result.stderr)")
        return try JSONSerialization.jsonObject(with: result.stdoutBytes) as! [String: Any]
    }

    @Test(
        "a two-platform push reads back with skopeo and umoci; a second push uploads nothing",
        arguments: [false, true])
    func pushAndReadBack(relativeURLs: Bool) throws {
        try Tools.require("skopeo", package: "skopeo")
        try Tools.require("umoci", package: "umoci")
        let registry = try RegistryServer(.init(relativeURLs: relativeURLs))
        let (scratch, tree) = try Scratch.withSampleTree("push")
        let layout = try Self.builtImage(scratch, tree: tree)
        let target = "\(registry.host)/acme/app:v1"

        let first = try Self.json(try Tools.kiln(["push", "\(layout):v1", target, "--json"]))
        #expect(first["blobsUploaded"] as? Int == 3, "one shared layer and two configs")
        let digest = try #require(first["digest"] as? String)

        let raw = try Tools.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "docker://\(target)"])
        try #require(raw.status == 0, "\(raw.stderr)")
        let index = try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as! [String: Any]
        let platforms = (index["manifests"] as! [[String: Any]]).compactMap {
            ($0["platform"] as? [String: Any])?["architecture"] as? String
        }
        #expect(platforms == ["amd64", "arm64"])
        let rawDigest = try Tools.shell(
            "skopeo inspect --raw --tls-verify=false docker://\(target) | sha256sum | cut -d' ' -f1")
        #expect(digest == "sha256:" + rawDigest.stdout.trimmingCharacters(in: .whitespacesAndNewlines))

        let all = try Tools.run([
            "skopeo", "copy", "--all", "--src-tls-verify=false", "docker://\(target)", "oci:\(scratch.path)/all:v1",
        ])
        #expect(all.status == 0, "\(all.stderr)")
        let arm = try Tools.run([
            "skopeo", "copy", "--override-arch", "arm64", "--src-tls-verify=false", "docker://\(target)",
            "oci:\(scratch.path)/arm:v1",
        ])
        try #require(arm.status == 0, "\(arm.stderr)")
        let unpack = try Tools.run(["umoci", "unpack", "--image", "\(scratch.path)/arm:v1", scratch.path + "/bundle"])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        try TreeComparison.expectEqual(source: tree, unpacked: scratch.path + "/bundle/rootfs/app")

        // Again to the same tag: one manifest HEAD finds the tag already names this image.
        var mark = registry.mark()
        let second = try Self.json(try Tools.kiln(["push", "\(layout):v1", target, "--json"]))
        #expect(second["alreadyPresent"] as? Bool == true)
        #expect(second["blobsUploaded"] as? Int == 0)
        #expect(second["digest"] as? String == digest)
        #expect(registry.requests(since: mark).filter { $0 != "GET /v2/" } == ["HEAD /v2/acme/app/manifests/v1"])

        // Under a new tag: every blob is found by HEAD and none is uploaded.
        mark = registry.mark()
        let third = try Self.json(try Tools.kiln(["push", "\(layout):v1", "\(registry.host)/acme/app:v2", "--json"]))
        #expect(third["blobsSkipped"] as? Int == 3)
        #expect(third["blobsUploaded"] as? Int == 0)
        let uploads = registry.requests(since: mark).filter {
            $0.hasPrefix("POST") || $0.hasPrefix("PATCH") || $0.contains("/blobs/uploads/")
        }
        #expect(uploads.isEmpty, "a push of present blobs sent upload requests: \(uploads)")
    }

    @Test(
        "several images in one run: the second image's blobs are mounted from the first's repository; a re-run sends nothing"
    )
    func severalImages() throws {
        let registry = try RegistryServer()
        let (scratch, tree) = try Scratch.withSampleTree("several")
        let layout = try Self.builtImage(scratch, tree: tree)
        let arguments = [
            "push", "\(layout):v1", "\(registry.host)/acme/one:v1", "\(layout):v1", "\(registry.host)/acme/two:v1",
            "--jobs", "1", "--upload-jobs", "1", "--json",
        ]
        let first = try Tools.kiln(arguments)
        try #require(first.status == 0, "\(first.stderr)")
        let reports = try #require(try JSONSerialization.jsonObject(with: first.stdoutBytes) as? [[String: Any]])
        #expect(reports.count == 2)
        #expect(reports[0]["blobsUploaded"] as? Int == 3)
        #expect(
            reports[1]["blobsMounted"] as? Int == 3, "blobs seen in acme/one are mounted into acme/two: \(reports[1])")
        let mark = registry.mark()
        let again = try Tools.kiln(arguments)
        let repeated = try #require(try JSONSerialization.jsonObject(with: again.stdoutBytes) as? [[String: Any]])
        #expect(repeated.allSatisfy { $0["alreadyPresent"] as? Bool == true })
        #expect(registry.requests(since: mark).filter { $0 != "GET /v2/" }.count == 2, "one manifest HEAD per image")
        let odd = try Tools.kiln(["push", "\(layout):v1"])
        #expect(odd.status == 64 && odd.stderr.contains("pairs of LAYOUT[:TAG] REFERENCE"))
    }

    @Test("a corrupt blob in the layout is refused by the registry, named by kiln, and nothing is tagged")
    func corruptLayoutBlob() throws {
        let registry = try RegistryServer()
        let (scratch, tree) = try Scratch.withSampleTree("corrupt-push")
        let layout = try Self.builtImage(scratch, tree: tree)
        // The biggest blob in the layout is the layer; flip bytes in it.
        let layer = try Tools.shell("ls -S '\(layout)/blobs/sha256' | head -1").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        try Tools.shell(
            "chmod u+w '\(layout)/blobs/sha256/\(layer)' && printf 'XXXX' | dd of='\(layout)/blobs/sha256/\(layer)' bs=1 seek=30 conv=notrunc 2>/dev/null"
        )
        let push = try Tools.kiln(["push", "\(layout):v1", "\(registry.host)/acme/corrupt:v1"])
        #expect(push.status == 4, "bytes not matching their digest are an integrity failure")
        #expect(push.stderr.contains(layer) && push.stderr.contains("corrupt (its bytes hash to"), "\(push.stderr)")
        #expect(
            !registry.requests().contains { $0.hasPrefix("PUT") && $0.contains("/manifests/") },
            "no manifest was pushed")
    }

    @Test("a 64 MiB blob goes up in 1 MiB PATCH chunks and reads back identical")
    func chunked() throws {
        try Tools.require("skopeo", package: "skopeo")
        let registry = try RegistryServer(.init(relativeURLs: true))
        let scratch = try Scratch("chunks")
        let tree = try scratch.sub("tree")
        try Tools.shell("head -c 67108864 /dev/urandom > '\(tree)/big.bin'")
        let layout = scratch.path + "/layout"
        let created = try Tools.kiln([
            "image", "create", "--from", tree, "--level", "0", "-o", "oci:\(layout):big",
            "--cache-dir", scratch.path + "/store", "--json",
        ])
        try #require(created.status == 0, "\(created.stderr)")
        let layer = try #require(
            (try JSONSerialization.jsonObject(with: created.stdoutBytes) as? [String: Any])?["layer"] as? String)

        let mark = registry.mark()
        let push = try Tools.kiln([
            "push", "\(layout):big", "\(registry.host)/acme/big:v1", "--chunk-size", "1", "--json",
        ])
        #expect(push.status == 0, "\(push.stderr)")
        let patches = registry.requests(since: mark).filter { $0.hasPrefix("PATCH") }
        #expect(patches.count >= 64, "expected at least 64 chunks, saw \(patches.count)")

        let copy = try Tools.run([
            "skopeo", "copy", "--src-tls-verify=false", "docker://\(registry.host)/acme/big:v1",
            "dir:\(scratch.path)/back",
        ])
        try #require(copy.status == 0, "\(copy.stderr)")
        let back = try Tools.shell("sha256sum '\(scratch.path)/back/\(layer.dropFirst(7))' | cut -d' ' -f1").stdout
        #expect("sha256:" + back.trimmingCharacters(in: .whitespacesAndNewlines) == layer)
    }
}

@Suite("Resolving references against a real registry", .serialized)
struct ResolveTests {
    @Test("resolve gives skopeo's index digest; inspect picks each platform; a Docker manifest list works the same")
    func resolveIndexAndDockerList() throws {
        try Tools.require("skopeo", package: "skopeo")
        let registry = try RegistryServer()
        let (scratch, tree) = try Scratch.withSampleTree("resolve")
        let layout = try RegistryPushTests.builtImage(scratch, tree: tree)
        try #require(try Tools.kiln(["push", "\(layout):v1", "\(registry.host)/acme/multi:v1"]).status == 0)
        // The same image converted by skopeo to Docker's schema 2 manifest list.
        let docker = try Tools.run([
            "skopeo", "copy", "--all", "--format", "v2s2", "--dest-tls-verify=false", "oci:\(layout):v1",
            "docker://\(registry.host)/acme/dockerlist:v1",
        ])
        try #require(docker.status == 0, "\(docker.stderr)")

        for (repository, mediaType) in [
            ("acme/multi", "application/vnd.oci.image.index.v1+json"),
            ("acme/dockerlist", "application/vnd.docker.distribution.manifest.list.v2+json"),
        ] {
            let reference = "\(registry.host)/\(repository):v1"
            let resolved = try RegistryPushTests.json(try Tools.kiln(["resolve", reference, "--json"]))
            let expected = try Tools.shell(
                "skopeo inspect --raw --tls-verify=false docker://\(reference) | sha256sum | cut -d' ' -f1")
            #expect(
                resolved["digest"] as? String == "sha256:"
                    + expected.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(resolved["mediaType"] as? String == mediaType)
            #expect((resolved["pinned"] as? String)?.hasPrefix(reference + "@sha256:") == true)

            for arch in ["amd64", "arm64"] {
                let inspected = try RegistryPushTests.json(
                    try Tools.kiln(["inspect", reference, "--platform", "linux/\(arch)", "--json"]))
                #expect((inspected["platform"] as? String)?.hasPrefix("linux/\(arch)") == true)
                let manifestDigest = try #require(inspected["digest"] as? String)
                // skopeo picks the same platform's manifest from the index by itself.
                let peer = try Tools.shell(
                    "skopeo inspect --override-arch \(arch) --override-os linux --raw --tls-verify=false "
                        + "docker://\(reference) | python3 -c 'import json,sys; m=json.load(sys.stdin)[\"manifests\"]; "
                        + "print([e[\"digest\"] for e in m if e[\"platform\"][\"architecture\"]==\"\(arch)\"][0])'")
                #expect(peer.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == manifestDigest)
                let raw = try Tools.shell(
                    "skopeo inspect --raw --tls-verify=false docker://\(registry.host)/\(repository)@\(manifestDigest) | sha256sum"
                )
                #expect(
                    raw.stdout.hasPrefix(manifestDigest.dropFirst(7)), "kiln's \(arch) manifest digest names real bytes"
                )
            }
        }
        let missing = try Tools.kiln(["inspect", "\(registry.host)/acme/multi:v1", "--platform", "linux/s390x"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no linux/s390x image") && missing.stderr.contains("linux/amd64"))
    }
}

@Suite("Registry errors are one line", .serialized)
struct RegistryErrorTests {
    @Test(
        "malformed references are refused before any network traffic",
        arguments: [
            "UPPER/case", "host:5000/Repo", "repo:tag with space", "repo@sha256:123", "a//b", "repo:-tag",
            "host:99999/x",
        ])
    func malformed(reference: String) throws {
        let result = try Tools.kiln(["resolve", reference])
        #expect(result.status == 2)
        #expect(Tools.oneLine(result).contains("is not a valid image reference"))
    }

    @Test("an unknown host, a registry that is down and a missing repository each fail in one line")
    func failures() throws {
        let unknown = try Tools.kiln(["resolve", "no-such-host.invalid/acme/app:v1"])
        #expect(unknown.status == 5)
        #expect(Tools.oneLine(unknown).contains("no-such-host.invalid"))

        let port = try RegistryServer.freePort()
        let down = try Tools.kiln(["resolve", "127.0.0.1:\(port)/acme/app:v1"])
        #expect(down.status == 5)
        #expect(Tools.oneLine(down).contains("127.0.0.1:\(port)"))

        let registry = try RegistryServer()
        let missing = try Tools.kiln(["resolve", "\(registry.host)/acme/nothing:v1"])
        #expect(missing.status == 5)
        let line = Tools.oneLine(missing)
        #expect(line.contains("404") && line.contains("acme/nothing"), "\(line)")
        #expect(line.contains("MANIFEST_UNKNOWN") || line.contains("NAME_UNKNOWN"), "\(line)")
    }
}
