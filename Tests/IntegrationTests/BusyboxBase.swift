import Foundation
import Testing

/// A real two-platform base image for Dockerfile builds: Debian's busybox-static for amd64 and
/// arm64 with an /etc/passwd and /etc/group, built by `kiln build` from scratch and pushed to a
/// loopback registry the test started. Tests build on it with kiln and with buildah.
struct BusyboxBase {
    let registry: RegistryServer
    let reference: String

    /// Where the fixture root file systems are kept between runs (the repository's cache/).
    static let fixtures = Tools.packageRoot + "/cache/fixtures/busybox"

    init(registry: RegistryServer, scratch: Scratch) throws {
        try Tools.require("dpkg-deb", package: "dpkg")
        try Tools.require("apt-get", package: "apt")
        let made = try Tools.run(["bash", Tools.packageRoot + "/Tests/Fixtures/busybox-rootfs.sh", Self.fixtures])
        guard made.status == 0 else { throw Tools.MissingTool(description: "busybox fixture: \(made.stderr)") }
        self.registry = registry
        reference = "\(registry.host)/fixtures/busybox:1"
        let dockerfile = scratch.path + "/base.Dockerfile"
        try "FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\nCMD [\"sh\"]\n".write(
            toFile: dockerfile, atomically: true, encoding: .utf8)
        let built = try Tools.kiln([
            "build", "-f", dockerfile, "--platform", "linux/amd64,linux/arm64", "-t", reference, Self.fixtures,
        ])
        guard built.status == 0 else {
            throw Tools.MissingTool(description: "could not push the busybox base: \(built.stderr)")
        }
    }
}

/// buildah with its own vfs storage in a scratch directory (`--isolation chroot`, as root).
struct Buildah {
    let root: String

    init(scratch: Scratch) throws {
        try Tools.require("buildah", package: "buildah")
        root = try scratch.sub("buildah")
    }

    func run(_ arguments: [String]) throws -> Tools.Result {
        try Tools.run(
            ["buildah", "--storage-driver", "vfs", "--root", root + "/storage", "--runroot", root + "/run"] + arguments)
    }

    /// `buildah bud` of a Dockerfile, pushed to an OCI layout as `layout:tag`.
    func build(dockerfile: String, context: String, layout: String, tag: String) throws {
        let image = "localhost/kiln-diff:\(tag)"
        let built = try run([
            "bud", "--isolation", "chroot", "--tls-verify=false", "-f", dockerfile, "-t", image, context,
        ])
        try #require(built.status == 0, "buildah bud failed: \(built.stderr)")
        let pushed = try run(["push", image, "oci:\(layout):\(tag)"])
        try #require(pushed.status == 0, "buildah push failed: \(pushed.stderr)")
    }
}

/// What two unpacked root file systems are made of, as text that diffs well: every path's type,
/// mode, owner and link target (mtimes aside), and every regular file's SHA-256.
enum RootfsListing {
    /// Takes out of buildah's unpacked `rootfs` the empty files and directories its runtime made
    /// to mount over, where kiln's `reference` tree has none: buildah keeps them in a RUN layer,
    /// BuildKit and kiln do not (docs/dockerfile.md, "What RUN leaves").
    static func removeRuntimeStubs(_ rootfs: String, absentFrom reference: String) {
        let manager = FileManager.default
        for stub in [
            "etc/hosts", "etc/hostname", "etc/resolv.conf", "run/.containerenv", "run/secrets", "dev", "proc", "sys",
            "run",
        ] where (try? manager.attributesOfItem(atPath: reference + "/" + stub)) == nil {
            let path = rootfs + "/" + stub
            guard let attributes = try? manager.attributesOfItem(atPath: path) else { continue }
            let type = attributes[.type] as? FileAttributeType
            if type == .typeRegular, (attributes[.size] as? Int) == 0 {
                try? manager.removeItem(atPath: path)
            } else if type == .typeDirectory, (try? manager.contentsOfDirectory(atPath: path))?.isEmpty == true {
                try? manager.removeItem(atPath: path)
            }
        }
    }

    static func of(_ rootfs: String) throws -> String {
        let listing = try Tools.shell("cd '\(rootfs)' && find . -printf '%y %m %U:%G %p %l\\n' | LC_ALL=C sort -k4")
        let sums = try Tools.shell("cd '\(rootfs)' && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2")
        return listing.stdout + sums.stdout
    }

    /// The config fields a Dockerfile sets, from an OCI layout entry.
    static func config(_ layout: String, tag: String) throws -> [String: String] {
        let raw = try Tools.run(["skopeo", "inspect", "--config", "oci:\(layout):\(tag)"])
        try #require(raw.status == 0, "\(raw.stderr)")
        let object = try JSONSerialization.jsonObject(with: raw.stdoutBytes) as? [String: Any]
        var config = object?["config"] as? [String: Any] ?? [:]
        if var labels = config["Labels"] as? [String: String] {
            labels["io.buildah.version"] = nil  // buildah stamps its version; not part of the Dockerfile
            config["Labels"] = labels.isEmpty ? nil : labels
        }
        // Docker and BuildKit replace a redefined variable in place; buildah moves it to the end.
        // The order carries no meaning, so compare the set.
        if let env = config["Env"] as? [String] { config["Env"] = env.sorted() }
        var result = [String: String]()
        for key in [
            "Env", "Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "StopSignal",
        ] {
            guard let value = config[key], !(value is NSNull) else { continue }
            if let text = value as? String, text.isEmpty { continue }
            // BuildKit's (and kiln's) `FROM scratch` works in `/`, buildah's in none: the same.
            if key == "WorkingDir", let text = value as? String, text == "/" { continue }
            let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
            result[key] = String(decoding: data, as: UTF8.self)
        }
        return result
    }
}
