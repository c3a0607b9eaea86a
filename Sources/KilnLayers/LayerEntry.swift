import CArchive

/// One file-system object to put in a layer.
///
/// The entry says what the image will contain, not where it came from on disk: a regular file's
/// bytes come from a file or from memory, and only the fields here reach the tar stream. Times are
/// not part of an entry; the writer stamps every entry with one fixed epoch.
package struct LayerEntry: Sendable, Hashable {
    /// What kind of object, with what it needs.
    package enum Content: Sendable, Hashable {
        case directory
        case regularFile(FileSource)
        /// A symbolic link; the target is stored as written (absolute targets are fine).
        case symlink(target: String)
        /// A hard link to a regular file entry of the same layer.
        case hardLink(target: LayerPath)
        /// A FIFO or device node (what a `RUN` step made with `mkfifo` or `mknod`).
        case special(SpecialFile)
    }

    /// A FIFO or a device node, with its device numbers.
    package struct SpecialFile: Sendable, Hashable {
        package enum Kind: Sendable, Hashable {
            case fifo
            case characterDevice
            case blockDevice
        }
        package var kind: Kind
        package var major: UInt32
        package var minor: UInt32

        package init(kind: Kind, major: UInt32 = 0, minor: UInt32 = 0) {
            self.kind = kind
            self.major = major
            self.minor = minor
        }

        /// A device node with the device number `device` (`st_rdev`).
        package init(kind: Kind, device: UInt64) {
            self.init(kind: kind, major: kiln_major(dev_t(device)), minor: kiln_minor(dev_t(device)))
        }
    }

    /// Where a regular file's bytes come from.
    package enum FileSource: Sendable, Hashable {
        /// Read from this path on disk when the layer is written.
        case file(path: String)
        /// These bytes.
        case bytes([UInt8])
    }

    package var path: LayerPath
    package var content: Content
    /// Permission bits, including set-user-ID, set-group-ID and sticky (`0o7777` at most).
    package var mode: UInt32
    package var uid: Int
    package var gid: Int
    /// Extended attributes, written only when given.
    package var xattrs: [String: [UInt8]]

    package init(
        path: LayerPath, content: Content, mode: UInt32? = nil, uid: Int = 0, gid: Int = 0,
        xattrs: [String: [UInt8]] = [:]
    ) {
        self.path = path
        self.content = content
        self.mode = (mode ?? Self.defaultMode(for: content)) & 0o7777
        self.uid = uid
        self.gid = gid
        self.xattrs = xattrs
    }

    /// `0755` for directories, `0777` for symlinks, `0644` otherwise.
    package static func defaultMode(for content: Content) -> UInt32 {
        switch content {
        case .directory: 0o755
        case .symlink: 0o777
        case .regularFile, .hardLink, .special: 0o644
        }
    }

    /// A directory entry with Docker's defaults for created parents (`0755`, `0:0`).
    package static func directory(_ path: LayerPath, mode: UInt32 = 0o755, uid: Int = 0, gid: Int = 0) -> LayerEntry {
        LayerEntry(path: path, content: .directory, mode: mode, uid: uid, gid: gid)
    }

    /// A regular file entry.
    package static func file(_ path: LayerPath, _ source: FileSource, mode: UInt32 = 0o644, uid: Int = 0, gid: Int = 0)
        -> LayerEntry
    {
        LayerEntry(path: path, content: .regularFile(source), mode: mode, uid: uid, gid: gid)
    }
}
