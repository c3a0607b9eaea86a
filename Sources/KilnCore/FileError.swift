#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call on a named path, with the operating system's own explanation.
public struct FileError: KilnError, Equatable {
    /// What kiln was doing: "open", "read", "write", "rename", …
    public var operation: String
    /// The path involved.
    public var path: String
    /// The `errno` value.
    public var code: Int32

    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String {
        let reason = String(cString: strerror(code))
        return "cannot \(operation) '\(path)': \(reason)"
    }

    public var category: ErrorCategory { .io }
}
