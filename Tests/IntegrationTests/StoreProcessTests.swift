import Foundation
import Testing

@Suite("The store shared by processes", .serialized)
struct StoreProcessTests {
    @Test("two processes writing the same blob at once leave one valid file and no temporary files")
    func concurrentWriters() throws {
        let scratch = try Scratch("race")
        let file = scratch.path + "/payload.bin"
        try Tools.shell("head -c 48000000 /dev/urandom > '\(file)'")
        let expected = try Tools.shell("sha256sum '\(file)' | cut -d' ' -f1").stdout.trimmingCharacters(
            in: .whitespacesAndNewlines)
        for round in 0..<4 {
            let store = scratch.path + "/store-\(round)"
            // Both start together through one shell, so their writes overlap.
            let race = try Tools.shell(
                """
                '\(Tools.kiln)' store put --cache-dir '\(store)' '\(file)' > '\(store).a' 2>&1 & first=$!
                '\(Tools.kiln)' store put --cache-dir '\(store)' '\(file)' > '\(store).b' 2>&1 & second=$!
                wait $first; a=$?; wait $second; b=$?; exit $((a + b))
                """)
            #expect(race.status == 0, "\(race.stderr)")
            let names = try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256")
            #expect(names == [expected], "round \(round): \(names)")
            let stored = try Tools.shell("sha256sum '\(store)/blobs/sha256/\(expected)' | cut -d' ' -f1").stdout
            #expect(stored.trimmingCharacters(in: .whitespacesAndNewlines) == expected)
            for output in [store + ".a", store + ".b"] {
                #expect(try String(contentsOfFile: output, encoding: .utf8).hasPrefix("sha256:\(expected)"))
            }
        }
    }

    @Test("a store prune beside a running lane waits for it; the lane finishes")
    func pruneWaitsForTheLane() throws {
        let fixture = try LaneFixture("store-prune-lane")
        _ = try fixture.lane()
        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        // Each manifest push takes a second: the lane is under way long enough to prune beside.
        let proxy = try FaultProxy(
            upstream: fixture.registry, rules: [.init("delay", method: "PUT", path: "/manifests/", seconds: 1)])
        let lane = try BackgroundKiln(
            [
                "build", "--push", "--pin", "--root", fixture.repo, "--registry", proxy.host, "--build-arg",
                "BASE_IMAGE=\(fixture.baseReference)", "--json", "--cache-dir", fixture.cache,
            ])
        let started = lane.waitFor("\"event\":\"lane\"")
        try #require(started, "the lane started: \(lane.stderr)")
        let pruned = try Tools.kiln(
            ["prune", "--store-only", "--older-than", "0", "--delete", "--cache-dir", fixture.cache])
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(pruned.stderr.contains("waiting for the kiln runs using"), "\(pruned.stderr)")
        #expect(
            lane.wait() == 0,
            "the lane failed beside the prune: \(lane.stdout.suffix(2000)) \(lane.stderr.suffix(2000))")
    }

    @Test("kiln store verify finds a corrupted blob, removes it and exits 4")
    func verifyCorruption() throws {
        let scratch = try Scratch("verify")
        let store = scratch.path + "/store"
        let file = scratch.path + "/blob"
        try "original content".write(toFile: file, atomically: true, encoding: .utf8)
        let put = try Tools.kiln(["store", "put", "--cache-dir", store, file, "--json"])
        try #require(put.status == 0)
        let digest =
            (try JSONSerialization.jsonObject(with: put.stdoutBytes) as! [[String: Any]])[0]["digest"] as! String
        let blob = store + "/blobs/sha256/" + digest.dropFirst("sha256:".count)
        try Tools.shell(
            "chmod u+w '\(blob)' && printf 'flipped' | dd of='\(blob)' bs=1 seek=3 conv=notrunc 2>/dev/null")
        let verify = try Tools.kiln(["store", "verify", "--cache-dir", store, "--json"])
        #expect(verify.status == 4)
        let report = try JSONSerialization.jsonObject(with: verify.stdoutBytes) as! [String: Any]
        #expect(report["removedCorrupt"] as? [String] == [digest])
        #expect(!FileManager.default.fileExists(atPath: blob))
        let again = try Tools.kiln(["store", "verify", "--cache-dir", store])
        #expect(again.status == 0 && again.stdout.contains("0 blobs intact"))
    }

    @Test("a corrupt layer blob in the store is not copied into an image layout")
    func corruptBlobNotServed() throws {
        let (scratch, tree) = try Scratch.withSampleTree("serve")
        let store = scratch.path + "/store"
        let first = try Tools.kiln(["layer", "create", "--from", tree, "--cache-dir", store, "--json"])
        try #require(first.status == 0)
        let path = (try JSONSerialization.jsonObject(with: first.stdoutBytes) as! [String: Any])["path"] as! String
        // Corrupt the stored layer, then ask for an image made of the same tree: kiln rewrites the
        // layer on ingest, so the layout must end up with good bytes, never the corrupt ones.
        try Tools.shell("chmod u+w '\(path)' && printf 'XXXX' | dd of='\(path)' bs=1 seek=20 conv=notrunc 2>/dev/null")
        let image = try Tools.kiln([
            "image", "create", "--from", tree, "-o", "oci:\(scratch.path)/layout:t", "--cache-dir", store,
        ])
        #expect(image.status == 0, "\(image.stderr)")
        let digest = String(path.split(separator: "/").last!)
        let copied = try Tools.shell("sha256sum '\(scratch.path)/layout/blobs/sha256/\(digest)' | cut -d' ' -f1").stdout
        #expect(copied.trimmingCharacters(in: .whitespacesAndNewlines) == digest)
    }
}
