import KilnCore

/// Why a layer could not be made. Each message names the path at fault.
package enum LayerError: KilnError, Equatable {
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
    /// A layer member could not be written onto a root directory (`LayerApplier`).
    case unpack(member: String, FileError)

    package var description: String {
        switch self {
        case .invalidPath(let path, let reason): "invalid layer path '\(path)': \(reason)"
        case .specialFile(let path, let kind):
            "'\(path)' is a \(kind); layers hold only regular files, directories, symlinks and hard links"
        case .unreadable(_, let error): error.description
        case .changedWhileReading(let path): "'\(path)' changed size while it was being read; retry when it is stable"
        case .nonUTF8Name(let directory): "'\(directory)' holds a file name that is not valid UTF-8"
        case .duplicatePath(let path): "'\(path)' is given twice in one layer"
        case .notADirectory(let path, let child): "'\(path)' is not a directory, but '\(child)' is placed inside it"
        case .hardLinkTarget(let link, let target):
            "hard link '\(link)' points to '\(target)', which is not a regular file in the same layer"
        case .archive(let message, let path):
            if let path {
                "cannot write '\(path)' to the tar stream: \(message)"
            } else {
                "tar stream failed: \(message)"
            }
        case .compression(let message): "gzip compression failed: \(message)"
        case .output(let error): error.description
        case .unpack(let member, let error): "cannot unpack the layer member '\(member)': \(error)"
        }
    }

    package var category: ErrorCategory {
        switch self {
        case .unreadable, .output, .changedWhileReading, .unpack: .io
        case .archive, .compression: .internal
        default: .input
        }
    }
}

extension LayerError {
    /// Runs `body`, which reads the file at `path`, with what it throws as a `LayerError`: a
    /// `FileError` is the file's being unreadable, anything else a broken archive.
    static func reading<T>(_ path: String, _ body: () throws -> T) throws(LayerError) -> T {
        do {
            return try body()
        } catch let error as LayerError {
            throw error
        } catch let error as FileError {
            throw .unreadable(path: path, error)
        } catch {
            throw .archive("\(error)", path: nil)
        }
    }
}
