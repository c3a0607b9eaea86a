import KilnCore

/// The repository's web address from the checkout's `origin` remote, written the way GitHub's
/// runner variables write it (`https://github.com/OWNER/REPO`): the default
/// `org.opencontainers.image.source`, the same on a developer's machine as on a runner, so
/// both compute the same keys.
package enum GitRemote {
    /// `origin`'s URL of the checkout at `root` (a worktree's too), normalised; nil without one,
    /// or when it names no web host (a local path).
    package static func source(root: String) -> String? {
        guard let config = configText(root: root), let url = originURL(inConfig: config) else { return nil }
        return normalise(url)
    }

    /// The git config file's text: the checkout's (the nearest `.git` at or above `root`), for
    /// a worktree the common directory's.
    static func configText(root: String) -> String? {
        guard var git = GitRevision.gitDirectory(from: root) else { return nil }
        if let common = GitRevision.read(git + "/commondir") {
            git = common.hasPrefix("/") ? common : git + "/" + common
        }
        return GitRevision.read(git + "/config")
    }

    /// `url` under `[remote "origin"]`.
    static func originURL(inConfig text: String) -> String? {
        var inOrigin = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                inOrigin = line.replacingOccurrences(of: " ", with: "") == "[remote\"origin\"]"
                continue
            }
            guard inOrigin, let equals = line.firstIndex(of: "=") else { continue }
            if line[..<equals].trimmingCharacters(in: .whitespaces).lowercased() == "url" {
                return line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// `https://HOST/PATH` for the usual spellings of a remote: `git@HOST:PATH`,
    /// `ssh://[user@]HOST[:port]/PATH`, `https://[user[:token]@]HOST/PATH`, without `.git` or a
    /// trailing slash and with the host in lower case; nil for a local path or `file://`.
    package static func normalise(_ url: String) -> String? {
        var rest = url
        var scheme = "https"
        if let range = rest.range(of: "://") {
            let given = rest[..<range.lowerBound].lowercased()
            guard ["https", "http", "ssh", "git", "git+ssh", "ssh+git"].contains(given) else { return nil }
            if given == "http" { scheme = "http" }
            rest = String(rest[range.upperBound...])
            if let at = rest.firstIndex(of: "@"), at < (rest.firstIndex(of: "/") ?? rest.endIndex) {
                rest = String(rest[rest.index(after: at)...])  // credentials or the ssh user
            }
            var host = String(rest.prefix { $0 != "/" })
            rest = String(rest.dropFirst(host.count))
            if given != "https" && given != "http", let colon = host.firstIndex(of: ":") {
                host = String(host[..<colon])
            }
            return finish(scheme: scheme, host: host, path: rest)
        }
        // scp-like: [user@]host:path
        guard let colon = rest.firstIndex(of: ":"), !rest.hasPrefix("/"), !rest[..<colon].contains("/") else {
            return nil
        }
        var host = String(rest[..<colon])
        if let at = host.firstIndex(of: "@") { host = String(host[host.index(after: at)...]) }
        return finish(scheme: scheme, host: host, path: "/" + rest[rest.index(after: colon)...])
    }

    private static func finish(scheme: String, host: String, path: String) -> String? {
        var path = path
        while path.hasSuffix("/") { path.removeLast() }
        if path.hasSuffix(".git") { path.removeLast(4) }
        while path.hasPrefix("//") { path.removeFirst() }
        guard !host.isEmpty, path.count > 1 else { return nil }
        return "\(scheme)://\(host.lowercased())\(path)"
    }
}
