import Foundation
import KilnCore
import KilnOCI
import KilnRegistry
import KilnStore
import Testing

/// Provenance next to each pushed image: an in-toto statement (SLSA provenance v1) in an OCI
/// artifact whose subject is the image, listed by the referrers tag on distribution 2.8, read
/// back with curl and checked by `kiln verify --provenance`.
@Suite("Provenance attached to the lane's images")
struct ProvenanceTests {
    static func get(_ url: String) throws -> Data {
        let result = try Tools.run([
            "curl", "-fsS", "-H",
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json", url,
        ])
        try #require(result.status == 0, "curl \(url): \(result.stderr)")
        return result.stdoutBytes
    }

    static func json(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    @Test(
        "each pushed image gets a statement naming its input key, Dockerfile, files, bases and commit; the image is the same without it"
    )
    func statement() throws {
        try Tools.require("curl", package: "curl")
        let fixture = try LaneFixture("provenance")
        let github = ["GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_RUN_ID": "77"]
        let reports = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"], environment: github)
        let echo = try #require(reports["text/echo@1"])
        let repository = try #require(echo["repository"] as? String)
        let platform = try #require((echo["platforms"] as? [[String: Any]])?.first)
        let image = try #require(platform["digest"] as? String)
        let key = try #require(platform["key"] as? String)
        let name = String(repository.drop { $0 != "/" }.dropFirst())
        let base = "http://\(fixture.registryHost)/v2/\(name)"

        // distribution 2.8 has no referrers API: the sha256-HEX tag lists the artifact.
        let listing = try Self.json(try Self.get("\(base)/manifests/sha256-\(image.dropFirst(7))"))
        let entries = try #require(listing["manifests"] as? [[String: Any]])
        let entry = try #require(entries.first { $0["artifactType"] as? String == "application/vnd.in-toto+json" })
        let artifact = try Self.json(try Self.get("\(base)/manifests/\(entry["digest"] as? String ?? "")"))
        #expect((artifact["subject"] as? [String: Any])?["digest"] as? String == image)
        let layer = try #require((artifact["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        let statement = try Self.json(try Self.get("\(base)/blobs/\(layer)"))
        #expect(statement["_type"] as? String == "https://in-toto.io/Statement/v1")
        #expect(statement["predicateType"] as? String == "https://slsa.dev/provenance/v1")
        let subject = (statement["subject"] as? [[String: Any]])?.first
        #expect((subject?["digest"] as? [String: String])?["sha256"] == String(image.dropFirst(7)))
        let predicate = try #require(statement["predicate"] as? [String: Any])
        let definition = try #require(predicate["buildDefinition"] as? [String: Any])
        #expect((definition["internalParameters"] as? [String: String])?["inputKey"] == "sha256:\(key)")
        #expect((definition["externalParameters"] as? [String: String])?["revision"] == github["GITHUB_SHA"])
        let dependencies = try #require(definition["resolvedDependencies"] as? [[String: Any]])
        func dependency(_ name: String) -> String? {
            (dependencies.first { $0["name"] as? String == name }?["digest"] as? [String: String])?["sha256"]
        }
        let sums = try Tools.shell(
            "cd '\(fixture.repo)' && sha256sum tools/text/echo/1/Dockerfile code/libs/textkit/normalize.py")
        for line in sums.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            #expect(dependency(String(fields[1])) == String(fields[0]), "\(fields[1]) by its digest: \(dependencies)")
        }
        let baseRepository = "oci://\(fixture.registryHost)/fixtures/busybox@sha256:"
        #expect(dependencies.contains { ($0["uri"] as? String)?.hasPrefix(baseRepository) == true }, "\(dependencies)")
        let runDetails = predicate["runDetails"] as? [String: Any]
        #expect(((runDetails?["builder"] as? [String: Any])?["version"] as? [String: String])?["kiln"] != nil)

        // The same processor without provenance, into another registry: the same image.
        let plain = try LaneFixture("provenance-plain")
        let without = try plain.run(
            ["build", "--push", "--pin", "--ref", "text/echo@1", "--no-provenance"], environment: github)
        let plainDigest = (without["text/echo@1"]?["platforms"] as? [[String: Any]])?.first?["digest"] as? String
        #expect(plainDigest == image, "provenance does not change the image")
    }

    @Test("verify --provenance passes for pins the lane attached provenance to, and names a pinned image without one")
    func verify() throws {
        let fixture = try LaneFixture("provenance-verify")
        _ = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"])
        let good = try fixture.run(["verify", "--provenance", "--ref", "text/echo@1"])
        #expect(good["text/echo@1"]?["status"] as? String == "ok", "\(good)")

        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        _ = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1", "--no-provenance"])
        let plain = try fixture.run(["verify", "--ref", "text/echo@1"])
        #expect(plain["text/echo@1"]?["status"] as? String == "ok", "without --provenance the pins are fine")
        let missing = try fixture.run(["verify", "--provenance", "--ref", "text/echo@1"], expect: 1)
        let report = try #require(missing["text/echo@1"])
        #expect(report["status"] as? String == "stale")
        #expect((report["message"] as? String)?.contains("has no provenance attached") == true, "\(report)")
    }

