import Foundation
import Testing

@Suite("TLS and htpasswd against a real registry", .serialized)
struct RegistryTLSTests {
    static let user = "kiln-ci"
    static let password = "correct horse battery staple"

    @Test(
        "push over TLS with --ca-file and config.json credentials; clear errors without the CA or with a wrong password"
    )
    func tlsAndHtpasswd() throws {
        let (scratch, tree) = try Scratch.withSampleTree("tls")
        let certificate = try TestSecrets.selfSignedCertificate(in: scratch.path)
        let htpasswd = try TestSecrets.htpasswd(in: scratch.path, user: Self.user, password: Self.password)
        let registry = try RegistryServer(.init(tls: (certificate.certificate, certificate.key), htpasswd: htpasswd))
        let layout = try RegistryPushTests.builtImage(scratch, tree: tree)
        let good = try TestSecrets.dockerConfig(
            in: scratch.path, host: registry.host, user: Self.user, password: Self.password)
        let bad = try TestSecrets.dockerConfig(
            in: scratch.path, host: registry.host, user: Self.user, password: "wrong", label: "bad")
        let target = "\(registry.host)/acme/secure:v1"

        let noCA = try Tools.kiln(["push", "\(layout):v1", target], environment: ["DOCKER_CONFIG": good])
        #expect(noCA.status == 5)
        #expect(
            noCA.stderr.contains("TLS with \(registry.host) failed") && noCA.stderr.contains("--ca-file"),
            "\(noCA.stderr)")

        let wrong = try Tools.kiln(
            ["push", "\(layout):v1", target, "--ca-file", certificate.certificate],
            environment: ["DOCKER_CONFIG": bad])
        #expect(wrong.status == 5)
        #expect(wrong.stderr.contains("401") && wrong.stderr.contains("check the credentials"), "\(wrong.stderr)")
        #expect(!wrong.stderr.contains("wrong") && !wrong.stderr.contains(Self.password), "no secret in the error")

        // Nothing was tagged by the failed attempts.
        let probe = try Tools.run([
            "skopeo", "inspect", "--raw", "--cert-dir", scratch.path + "/certs-none", "--tls-verify=false",
            "--creds", "\(Self.user):\(Self.password)", "docker://\(target)",
        ])
        #expect(probe.status != 0 && probe.stderr.contains("manifest unknown"), "\(probe.stderr)")

        let push = try Tools.kiln(
            ["push", "\(layout):v1", target, "--ca-file", certificate.certificate, "--json"],
            environment: ["DOCKER_CONFIG": good])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(!push.stdout.contains(Self.password) && !push.stderr.contains(Self.password))
        let digest = try #require(
            (try? JSONSerialization.jsonObject(with: push.stdoutBytes) as? [String: Any])?["digest"] as? String)
        let peer = try Tools.shell(
            "skopeo inspect --raw --tls-verify=false --creds '\(Self.user):\(Self.password)' docker://\(target) | sha256sum | cut -d' ' -f1"
        )
        #expect("sha256:" + peer.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == digest)

        let badCA = try Tools.kiln(["resolve", target, "--ca-file", scratch.path + "/missing.pem"])
        #expect(
            badCA.status == 2
                && Tools.oneLine(badCA).contains("cannot load CA certificates from '\(scratch.path)/missing.pem'"))

        // Named with --insecure-registry, the host is trusted without its CA (Docker's semantics).
        let insecure = try Tools.kiln(
            ["resolve", target, "--insecure-registry", registry.host], environment: ["DOCKER_CONFIG": good])
        #expect(insecure.status == 0 && insecure.stdout.contains(digest), "\(insecure.stderr)")

        // The same credentials through a docker-credential helper, and through --password-stdin.
        let helperDirectory = try scratch.sub("helper")
        let helper = helperDirectory + "/docker-credential-kilntest"
        try """
        #!/bin/sh
        read server
        [ "$1" = get ] && [ "$server" = "\(registry.host)" ] || exit 1
        printf '{"ServerURL":"%s","Username":"\(Self.user)","Secret":"\(Self.password)"}' "$server"
        """.write(toFile: helper, atomically: true, encoding: .utf8)
        chmod(helper, 0o755)
        let helperConfig = try scratch.sub("helper-config")
        try #"{"credHelpers":{"\#(registry.host)":"kilntest"}}"#.write(
            toFile: helperConfig + "/config.json", atomically: true, encoding: .utf8)
        let viaHelper = try Tools.kiln(
            ["resolve", target, "--ca-file", certificate.certificate],
            environment: [
                "DOCKER_CONFIG": helperConfig,
                "PATH": helperDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            ])
        #expect(viaHelper.status == 0 && viaHelper.stdout.contains(digest), "\(viaHelper.stderr)")
        let viaStdin = try Tools.run(
            [
                Tools.kiln, "resolve", target, "--ca-file", certificate.certificate, "--username", Self.user,
                "--password-stdin",
            ],
            environment: ["DOCKER_CONFIG": scratch.path + "/none"], stdin: Data((Self.password + "\n").utf8))
        #expect(viaStdin.status == 0 && viaStdin.stdout.contains(digest), "\(viaStdin.stderr)")
    }
}
