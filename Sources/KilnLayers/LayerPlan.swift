/// Puts a caller's entries in the one order a reproducible layer allows: every path once, every
/// missing parent directory added (`0755`, `0:0`, as Docker creates them), hard links pointing at
/// the member of their group that comes first, and everything sorted by path bytes, which also
/// puts each directory before its contents.
enum LayerPlan {
    static func order(_ entries: [LayerEntry]) throws(LayerError) -> [LayerEntry] {
        var byPath = [LayerPath: LayerEntry]()
        byPath.reserveCapacity(entries.count)
        for entry in entries {
            guard byPath.updateValue(entry, forKey: entry.path) == nil else { throw .duplicatePath(entry.path) }
        }
        for entry in entries {
            for ancestor in entry.path.ancestors {
                if let existing = byPath[ancestor] {
                    guard existing.content == .directory else { throw .notADirectory(ancestor, child: entry.path) }
                } else {
                    byPath[ancestor] = .directory(ancestor)
                }
            }
        }
        try relinkHardLinks(&byPath)
        return byPath.values.sorted { $0.path < $1.path }
    }

    /// A tar hard link must name an entry written before it. Whatever order the caller linked
    /// files in, the bytes go to the group member with the smallest path and the others link to it.
    private static func relinkHardLinks(_ byPath: inout [LayerPath: LayerEntry]) throws(LayerError) {
        var groups = [LayerPath: [LayerPath]]()  // the regular file → the links that reach it
        for (path, entry) in byPath {
            guard case .hardLink = entry.content else { continue }
            var seen: Set<LayerPath> = [path]
            var current = entry
            while case .hardLink(let target) = current.content {
                guard let next = byPath[target], seen.insert(target).inserted else {
                    throw .hardLinkTarget(link: path, target: target)
                }
                current = next
            }
            guard case .regularFile = current.content else {
                throw .hardLinkTarget(link: path, target: current.path)
            }
            groups[current.path, default: []].append(path)
        }
        for (filePath, links) in groups {
            let file = byPath[filePath]!
            let owner = ([filePath] + links).min()!
            for member in [filePath] + links {
                var entry = file
                entry.path = member
                if member != owner { entry.content = .hardLink(target: owner) }
                byPath[member] = entry
            }
        }
    }
}
