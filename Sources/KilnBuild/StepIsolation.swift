import Foundation
import KilnCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a `RUN` step is kept apart from the machine that builds it.
///
/// - `oci`: buildah's `--isolation oci` with runc. The step runs in its own mount, PID, IPC and
///   UTS namespaces on a pivoted root (the old root unmounted), with BuildKit's default capability
///   set but `NET_RAW`: a `chroot` without `chdir` lands in the step's own root, `/proc` lists only the step's
///   processes, and no path leads to the store, the repository or the runner's files. The
///   network stays the host's (as with chroot isolation, and BuildKit's default): a step can
///   download, and can reach what the machine's network reaches.
/// - `chroot`: buildah's `--isolation chroot`. The step shares the host's mount namespace behind
///   a `chroot` and keeps `CAP_SYS_CHROOT`: code in a step can leave the root and write any file
///   on the machine as root. Only where runc is missing, or by choice.
package enum StepIsolation: Sendable, Equatable, CustomStringConvertible {
    case oci(runtime: String)
    case chroot

    /// What `--isolation` and kiln.yaml `isolation:` accept.
    package enum Choice: String, Sendable, CaseIterable {
        case oci, chroot
    }

    package var description: String {
        switch self {
        case .oci: "oci"
        case .chroot: "chroot"
        }
    }

    /// buildah's flags for a step (`run` or `build`).
    var buildahArguments: [String] {
        switch self {
        case .oci(let runtime):
            // BuildKit's default set is buildah's plus MKNOD, AUDIT_WRITE and NET_RAW; NET_RAW
            // is left out, as the step shares the host's network (it could read the machine's
            // traffic). A device node a step makes stays unusable: runc's device rules deny it.
            [
                "--isolation", "oci", "--runtime", runtime, "--network", "host", "--cap-add", "CAP_MKNOD", "--cap-add",
                "CAP_AUDIT_WRITE",
            ]
        case .chroot: ["--isolation", "chroot"]
        }
    }

    /// The isolation for `choice` on this machine (nil: the best there is), and the warning to
    /// print once when kiln falls back to chroot isolation by itself.
    /// - Throws: `BuildError` when `oci` is asked for and this machine cannot give it.
    package static func resolve(_ choice: Choice?, path: String? = ProcessInfo.processInfo.environment["PATH"])
        throws(BuildError) -> (isolation: StepIsolation, warning: String?)
    {
        let runc = ChildProcess.find("runc", path: path)
        let root = geteuid() == 0
        switch choice {
        case .chroot:
            return (.chroot, nil)
        case .oci:
            guard let runc else {
                throw .input(
                    "--isolation oci runs each RUN step with runc, which is not installed (apt-get install runc)",
                    location: nil)
            }
            guard root else {
                throw .input(
                    "--isolation oci needs root (run kiln with sudo), as buildah's runc containers do here",
                    location: nil)
            }
            return (.oci(runtime: runc), nil)
        case nil:
            if let runc, root { return (.oci(runtime: runc), nil) }
            let why = runc == nil ? "runc is not installed (apt-get install runc)" : "kiln is not running as root"
            return (
                .chroot,
                "RUN steps run with buildah's chroot isolation because \(why): code in a step can leave its "
                    + "root and write any file on this machine; pass --isolation chroot to accept this, or "
                    + "--isolation oci to refuse it"
            )
        }
    }

    /// The environment buildah (and strace) get: what buildah and its runtime need to find their
    /// tools and storage, and the proxy settings buildah passes on to steps. Nothing else of
    /// kiln's environment (registry credentials, the CI's tokens) reaches buildah, so none can
    /// reach a step.
    package static func toolEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [String]
    {
        let kept: Set<String> = [
            "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "XDG_RUNTIME_DIR", "HTTP_PROXY", "HTTPS_PROXY",
            "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "FTP_PROXY", "ftp_proxy",
        ]
        let prefixes = ["BUILDAH_", "CONTAINERS_", "STORAGE_"]
        return environment.filter { name, _ in kept.contains(name) || prefixes.contains { name.hasPrefix($0) } }
            .map { "\($0.key)=\($0.value)" }.sorted()
    }
}
