import Foundation
import KilnBuild
import Testing

@Suite("How RUN steps are isolated: the choice, buildah's environment, runc's refusals")
struct StepIsolationTests {
    @Test("without runc on PATH: the default falls back to chroot and names the risk; oci is refused; chroot is taken")
    func resolveWithoutRunc() throws {
        let empty = FileManager.default.temporaryDirectory.path + "/kiln-no-runc-\(getpid())"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let fallback = try StepIsolation.resolve(nil, path: empty)
        #expect(fallback.isolation == .chroot)
        #expect(fallback.warning?.contains("apt-get install runc") == true)
        #expect(fallback.warning?.contains("write any file on this machine") == true)
        #expect(throws: BuildError.self) { try StepIsolation.resolve(.oci, path: empty) }
        let chosen = try StepIsolation.resolve(.chroot, path: empty)
        #expect(chosen.isolation == .chroot && chosen.warning == nil)
    }

    @Test("buildah gets the tool paths, its own settings and proxies; no credential or CI token")
    func toolEnvironment() {
        let kept = StepIsolation.toolEnvironment([
            "PATH": "/usr/bin", "HOME": "/root", "BUILDAH_LAYERS": "false", "CONTAINERS_CONF": "/c",
            "https_proxy": "http://proxy:3128", "GITHUB_TOKEN": "t", "KILN_REGISTRY_PASSWORD": "p",
            "AWS_SECRET_ACCESS_KEY": "s", "ACTIONS_RUNTIME_TOKEN": "r", "SSH_AUTH_SOCK": "/tmp/agent",
        ])
        #expect(
            kept == [
                "BUILDAH_LAYERS=false", "CONTAINERS_CONF=/c", "HOME=/root", "PATH=/usr/bin",
                "https_proxy=http://proxy:3128",
            ])
    }

    @Test("runc refusing to make the container is told apart from a step whose command is missing")
    func containerRefusals() {
        let cgroups =
            "error running container: from /usr/sbin/runc creating container for [/bin/sh -c x]: time=\"2026-12-07T23:31:33Z\" level=error msg=\"runc create failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/x: read-only file system\""
        #expect(
            BuildahExecutor.containerRefusal("Error: boom\n" + cgroups)
                == "runc create failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/x: read-only file system"
        )
        let missing =
            "error running container: from /usr/bin/runc creating container for [/bin/true]: time=\"x\" level=error msg=\"runc create failed: unable to start container process: exec: \\\"/bin/true\\\": stat /bin/true: no such file or directory\""
        #expect(BuildahExecutor.containerRefusal(missing) == nil)
        #expect(BuildahExecutor.containerRefusal("exit status 1") == nil)
    }
}
