#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The type bits of a `stat` mode, named for messages.
package enum FileKind: Sendable, Equatable {
    case regular, directory, symlink, fifo, socket, characterDevice, blockDevice, unknown

    package init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .unknown
        }
    }

    /// "regular file", "FIFO", "socket", …
    package var name: String {
        switch self {
        case .regular: "regular file"
        case .directory: "directory"
        case .symlink: "symbolic link"
        case .fifo: "FIFO (named pipe)"
        case .socket: "socket"
        case .characterDevice: "character device"
        case .blockDevice: "block device"
        case .unknown: "file of unknown type"
        }
    }
}

extension FileKind {
    /// The kind a directory entry's `d_type` records; nil for `DT_UNKNOWN` (file systems that
    /// leave it to `lstat`).
    package init?(directoryType: UInt8) {
        switch Int32(directoryType) {
        case Int32(DT_REG): self = .regular
        case Int32(DT_DIR): self = .directory
        case Int32(DT_LNK): self = .symlink
        case Int32(DT_FIFO): self = .fifo
        case Int32(DT_SOCK): self = .socket
        case Int32(DT_CHR): self = .characterDevice
        case Int32(DT_BLK): self = .blockDevice
        default: return nil
        }
    }

    /// The kind of what `path` names, following symlinks; nil when nothing is there.
    package static func of(path: String) -> FileKind? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileKind(mode: info.st_mode)
    }
}
