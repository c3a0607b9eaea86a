import Foundation
import KilnCore
import KilnRegistry

/// The distribution API kept in memory, as distribution 2.8 answers it: blobs, chunked and
/// monolithic uploads, cross-repository mounts, manifests by tag and digest (a manifest whose
/// blobs or children are missing is refused), tag lists with pages, deletes; no referrers API
/// (kiln falls back to its tag scheme). Faults are switched on per test: the whole host down, or
/// one kind of request failing.
actor InMemoryRegistry: RegistryTransport {
    struct Manifest {
        var mediaType: String
        var bytes: [UInt8]
    }

    /// A failed connection, as the network would give it.
    struct ConnectionRefused: Error, CustomStringConvertible {
        var description: String { "connection refused" }
    }

    private(set) var blobs = [String: [UInt8]]()
    private(set) var repositoryBlobs = [String: Set<String>]()
    private(set) var manifests = [String: [String: Manifest]]()
    private(set) var tagged = [String: [String: String]]()
    private var uploads = [String: (repository: String, bytes: [UInt8])]()
    /// Every request, as `METHOD /path` (no query), in order.
    private(set) var log = [String]()
    /// Every request fails to connect.
    var down = false
    /// Requests whose `METHOD /path` contains the key get the status (a fault).
    var failing = [String: Int]()

    func setDown(_ value: Bool) { down = value }
    func fail(_ pattern: String, with status: Int) { failing[pattern] = status }
    func clearLog() { log = [] }

    /// The requests logged since the last `clearLog`, whose `METHOD /path` contains `pattern`.
    func requests(_ pattern: String) -> [String] { log.filter { $0.contains(pattern) } }

    /// The digest a tag names in `repository` (its path, without the host).
    func digest(_ repository: String, tag: String) -> String? { tagged[repository]?[tag] }

    func tags(_ repository: String) -> [String] { (tagged[repository] ?? [:]).keys.sorted() }

    func manifest(_ repository: String, _ digest: String) -> Manifest? { manifests[repository]?[digest] }

    /// Deletes a manifest the way an operator would (its tags go too).
    func delete(_ repository: String, _ digest: String) {
        manifests[repository]?[digest] = nil
        tagged[repository] = tagged[repository]?.filter { $0.value != digest }
    }

    /// Points `tag` at `digest` behind kiln's back.
    /// Copies a tag, and the manifest it names, from one repository into another (as a client
    /// pushing it there would).
    func copyTag(_ tag: String, from source: String, to target: String) {
        guard let digest = tagged[source]?[tag] else { return }
        copyManifest(digest, from: source, to: target)
        tagged[target, default: [:]][tag] = digest
    }

    /// Copies the manifest `digest` from one repository into another.
    func copyManifest(_ digest: String, from source: String, to target: String) {
        manifests[target, default: [:]][digest] = manifests[source]?[digest]
    }

    func retag(_ repository: String, _ tag: String, to digest: String) {
        tagged[repository, default: [:]][tag] = digest
    }

    func respond(to request: TransportRequest) async throws -> TransportResponse {
        let (path, query) = Self.split(request.url)
        log.append("\(request.method) \(path)")
        if down { throw ConnectionRefused() }
        if let status = failing.first(where: { "\(request.method) \(path)".contains($0.key) })?.value {
            return Self.error(status, "UNKNOWN", "injected fault")
        }
        if path == "/v2/" || path == "/v2" { return TransportResponse(status: 200) }
        guard path.hasPrefix("/v2/") else { return Self.error(404, "NOT_FOUND", path) }
        let rest = String(path.dropFirst(4))
        for kind in ["/blobs/uploads/", "/blobs/uploads", "/blobs/", "/manifests/", "/tags/list", "/referrers/"] {
            guard let range = rest.range(of: kind, options: .backwards) else { continue }
            let name = String(rest[..<range.lowerBound])
            let tail = String(rest[range.upperBound...])
            switch kind {
            case "/blobs/uploads/", "/blobs/uploads": return upload(request, name, tail, query)
            case "/blobs/": return blob(request, name, tail)
            case "/manifests/": return manifest(request, name, tail)
            case "/tags/list": return tagList(name, query)
            default: return Self.error(404, "NOT_FOUND", "no referrers API")
            }
        }
        return Self.error(404, "NOT_FOUND", path)
    }

    // MARK: Blobs

    private func blob(_ request: TransportRequest, _ name: String, _ digest: String) -> TransportResponse {
        guard repositoryBlobs[name]?.contains(digest) == true, let bytes = blobs[digest] else {
            return Self.error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        }
        let headers = [
            ("Content-Length", "\(bytes.count)"), ("Docker-Content-Digest", digest),
            ("Content-Type", "application/octet-stream"),
        ]
        return TransportResponse(status: 200, headers: headers, body: request.method == "GET" ? bytes : [])
    }

    private func upload(_ request: TransportRequest, _ name: String, _ session: String, _ query: [String: String])
        -> TransportResponse
    {
        if request.method == "POST" {
            if let mount = query["mount"], let from = query["from"], repositoryBlobs[from]?.contains(mount) == true {
                repositoryBlobs[name, default: []].insert(mount)
                return Self.created(name, mount)
            }
            if let digest = query["digest"] { return store(request.body, as: digest, in: name) }
            let id = UUID().uuidString.lowercased()
            uploads[id] = (name, request.body)
            return accepted(name, id)
        }
        guard var upload = uploads[session], upload.repository == name else {
            return Self.error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        }
        upload.bytes += request.body
        uploads[session] = upload
        switch request.method {
        case "PATCH": return accepted(name, session)
        case "PUT":
            uploads[session] = nil
            return store(upload.bytes, as: query["digest"] ?? "", in: name)
        case "DELETE":
            uploads[session] = nil
            return TransportResponse(status: 204)
        default: return Self.error(405, "UNSUPPORTED", request.method)
        }
    }

    private func accepted(_ name: String, _ id: String) -> TransportResponse {
        let length = uploads[id]?.bytes.count ?? 0
        return TransportResponse(
            status: 202,
            headers: [
                ("Location", "/v2/\(name)/blobs/uploads/\(id)"), ("Range", "0-\(max(0, length - 1))"),
                ("Docker-Upload-UUID", id), ("Content-Length", "0"),
            ])
    }

    private func store(_ bytes: [UInt8], as digest: String, in name: String) -> TransportResponse {
        guard Digest.sha256(of: bytes).description == digest else {
            return Self.error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        }
        blobs[digest] = bytes
        repositoryBlobs[name, default: []].insert(digest)
        return Self.created(name, digest)
    }

    private static func created(_ name: String, _ digest: String) -> TransportResponse {
        TransportResponse(
            status: 201,
            headers: [
                ("Location", "/v2/\(name)/blobs/\(digest)"), ("Docker-Content-Digest", digest), ("Content-Length", "0"),
            ])
    }

    // MARK: Manifests

    private func manifest(_ request: TransportRequest, _ name: String, _ reference: String) -> TransportResponse {
        switch request.method {
        case "PUT": return putManifest(request, name, reference)
        case "DELETE":
            guard manifests[name]?[reference] != nil else { return Self.error(404, "MANIFEST_UNKNOWN", reference) }
            delete(name, reference)
            return TransportResponse(status: 202)
        default:
            let digest = reference.hasPrefix("sha256:") ? reference : tagged[name]?[reference]
            guard let digest, let manifest = manifests[name]?[digest] else {
                return Self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            }
            let headers = [
                ("Content-Type", manifest.mediaType), ("Docker-Content-Digest", digest),
                ("Content-Length", "\(manifest.bytes.count)"),
            ]
            return TransportResponse(status: 200, headers: headers, body: request.method == "GET" ? manifest.bytes : [])
        }
    }

    private func putManifest(_ request: TransportRequest, _ name: String, _ reference: String) -> TransportResponse {
        let digest = Digest.sha256(of: request.body).description
        if reference.hasPrefix("sha256:"), reference != digest {
            return Self.error(400, "DIGEST_INVALID", "manifest digest did not match")
        }
        struct Shape: Decodable {
            struct Child: Decodable { var digest: String }
            var config: Child?
            var layers: [Child]?
            var manifests: [Child]?
            var subject: Child?
        }
        guard let shape = try? JSONDecoder().decode(Shape.self, from: Data(request.body)) else {
            return Self.error(400, "MANIFEST_INVALID", "manifest invalid")
        }
        let blobsNeeded = ([shape.config].compactMap { $0 } + (shape.layers ?? [])).map(\.digest)
        if let missing = blobsNeeded.first(where: { repositoryBlobs[name]?.contains($0) != true }) {
            return Self.error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry: \(missing)")
        }
        if let missing = (shape.manifests ?? []).first(where: { manifests[name]?[$0.digest] == nil }) {
            return Self.error(400, "MANIFEST_UNKNOWN", "manifest unknown: \(missing.digest)")
        }
        manifests[name, default: [:]][digest] = Manifest(
            mediaType: request.header("Content-Type") ?? "application/vnd.oci.image.manifest.v1+json",
            bytes: request.body)
        if !reference.hasPrefix("sha256:") { tagged[name, default: [:]][reference] = digest }
        return TransportResponse(
            status: 201,
            headers: [
                ("Location", "/v2/\(name)/manifests/\(digest)"), ("Docker-Content-Digest", digest),
                ("Content-Length", "0"),
            ])
    }

    // MARK: Tags

    private func tagList(_ name: String, _ query: [String: String]) -> TransportResponse {
        guard let tags = tagged[name], !tags.isEmpty else { return Self.error(404, "NAME_UNKNOWN", name) }
        var names = tags.keys.sorted()
        if let last = query["last"] { names = names.filter { $0 > last } }
        let limit = Int(query["n"] ?? "") ?? names.count
        let page = Array(names.prefix(limit))
        var headers = [(name: String, value: String)]()
        if names.count > limit, let last = page.last {
            headers.append(("Link", "</v2/\(name)/tags/list?last=\(last)&n=\(limit)>; rel=\"next\""))
        }
        let body = try? JSONSerialization.data(withJSONObject: ["name": name, "tags": page])
        return TransportResponse(status: 200, headers: headers, body: Array(body ?? Data()))
    }

    // MARK: Helpers

    private static func split(_ url: String) -> (path: String, query: [String: String]) {
        var rest = Substring(url)
        if let scheme = rest.range(of: "://") { rest = rest[scheme.upperBound...] }
        if let slash = rest.firstIndex(of: "/") { rest = rest[slash...] } else { rest = "/" }
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query = [String: String]()
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let item = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
                query[item[0]] = item.count > 1 ? item[1] : ""
            }
        }
        return (String(parts[0]), query)
    }

    private static func error(_ status: Int, _ code: String, _ message: String) -> TransportResponse {
        let body = "{\"errors\":[{\"code\":\"\(code)\",\"message\":\"\(message)\"}]}"
        return TransportResponse(
            status: status, headers: [("Content-Type", "application/json"), ("Content-Length", "\(body.utf8.count)")],
            body: Array(body.utf8))
    }
}