    @Test("verify --provenance refuses a statement naming the image and key but another builder or dependencies")
    func forgedStatement() async throws {
        try Tools.require("curl", package: "curl")
        let fixture = try LaneFixture("provenance-forged")
        let reports = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"])
        let echo = try #require(reports["text/echo@1"])
        let repositoryText = try #require(echo["repository"] as? String)
        let platform = try #require((echo["platforms"] as? [[String: Any]])?.first)
        let image = try Digest(parsing: try #require(platform["digest"] as? String))
        let name = String(repositoryText.drop { $0 != "/" }.dropFirst())
        let base = "http://\(fixture.registryHost)/v2/\(name)"
        let listing = try Self.json(try Self.get("\(base)/manifests/sha256-\(image.hex)"))
        let entry = try #require((listing["manifests"] as? [[String: Any]])?.first)
        let artifact = try Self.json(try Self.get("\(base)/manifests/\(entry["digest"] as? String ?? "")"))
        let layer = try #require((artifact["layers"] as? [[String: Any]])?.first?["digest"] as? String)
        let genuine = try CanonicalJSON.decode(
            ProvenanceStatement.self, from: Array(try Self.get("\(base)/blobs/\(layer)")), what: "statement")

        // The same subject and input key; another builder and another digest for a file.
        var forged = genuine
        forged.predicate.runDetails.builder.id = "https://evil.example/builder"
        let file = "code/libs/textkit/normalize.py"
        let position = try #require(
            forged.predicate.buildDefinition.resolvedDependencies.firstIndex { $0.name == file },
            "\(forged.predicate.buildDefinition.resolvedDependencies)")
        forged.predicate.buildDefinition.resolvedDependencies[position].digest = [
            "sha256": String(repeating: "0", count: 64)
        ]
        let scratch = try Scratch("forge")
        let store = try ContentStore(root: scratch.path + "/store")
        let client = try RegistryClient()
        defer { Task { await client.shutdown() } }
        let repository = try ImageReference(parsing: repositoryText).repository
        let subject = try #require(
            try await client.headManifest(ImageReference(repository: repository, digest: image)))
        let blob = try store.put(try CanonicalJSON.encode(forged), mediaType: ProvenanceStatement.mediaType)
        let empty = try store.put(Array("{}".utf8), mediaType: .ociEmpty)
        let manifest = ProvenanceStatement.artifact(
            statement: blob, empty: empty, subject: subject, annotations: forged.annotations)
        var pushed = try store.put(try CanonicalJSON.encode(manifest), mediaType: .ociManifest)
        _ = try await ImagePusher(client: client).push(
            pushed, from: store, to: ImageReference(repository: repository, digest: pushed.digest))
        pushed.artifactType = ProvenanceStatement.mediaType
        pushed.annotations = manifest.annotations
        // The forgery replaces the genuine statement in the image's referrers listing.
        let index = try Encoded(ImageIndex(manifests: [pushed]), mediaType: .ociIndex)
        _ = try store.put(index.bytes, mediaType: .ociIndex)
        try await ImagePusher(client: client).putManifest(
            index.bytes, mediaType: .ociIndex, to: repository, reference: "sha256-\(image.hex)", from: store)

