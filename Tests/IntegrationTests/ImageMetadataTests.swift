import Foundation
import Testing

/// Labels and annotations the lane adds: GHCR's source link and the ref's title and version by
/// default, kiln.yaml's and the flags' over them, none that changes between runs or commits.
@Suite("Labels and annotations on the lane's images")
struct ImageMetadataTests {
    static func skopeo(_ arguments: [String]) throws -> [String: Any] {
        let result = try Tools.run(["skopeo", "inspect", "--tls-verify=false"] + arguments)
        try #require(result.status == 0, "skopeo inspect: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: result.stdoutBytes) as? [String: Any])
    }

    @Test(
        "source, title and version by default, kiln.yaml's and --label's over them; annotations on manifest and index; the same digests on the next commit"
    )
    func defaultsAndOverrides() throws {
        try Tools.require("skopeo", package: "skopeo")
        let fixture = try LaneFixture("metadata")
        try fixture.append(
            "kiln.yaml",
            "labels:\n  org.opencontainers.image.vendor: Acme\nannotations:\n  org.opencontainers.image.description: Acme processors\n"
        )
        let github = [
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/processors", "GITHUB_SHA": "1111111",
            "GITHUB_RUN_ID": "1",
        ]
        let first = try fixture.run(
            ["build", "--push", "--pin", "--label", "org.opencontainers.image.licenses=MIT"], environment: github)
        let echo = try #require(first["text/echo@1"])
        let repository = try #require(echo["repository"] as? String)
        let platform = try #require((echo["platforms"] as? [[String: Any]])?.first?["digest"] as? String)
        let config = try Self.skopeo(["--config", "docker://\(repository)@\(platform)"])
        let labels = (config["config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
        #expect(labels["org.opencontainers.image.source"] == "https://github.com/acme/processors", "\(labels)")
        #expect(labels["org.opencontainers.image.title"] == "text/echo")
        #expect(labels["org.opencontainers.image.version"] == "1")
        #expect(labels["org.opencontainers.image.vendor"] == "Acme")
        #expect(labels["org.opencontainers.image.licenses"] == "MIT")
        let manifest = try Self.skopeo(["--raw", "docker://\(repository)@\(platform)"])
        #expect(
            (manifest["annotations"] as? [String: String])?["org.opencontainers.image.description"] == "Acme processors"
        )
        let index = try Self.skopeo(["--raw", "docker://\(repository):1"])
        #expect(
            (index["annotations"] as? [String: String])?["org.opencontainers.image.description"] == "Acme processors")

        // The next commit, another run: nothing that changes per run is in an image.
        let pins = try fixture.pins()
        let again = try fixture.run(
            ["build", "--push", "--pin", "--label", "org.opencontainers.image.licenses=MIT"],
            environment: github.merging(["GITHUB_SHA": "2222222", "GITHUB_RUN_ID": "2"]) { _, new in new })
        #expect(again.values.allSatisfy { $0["status"] as? String != "built" }, "\(again)")
        #expect(try fixture.pins() == pins)

        // A changed label rebuilds, and the plan says why.
        let plan = try fixture.run(
            ["plan", "--ref", "text/echo@1", "--label", "org.opencontainers.image.licenses=Apache-2.0"],
            environment: github)
        let reason = (plan["text/echo@1"]?["platforms"] as? [[String: Any]])?.first?["reason"] as? String
        #expect(
            reason
                == "the label or annotation kiln adds changed: label org.opencontainers.image.licenses: 'MIT' → 'Apache-2.0'",
            "\(plan)")
    }

    @Test("a Dockerfile's own LABEL beats a default label, and --label beats the Dockerfile")
    func dockerfileLabelWins() throws {
        let fixture = try LaneFixture("metadata-dockerfile")
        try fixture.append("tools/text/echo/1/Dockerfile", "LABEL org.opencontainers.image.version=9 stage=final\n")
        let reports = try fixture.run(["build", "--push", "--ref", "text/echo@1", "--label", "stage=flag"])
        let echo = try #require(reports["text/echo@1"])
        let repository = try #require(echo["repository"] as? String)
        let platform = try #require((echo["platforms"] as? [[String: Any]])?.first?["digest"] as? String)
        let config = try Self.skopeo(["--config", "docker://\(repository)@\(platform)"])
        let labels = (config["config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
        #expect(labels["org.opencontainers.image.version"] == "9", "\(labels)")
        #expect(labels["stage"] == "flag")
        #expect(labels["org.opencontainers.image.title"] == "text/echo")
        #expect(labels["org.opencontainers.image.source"] == nil, "no kiln.yaml source and no GitHub variables")
    }
}
