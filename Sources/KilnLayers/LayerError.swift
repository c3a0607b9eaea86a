import KilnCore

/// Why a layer could not be made. Each message names the path at fault.
public enum LayerError: KilnError, Equatable {
    case invalidPath(String, reason: String)
    case specialFile(path: String, kind: String)
    case unreadable(path: String, FileError)
    case changedWhileReading(path: String)
    case nonUTF8Name(inDirectory: String)
    case duplicatePath(LayerPath)
    case notADirectory(LayerPath, child: LayerPath)
    case hardLinkTarget(link: LayerPath, target: LayerPath)
    case archive(String, path: LayerPath?)
    case compression(String)
    case output(FileError)

    public var description: String {
        switch self {
        case let .invalidPath(path, reason): "invalid layer path '\(path)': \(reason)"
        case let .specialFile(path, kind):
            "'\(path)' is a \(kind); layers hold only regular files, directories, symlinks and hard links"
        case let .unreadable(_, error): error.description
        case let .changedWhileReading(path): "'\(path)' changed size while it was being read; retry when it is stable"
        case let .nonUTF8Name(directory): "'\(directory)' holds a file name that is not valid UTF-8"
        case let .duplicatePath(path): "'\(path)' is given twice in one layer"
        case let .notADirectory(path, child): "'\(path)' is not a directory, but '\(child)' is placed inside it"
        case let .hardLinkTarget(link, target):
            "hard link '\(link)' points to '\(target)', which is not a regular file in the same layer"
        case let .archive(message, path):
            if let path { "cannot write '\(path)' to the tar stream: \(message)" } else { "tar stream failed: \(message)" }
        case let .compression(message): "gzip compression failed: \(message)"
        case let .output(error): error.description
        }
    }

    public var category: ErrorCategory {
        switch self {
        case .unreadable, .output, .changedWhileReading: .io
        case .archive, .compression: .internal
        default: .input
        }
    }
}
