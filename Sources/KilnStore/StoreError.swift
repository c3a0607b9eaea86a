import KilnCore

/// Why the store could not do what was asked.
public enum StoreError: KilnError, Equatable {
    case unusable(root: String, FileError)
    case unreadable(path: String, FileError)
    case missingBlob(Digest)
    case corruptBlob(Digest, actual: Digest, path: String)
    case digestMismatch(expected: Digest, actual: Digest)
    case invalidKeyKind(String)
    case invalidRecord(path: String, reason: String)
    case layout(path: String, reason: String)
    /// Writing or reading a layout's files failed (a full disk, permissions).
    case layoutFile(path: String, FileError)
    /// A layout blob's bytes do not match its name.
    case layoutCorrupt(path: String, digest: Digest, actual: Digest)

    public var description: String {
        switch self {
        case let .unusable(root, error): "the store at '\(root)' cannot be used: \(error)"
        case let .unreadable(_, error): error.description
        case let .missingBlob(digest): "blob \(digest) is not in the store"
        case let .corruptBlob(digest, actual, path):
            "blob \(digest) at '\(path)' was corrupt (its bytes hash to \(actual)); it has been removed"
        case let .digestMismatch(expected, actual): "content hashes to \(actual), but \(expected) was expected"
        case let .invalidKeyKind(kind): "'\(kind)' is not a valid record kind (use lower-case letters, digits and '-')"
        case let .invalidRecord(path, reason): "the cache record '\(path)' is unreadable: \(reason)"
        case let .layout(path, reason): "OCI layout '\(path)': \(reason)"
        case let .layoutFile(path, error): "OCI layout '\(path)': \(error)"
        case let .layoutCorrupt(path, digest, actual): "OCI layout '\(path)': blob \(digest) is corrupt (its bytes hash to \(actual))"
        }
    }

    public var category: ErrorCategory {
        switch self {
        case .unusable, .unreadable, .layoutFile: .io
        case .corruptBlob, .digestMismatch, .layoutCorrupt: .integrity
        case .missingBlob, .invalidKeyKind, .invalidRecord, .layout: .input
        }
    }
}
