import KilnCore
import KilnProcessors
import KilnRegistry
import Synchronization

/// A failure every processor of the run would meet the same way: the lane's registry does not
/// resolve, refuses connections, fails TLS or the credentials, or the credentials cannot be
/// read. The first processor to meet it says so in full; every processor not yet started stops
/// at once with one line naming it, instead of retrying the same requests for seconds each
/// (600 processors would spend the lane's budget on it).
final class LaneStop: Sendable {
    private let state = Mutex<(hosts: Set<String>, reason: String?)>(([], nil))

    /// The registries the lane pushes to and looks keys up in.
    func watch(_ hosts: Set<String>) {
        state.withLock { $0.hosts = hosts }
    }

    /// Why the processors not yet started stop (nil: they go on).
    var reason: String? { state.withLock { $0.reason } }

    /// Records `error` of processor `ref` when it is one every processor would meet.
    func note(_ error: any Error, ref: ProcessorRef) {
        state.withLock { state in
            guard state.reason == nil, let host = Self.stoppingHost(error), host.isEmpty || state.hosts.contains(host)
            else { return }
            state.reason = "\(ref) found that \(error)"
        }
    }

    /// The registry host a failure every request to it would meet is about ("" when it is not
    /// about one host: credentials, the CA file); nil for a failure of one request or processor.
    static func stoppingHost(_ error: any Error) -> String? {
        guard let error = error as? RegistryError else { return nil }
        switch error {
        case .connection(let host, _, _), .tls(let host, _): return host
        case .unknownHost(let host): return host
        case .unauthorized(let failure): return Self.host(of: failure.url)
        case .caFile, .credentials: return ""
        case .bodyInterrupted, .http, .digestMismatch, .protocolViolation, .notFound, .sink, .cancelled: return nil
        }
    }

    /// `HOST[:PORT]` of `https://HOST[:PORT]/…`.
    static func host(of url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        return String(rest.prefix { $0 != "/" })
    }
}