        let refused = try fixture.run(["verify", "--provenance", "--ref", "text/echo@1"], expect: 1)
        let report = try #require(refused["text/echo@1"])
        let message = report["message"] as? String ?? ""
        #expect(report["status"] as? String == "stale", "\(report)")
        #expect(message.contains("builder https://evil.example/builder"), "\(message)")
        #expect(message.contains("dependency \(file)"), "\(message)")
    }

    /// A P-256 key pair made by openssl: (private PEM path, public PEM path).
    static func keyPair(_ folder: String, _ name: String) throws -> (String, String) {
        let made = try Tools.shell(
            "cd '\(folder)' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \(name).pem && openssl pkey -in \(name).pem -pubout -out \(name).pub"
        )
        try #require(made.status == 0, "\(made.stderr)")
        return ("\(folder)/\(name).pem", "\(folder)/\(name).pub")
    }

    @Test(
        "--sign-key pushes DSSE-signed statements under .att; verify --key refuses unsigned, re-signed and altered ones; securesystemslib verifies them"
    )
    func signedStatements() async throws {
        try Tools.require("openssl", package: "openssl")
        try Tools.require("curl", package: "curl")
        let check = try Tools.run(["/usr/bin/python3", "-c", "import securesystemslib.dsse, cryptography"])
        try #require(
            check.status == 0,
            "securesystemslib is missing: /usr/bin/python3 -m pip install --break-system-packages 'securesystemslib[crypto]==1.1.0' (.ci/run does)"
        )
        let fixture = try LaneFixture("provenance-signed")
        let keys = try Scratch("signing-keys")
        let (signing, verifying) = try Self.keyPair(keys.path, "kiln")
        let (_, other) = try Self.keyPair(keys.path, "other")
        let reports = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1", "--sign-key", signing])
        let good = try fixture.run(["verify", "--ref", "text/echo@1", "--key", verifying])
        #expect(good["text/echo@1"]?["status"] as? String == "ok", "\(good)")
        let resigned = try fixture.run(["verify", "--ref", "text/echo@1", "--key", other], expect: 1)
        #expect(
            (resigned["text/echo@1"]?["message"] as? String)?.contains("signed by the given key") == true,
            "\(resigned)")

        // The envelope as pushed, checked by the in-toto project's own library.
        let echo = try #require(reports["text/echo@1"])
        let repositoryText = try #require(echo["repository"] as? String)
        let image = try Digest(
            parsing: try #require((echo["platforms"] as? [[String: Any]])?.first?["digest"] as? String))
        let name = String(repositoryText.drop { $0 != "/" }.dropFirst())
        let base = "http://\(fixture.registryHost)/v2/\(name)"
        let attestations = try Self.json(try Self.get("\(base)/manifests/sha256-\(image.hex).att"))
        let layer = try #require((attestations["layers"] as? [[String: Any]])?.first)
        #expect(layer["mediaType"] as? String == "application/vnd.dsse.envelope.v1+json")
        let envelopeBytes = try Self.get("\(base)/blobs/\(layer["digest"] as? String ?? "")")
        let envelopePath = keys.path + "/envelope.json"
        try envelopeBytes.write(to: URL(fileURLWithPath: envelopePath))
        let script = """
            import json, sys
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
            from securesystemslib.dsse import Envelope
            from securesystemslib.signer import SSlibKey
            envelope = Envelope.from_dict(json.load(open(sys.argv[1])))
            keyid = next(iter(envelope.signatures))
            key = SSlibKey.from_crypto(load_pem_public_key(open(sys.argv[2], 'rb').read()), keyid=keyid)
            envelope.verify([key], 1)
            print(json.loads(envelope.payload)['predicateType'])
            """
        let verified = try Tools.run(["/usr/bin/python3", "-c", script, envelopePath, verifying])
        #expect(verified.status == 0, "securesystemslib: \(verified.stderr)")
        #expect(verified.stdout.contains("https://slsa.dev/provenance/v1"), "\(verified.stdout)")
        let wrongKey = try Tools.run(["/usr/bin/python3", "-c", script, envelopePath, other])
        #expect(wrongKey.status != 0, "securesystemslib accepted another key")

        // Altered: the statement changed under the same signature.
        var envelope = try CanonicalJSON.decode(DSSEEnvelope.self, from: Array(envelopeBytes), what: "envelope")
        var statement = try CanonicalJSON.decode(
            ProvenanceStatement.self, from: Array(try #require(Data(base64Encoded: envelope.payload))),
            what: "statement")
        statement.predicate.runDetails.builder.id = "kiln-but-altered"
        envelope.payload = Data(try CanonicalJSON.encode(statement)).base64EncodedString()
        let store = try ContentStore(root: keys.path + "/store")
        let client = try RegistryClient()
        defer { Task { await client.shutdown() } }
        let repository = try ImageReference(parsing: repositoryText).repository
        var altered = try store.put(try CanonicalJSON.encode(envelope), mediaType: DSSEEnvelope.mediaType)
        altered.annotations = ["predicateType": "https://slsa.dev/provenance/v1"]
        let config = try store.put(Array("{}".utf8), mediaType: .ociConfig)
        let manifest = try store.put(
            try CanonicalJSON.encode(ImageManifest(config: config, layers: [altered])), mediaType: .ociManifest)
        _ = try await ImagePusher(client: client).push(
            manifest, from: store, to: ImageReference(repository: repository, tag: "sha256-\(image.hex).att"))
        let refused = try fixture.run(["verify", "--ref", "text/echo@1", "--key", verifying], expect: 1)
        #expect(
            (refused["text/echo@1"]?["message"] as? String)?.contains("signed by the given key") == true, "\(refused)")

        // Unsigned: a processor built without a key.
        try fixture.append("code/libs/textkit/normalize.py", "# changed\n")
        _ = try fixture.run(["build", "--push", "--pin", "--ref", "text/echo@1"])
        let unsigned = try fixture.run(["verify", "--ref", "text/echo@1", "--key", verifying], expect: 1)
        #expect(
            (unsigned["text/echo@1"]?["message"] as? String)?.contains("has no signed provenance") == true,
            "\(unsigned)")
    }
}
