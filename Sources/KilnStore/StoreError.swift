import KilnCore

/// Why the store could not do what was asked.
package enum StoreError: KilnError, Equatable {
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

    package var description: String {
        switch self {
        case .unusable(let root, let error): "the store at '\(root)' cannot be used: \(error)"
        case .unreadable(_, let error): error.description
        case .missingBlob(let digest): "blob \(digest) is not in the store"
        case .corruptBlob(let digest, let actual, let path):
            "blob \(digest) at '\(path)' was corrupt (its bytes hash to \(actual)); it has been removed"
        case .digestMismatch(let expected, let actual): "content hashes to \(actual), but \(expected) was expected"
        case .invalidKeyKind(let kind): "'\(kind)' is not a valid record kind (use lower-case letters, digits and '-')"
        case .invalidRecord(let path, let reason): "the cache record '\(path)' is unreadable: \(reason)"
        case .layout(let path, let reason): "OCI layout '\(path)': \(reason)"
        case .layoutFile(let path, let error): "OCI layout '\(path)': \(error)"
        case .layoutCorrupt(let path, let digest, let actual):
            "OCI layout '\(path)': blob \(digest) is corrupt (its bytes hash to \(actual))"
        }
    }

    package var category: ErrorCategory {
        switch self {
        case .unusable, .unreadable, .layoutFile: .io
        case .corruptBlob, .digestMismatch, .layoutCorrupt: .integrity
        case .missingBlob, .invalidKeyKind, .invalidRecord, .layout: .input
        }
    }
}
