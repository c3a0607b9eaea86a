import KilnCore
import KilnOCI

/// Whether `RUN` can execute for a platform on this machine: natively, or through QEMU user
/// emulation registered with binfmt_misc. Checked before any work, so a lane never half-builds
/// a platform it cannot run.
package enum Emulation {
    /// Where binfmt_misc entries live; `KILN_BINFMT_DIR` points elsewhere (tests).
    package static func directory(environment: [String: String]) -> String {
        environment["KILN_BINFMT_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/proc/sys/fs/binfmt_misc"
    }

    /// The kernel's name for an architecture, as QEMU's binfmt entries use it.
    static func qemuName(_ architecture: String) -> String {
        switch architecture {
        case "amd64": "x86_64"
        case "arm64": "aarch64"
        case "386": "i386"
        case "ppc64le": "ppc64le"
        default: architecture
        }
    }

    /// Throws unless `platform` runs natively on `host` or has an enabled QEMU entry.
    package static func check(_ platform: Platform, host: Platform, directory: String, location: SourceLocation?)
        throws(BuildError)
    {
        guard platform.architecture != host.architecture else { return }
        let name = "qemu-" + qemuName(platform.architecture)
        let entry = FilePaths.join(directory, name)
        if let bytes = try? ReadableFile.readAll(path: entry, limit: 64 << 10),
            String(decoding: bytes, as: UTF8.self).hasPrefix("enabled")
        {
            return
        }
        throw .input(
            "RUN for \(platform) needs QEMU user emulation on this \(host.architecture) machine, and binfmt_misc has no enabled \(name) entry (\(entry)). "
                + "Either register it (apt-get install qemu-user-static, mount binfmt_misc, and write the \(name) entry to \(FilePaths.join(directory, "register"))), "
                + "or build \(platform) on a native runner: kiln build --push --platforms \(platform) on a \(platform.architecture) machine, then kiln assemble --pin anywhere",
            location: location)
    }
}
