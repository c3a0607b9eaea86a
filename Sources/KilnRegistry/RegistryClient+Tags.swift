import Foundation
import KilnCore
import KilnOCI

/// What `DELETE /v2/NAME/manifests/DIGEST` did.
package enum ManifestDeletion: Sendable, Equatable {
    case deleted
    /// The registry has no such manifest (deleted already).
    case notFound
    /// The registry refuses deletes through its API (GHCR; distribution without
    /// `storage.delete.enabled`).
    case unsupported
}

extension RegistryClient {
    /// `GET /v2/NAME/tags/list`, following the `Link` header's next page: every tag of
    /// `repository`, or none when the repository does not exist.
    package func tags(in repository: Repository) async throws(RegistryError) -> [String] {
        struct Page: Decodable { var tags: [String]? }
        var tags = [String]()
        var target = RegistryRequest.Target.path("/v2/\(repository.path)/tags/list", query: [("n", "1000")])
        for _ in 0..<1000 {
            let operation = "list the tags of \(repository)"
            let request = RegistryRequest(
                method: .GET, target: target, operation: operation, scopes: [Scope.pull(repository)],
                idempotent: true, maxResponseBody: 8 << 20)
            let response = try await send(request, to: repository.registry)
            if response.status == 404 { return tags }
            try response.expect([200], operation)
            guard let page = try? JSONDecoder().decode(Page.self, from: Data(response.body)) else {
                throw .protocolViolation(
                    host: repository.registry, operation: operation,
                    reason: "answered with a body that is not a tag list")
            }
            tags += page.tags ?? []
            // `Link: </v2/NAME/tags/list?last=X&n=1000>; rel="next"`
            guard let link = response.header("Link"), link.contains("rel=\"next\""),
                let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">"), open < close
            else { return tags }
            let next = String(link[link.index(after: open)..<close])
            guard let query = next.split(separator: "?", maxSplits: 1).last, next.contains("?") else { return tags }
            let items = query.split(separator: "&").map { pair -> (String, String) in
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                return (parts[0], (parts.count > 1 ? parts[1] : "").removingPercentEncoding ?? "")
            }
            target = .path("/v2/\(repository.path)/tags/list", query: items)
        }
        return tags
    }

    /// `DELETE /v2/NAME/manifests/DIGEST`: the manifest and every tag that names it.
    package func deleteManifest(_ digest: Digest, in repository: Repository) async throws(RegistryError)
        -> ManifestDeletion
    {
        let operation = "delete manifest \(digest.short) from \(repository)"
        let request = RegistryRequest(
            method: .DELETE, target: .path("/v2/\(repository.path)/manifests/\(digest)"), operation: operation,
            scopes: ["repository:\(repository.path):delete"], idempotent: true)
        let response = try await send(request, to: repository.registry)
        switch response.status {
        case 200, 202, 204: return .deleted
        case 404: return response.failure(operation).registryCode == "UNSUPPORTED" ? .unsupported : .notFound
        case 405: return .unsupported
        default: throw response.failure(operation)
        }
    }
}
