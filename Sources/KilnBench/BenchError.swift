import KilnCore

package enum BenchError: KilnError {
    /// The lane failed as a whole in a scenario (not one processor: the run).
    case laneFailed(scenario: String, status: Int32, output: String)
    case cannotEdit(String)
    case noRegistry
    case registryDidNotStart(String)
    case peerFailed(tool: String, ref: String, output: String)
    case nothingToMeasure(String)
    case missingTool(String, package: String)

    package var description: String {
        switch self {
        case .laneFailed(let scenario, let status, let output):
            "the lane failed in the \(scenario) scenario (exit \(status)):\n\(output)"
        case .cannotEdit(let path): "cannot edit \(path) in the scratch copy"
        case .noRegistry:
            "kiln bench needs a registry: install docker-registry (apt-get install docker-registry) for a throwaway one on 127.0.0.1, or give --registry HOST"
        case .registryDidNotStart(let log): "the throwaway docker-registry did not start:\n\(log)"
        case .peerFailed(let tool, let ref, let output): "\(tool) failed on \(ref):\n\(output)"
        case .nothingToMeasure(let why): "nothing to measure: \(why)"
        case .missingTool(let tool, let package): "--peer \(tool) needs \(tool) (apt-get install \(package))"
        }
    }

    package var category: ErrorCategory {
        switch self {
        case .laneFailed, .peerFailed: .internal
        case .cannotEdit, .registryDidNotStart: .io
        case .noRegistry, .missingTool, .nothingToMeasure: .input
        }
    }
}
