import KilnCore

#if canImport(Glibc)
    import Glibc
#endif

/// Temporary files a killed pin write left beside a `registry.yaml`. Every build context hides
/// them already (`BuildContext`), so they never reach an image; the lane removes them at start.
enum PinTemporaries {
    /// Removes, beside each pin file, temporaries of processes that are gone, and the
    /// `.tmp-registry.yaml-XXXXXX` files of kiln versions that did not name their owner, once a
    /// minute old (no live writer keeps one open that long).
    static func sweep(_ pinFiles: [String]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        for folder in Set(pinFiles.map(FilePaths.directory(of:))) {
            ScratchDirectory.sweepTemporaries(folder)
            for name in (try? FilePaths.contents(of: folder)) ?? [] where name.hasPrefix(".tmp-registry.yaml-") {
                let path = FilePaths.join(folder, name)
                var info = stat()
                if lstat(path, &info) == 0, now.tv_sec - info.st_mtim.tv_sec > 60 { FilePaths.remove(path) }
            }
        }
    }
}
