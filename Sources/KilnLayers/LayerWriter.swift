import KilnCore
import KilnOCI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns entries into a layer blob in one streamed pass: files are read in 1 MiB chunks into a
/// PAX tar stream, whose bytes are hashed (the diffID) and gzip-compressed, and the compressed
/// bytes are hashed (the blob digest) and written to the output. Memory stays flat whatever the
/// size of the files.
///
/// Same entries and options give byte-identical blobs on any machine: order, times, owners,
/// names and the gzip header are all fixed (see `LayerPlan`, `TarWriter`, `ParallelGzip`).
package enum LayerWriter {
    /// Writes the layer for `entries` to `output`.
    /// - Throws: `LayerError` naming the path at fault. The output may hold a partial blob then;
    ///   the caller discards it (an `AtomicFileWriter` that is not committed removes itself).
    /// - Parameter summaries: when given, collects each regular file's `FileSummary` (by member
    ///   path) from the bytes as they go into the tar: what a `RUN` step's reuse check needs of
    ///   the layer, without reading it again.
    package static func write(
        _ entries: [LayerEntry], options: LayerOptions = LayerOptions(), to output: some ByteSink,
        summaries: SummaryCollector? = nil
    ) throws(LayerError) -> LayerResult {
        let ordered = try LayerPlan.order(entries)
        let pipeline = try Pipeline(options: options, output: output)
        do {
            let tar = try TarWriter(epoch: options.epoch) { chunk in try pipeline.consumeTar(chunk) }
            for entry in ordered {
                let sink = summaries == nil ? nil : SummarySink()
                try write(entry, to: tar, summary: sink)
                if let sink, case .regularFile = entry.content {
                    summaries?.summaries[entry.path.description] = sink.finalize()
                }
            }
            try tar.finish()
            try pipeline.finish()
        } catch let error as LayerError {
            throw error
        } catch let error as FileError {
            throw .output(error)
        } catch {
            throw .archive("\(error)", path: nil)
        }
        return pipeline.result(mediaType: options.mediaType)
    }

    /// A layer tar someone else wrote (buildah's export of a `RUN` step's layer), compressed as
    /// `options` say into `output`: the same tar gives the same blob on any machine.
    package static func compress(
        tarAt path: String, options: LayerOptions, to output: some ByteSink, dropping: Set<String> = []
    ) throws(LayerError) -> LayerResult {
        let pipeline = try Pipeline(options: options, output: output)
        try LayerError.reading(path) {
            if dropping.isEmpty {
                let file = try ReadableFile(path: path)
                try file.forEachChunk { chunk in try pipeline.consumeTar(chunk) }
            } else {
                try TarFilter.stream(tarAt: path, dropping: dropping) { bytes in
                    try bytes.withUnsafeBytes { raw in try pipeline.consumeTar(raw) }
                }
            }
            try pipeline.finish()
        }
        return pipeline.result(mediaType: options.mediaType)
    }

    private static func write(_ entry: LayerEntry, to tar: TarWriter, summary: SummarySink?) throws {
        guard case .regularFile(let source) = entry.content else {
            try tar.writeHeader(for: entry, size: 0)
            return
        }
        switch source {
        case .bytes(let bytes):
            try tar.writeHeader(for: entry, size: Int64(bytes.count))
            try bytes.withUnsafeBytes { raw in
                summary?.hasher.update(raw)
                summary?.take(raw)
                try tar.writeData(raw, path: entry.path)
            }
        case .file(let path):
            try copyFile(at: path, into: tar, as: entry, summary: summary)
        }
    }

    private static func copyFile(at path: String, into tar: TarWriter, as entry: LayerEntry, summary: SummarySink?)
        throws
    {
        let file: ReadableFile
        do {
            file = try ReadableFile(path: path, nonBlocking: true)
        } catch {
            throw LayerError.unreadable(path: path, error)
        }
        let info = try file.status()
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw LayerError.specialFile(path: path, kind: FileKind(mode: info.st_mode).name)
        }
        let expected = Int64(info.st_size)
        try tar.writeHeader(for: entry, size: expected)
        var copied: Int64 = 0
        do {
            try file.forEachChunk { chunk in
                copied += Int64(chunk.count)
                guard copied <= expected else { throw LayerError.changedWhileReading(path: path) }
                summary?.hasher.update(chunk)
                summary?.take(chunk)
                try tar.writeData(chunk, path: entry.path)
            }
        } catch let error as FileError where error.path == path {
            throw LayerError.unreadable(path: path, error)
        }
        guard copied == expected else { throw LayerError.changedWhileReading(path: path) }
    }
}

/// The hashing and compressing stages between the tar stream and the output.
private final class Pipeline {
    let diffHasher = SHA256Hasher()
    let blobHasher: SHA256Hasher?
    let deflater: ParallelGzip?
    let output: any ByteSink
    var uncompressedSize: Int64 = 0
    var compressedSize: Int64 = 0
    var diffID: Digest?
    var blobDigest: Digest?

    init(options: LayerOptions, output: some ByteSink) throws(LayerError) {
        self.output = output
        switch options.compression {
        case .gzip(let level):
            guard (0...9).contains(level) else { throw .compression("level \(level) is outside 0...9") }
            deflater = try ParallelGzip(level: Int32(level))
            blobHasher = SHA256Hasher()
        case .none:
            deflater = nil
            blobHasher = nil
        }
    }

    func consumeTar(_ chunk: UnsafeRawBufferPointer) throws {
        diffHasher.update(chunk)
        uncompressedSize += Int64(chunk.count)
        if let deflater {
            try deflater.compress(chunk) { try emit($0) }
        } else {
            try emit(chunk)
        }
    }

    func finish() throws {
        try deflater?.finish { try emit($0) }
        diffID = diffHasher.finalize()
        blobDigest = blobHasher?.finalize() ?? diffID
    }

    private func emit(_ chunk: UnsafeRawBufferPointer) throws {
        blobHasher?.update(chunk)
        compressedSize += Int64(chunk.count)
        do {
            try output.write(chunk)
        } catch {
            throw LayerError.output(error)
        }
    }

    func result(mediaType: MediaType) -> LayerResult {
        LayerResult(
            diffID: diffID!, digest: blobDigest!, size: compressedSize, uncompressedSize: uncompressedSize,
            mediaType: mediaType)
    }
}
