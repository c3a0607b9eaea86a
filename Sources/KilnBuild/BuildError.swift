import KilnCore

/// Why a build stopped: what went wrong (`problem`, decided on by callers), and the Dockerfile
/// line it comes from. The words a user reads are all in `description`.
package struct BuildError: KilnError {
    package enum Problem: Sendable {
        /// The Dockerfile or the context asks for something that cannot be done as written.
        case invalid(String)
        /// A `COPY`/`ADD` source that is not in the build context (a pattern: that nothing
        /// matches).
        case missingSource(String, isPattern: Bool)
        /// A stage needs `RUN` and the build has no executor for it.
        case runNeedsExecutor(stage: String)
        /// A `RUN` step failed: buildah's exit, and the end of its output.
        case runFailed(exit: String, output: String)
        /// buildah itself misbehaved (it could not load or export an image).
        case executor(String)
        /// A file could not be read or written.
        case file(FileError)
        /// A base image could not be pulled from its origin, nor from any mirror.
        case basePull(reference: String, origin: any KilnError, mirrors: [String])
        /// Another part of kiln failed (the registry, the store, the layer writer), as it said.
        case underlying(any KilnError)
    }

    package var problem: Problem
    package var location: SourceLocation?
    /// A sentence appended to the description (which setting to change, say).
    package var hint: String?

    package init(_ problem: Problem, location: SourceLocation? = nil) {
        self.problem = problem
        self.location = location
    }

    package static func input(_ message: String, location: SourceLocation?) -> BuildError {
        BuildError(.invalid(message), location: location)
    }

    package static func io(_ error: FileError) -> BuildError { BuildError(.file(error)) }

    /// Another error, placed at a Dockerfile line when one is known; kiln's own errors are kept
    /// whole, so their category and cases survive.
    package static func wrapping(_ error: any Error, at location: SourceLocation?) -> BuildError {
        if var error = error as? BuildError {
            if error.location == nil { error.location = location }
            return error
        }
        if let error = error as? FileError { return BuildError(.file(error), location: location) }
        if let error = error as? any KilnError { return BuildError(.underlying(error), location: location) }
        return BuildError(.executor("\(error)"), location: location)
    }

    /// The source a `COPY` missed, for callers that look for it elsewhere.
    package var missingSource: String? {
        if case .missingSource(let source, _) = problem { source } else { nil }
    }

    package var message: String {
        var text: String
        switch problem {
        case .invalid(let message): text = message
        case .missingSource(let source, let isPattern):
            text =
                isPattern
                ? "no file in the build context matches '\(source)'" : "'\(source)' is not in the build context"
        case .runNeedsExecutor(let stage):
            text =
                "RUN needs a container runtime, which kiln's native builder does not have; this Dockerfile cannot be built until RUN steps go to an executor (stage \(stage))"
        case .runFailed(let exit, let output): text = "RUN failed (\(exit)); last output:\n\(output)"
        case .executor(let message): text = message
        case .file(let error): text = error.description
        case .basePull(let reference, let origin, let mirrors):
            text =
                mirrors.isEmpty
                ? origin.description
                : "\(origin); the mirrors of \(reference) failed too: \(mirrors.joined(separator: "; "))"
        case .underlying(let error): text = error.description
        }
        if let hint { text += hint }
        return text
    }

    package var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }

    /// The Dockerfile line, else where a wrapped error places itself.
    package var sourceLocation: SourceLocation? {
        if let location { return location }
        switch problem {
        case .underlying(let error), .basePull(_, let error, _): return error.sourceLocation
        default: return nil
        }
    }

    package var category: ErrorCategory {
        switch problem {
        case .invalid, .missingSource, .runNeedsExecutor, .runFailed: .input
        case .executor: .internal
        case .file: .io
        case .basePull(_, let origin, _): origin.category
        case .underlying(let error): error.category
        }
    }
}
