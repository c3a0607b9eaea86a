import CZlib
import Dispatch
import Foundation
import KilnCore
import Synchronization

/// gzip on every core, with the same bytes whatever the number of threads (pigz's scheme).
///
/// The input is cut into blocks of `blockSize` bytes. Each block is deflated on its own (raw
/// deflate), primed with the 32 KiB of input before it (`deflateSetDictionary`), so matches
/// reach back across the cut as they would in one stream; each ends with a sync flush (an empty
/// stored block, so the next starts on a byte boundary) and the last with the final block. The
/// blocks joined are one deflate stream; around it go kiln's fixed gzip header and the trailer: the CRC-32 of the whole input (each block's,
/// combined with `crc32_combine`) and its length. A block's bytes depend only on its input, its
/// dictionary and the level, so the stream does not depend on how many threads made it or in
/// what order they finished.
///
/// The header is fixed: no file name, no comment, modification time 0, OS byte 255 ("unknown",
/// as Go's compress/gzip writes, which most container tools use); zlib's own would take the OS
/// byte from the platform it was built for (3 on Linux, 19 on macOS).
package final class ParallelGzip {
    static let osByte: UInt8 = 255
    /// Input bytes per block: large enough that the dictionary and the flush cost under 1% of
    /// the output, small enough to spread a layer of a few MiB over the cores.
    package static let blockSize = 128 << 10
    static let dictionarySize = 32 << 10

    private let level: Int32
    private let threads: Int
    private var pending = [UInt8]()
    /// The last 32 KiB of input before `pending`: the next block's dictionary.
    private var dictionary = [UInt8]()
    private var nextIndex = 0
    private var nextToEmit = 0
    private var crc: uLong = crc32(0, nil, 0)
    private var length: UInt64 = 0
    private var headerWritten = false
    private let results = Finished()
    private let done = DispatchSemaphore(value: 0)
    private let slots: DispatchSemaphore
    private var inFlight = 0
    /// Threads of their own, not a dispatch queue: the callers block on these blocks from
    /// dispatch's threads (`BlockingWork`), and on Linux dispatch adds a thread to a starved pool
    /// only after seconds, so blocks queued behind their own waiting writers stalled a lane.
    private static let workers = Workers(count: ProcessInfo.processInfo.activeProcessorCount)

    /// Blocks compressed and not yet emitted, by index (filled by the workers).
    final class Finished: Sendable {
        private let blocks = Mutex([Int: Result<Compressed, LayerError>]())
        func put(_ index: Int, _ outcome: Result<Compressed, LayerError>) { blocks.withLock { $0[index] = outcome } }
        func take(_ index: Int) -> Result<Compressed, LayerError>? { blocks.withLock { $0.removeValue(forKey: index) } }
    }

    struct Compressed: Sendable {
        var bytes: [UInt8]
        var crc: uLong
        var length: Int
    }

    /// - Parameters:
    ///   - level: 0 (store) to 9 (smallest).
    ///   - threads: blocks compressed at once (the cores, by default); never changes the bytes.
    package init(level: Int32, threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws(LayerError) {
        guard (0...9).contains(level) else { throw .compression("level \(level) is outside 0...9") }
        self.level = level
        self.threads = max(1, threads)
        slots = DispatchSemaphore(value: 2 * max(1, threads))
        pending.reserveCapacity(Self.blockSize)
    }

    /// Takes `input`, handing any finished output to `emit`, in order.
    package func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var rest = input[...]
        while !rest.isEmpty {
            let take = min(Self.blockSize - pending.count, rest.count)
            pending.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            if pending.count == Self.blockSize {
                try submit(final: false, emit: emit)
            }
        }
        try drain(waiting: false, emit: emit)
    }

    /// Compresses what is left, then writes the trailer.
    package func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        try submit(final: true, emit: emit)
        try drain(waiting: true, emit: emit)
        var trailer = [UInt8]()
        for shift in stride(from: 0, to: 32, by: 8) { trailer.append(UInt8(truncatingIfNeeded: crc >> shift)) }
        for shift in stride(from: 0, to: 32, by: 8) { trailer.append(UInt8(truncatingIfNeeded: length >> shift)) }
        try trailer.withUnsafeBytes { try emit($0) }
    }

    private func submit(final: Bool, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        if !headerWritten {
            headerWritten = true
            // ID1 ID2, deflate, no flags, mtime 0, no extra flags, OS 255.
            let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, Self.osByte]
            try header.withUnsafeBytes { try emit($0) }
        }
        let block = pending
        let primer = dictionary
        let index = nextIndex
        nextIndex += 1
        // The next block's dictionary: the last 32 KiB of input so far.
        let joined =
            dictionary.count + block.count > Self.dictionarySize
            ? (dictionary + block).suffix(Self.dictionarySize) : (dictionary + block)[...]
        dictionary = Array(joined)
        pending.removeAll(keepingCapacity: true)
        // Wait for a free slot, emitting what finished meanwhile: memory stays bounded.
        while slots.wait(timeout: .now()) == .timedOut {
            try drain(waiting: true, count: 1, emit: emit)
        }
        inFlight += 1
        let (level, results, done, slots) = (self.level, self.results, self.done, self.slots)
        Self.workers.submit {
            let outcome = Self.deflateBlock(block, dictionary: primer, level: level, final: final)
            results.put(index, outcome)
            slots.signal()
            done.signal()
        }
    }

    /// Emits the blocks that finished, in order; with `waiting`, waits for `count` more (all
    /// outstanding when nil) to finish.
    private func drain(waiting: Bool, count: Int? = nil, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var toWait = waiting ? (count ?? inFlight) : 0
        while true {
            let ready = results.take(nextToEmit)
            if let ready {
                inFlight -= 1
                let block: Compressed
                switch ready {
                case .success(let compressed): block = compressed
                case .failure(let error): throw error
                }
                crc = crc32_combine(crc, block.crc, off_t(block.length))
                length &+= UInt64(block.length)
                nextToEmit += 1
                try block.bytes.withUnsafeBytes { try emit($0) }
                toWait -= 1
                continue
            }
            guard toWait > 0, inFlight > 0 else { return }
            done.wait()
        }
    }

    /// One block as raw deflate, primed with `dictionary`, ended with a sync flush (or, `final`,
    /// the last block).
    static func deflateBlock(_ input: [UInt8], dictionary: [UInt8], level: Int32, final: Bool)
        -> Result<Compressed, LayerError>
    {
        var stream = z_stream()
        // windowBits -15: raw deflate, no zlib or gzip wrapper.
        guard
            deflateInit2_(
                &stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { return .failure(.compression("zlib could not start a block")) }
        defer { deflateEnd(&stream) }
        if !dictionary.isEmpty {
            let status = dictionary.withUnsafeBufferPointer {
                deflateSetDictionary(&stream, $0.baseAddress, uInt($0.count))
            }
            guard status == Z_OK else { return .failure(.compression("zlib refused a block's dictionary")) }
        }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 64)
        var produced = 0
        let status = input.withUnsafeBufferPointer { inputBuffer -> Int32 in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                stream.next_in = UnsafeMutablePointer(mutating: inputBuffer.baseAddress)
                stream.avail_in = uInt(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress
                stream.avail_out = uInt(outputBuffer.count)
                let result = deflate(&stream, final ? Z_FINISH : Z_SYNC_FLUSH)
                produced = outputBuffer.count - Int(stream.avail_out)
                return result
            }
        }
        guard status == (final ? Z_STREAM_END : Z_OK), stream.avail_in == 0 else {
            return .failure(.compression("zlib status \(status) in a block"))
        }
        output.removeSubrange(produced...)
        let check = input.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        return .success(Compressed(bytes: output, crc: check, length: input.count))
    }
}

extension ParallelGzip {
    /// A fixed set of threads taking jobs in order.
    final class Workers: @unchecked Sendable {
        private let condition = NSCondition()
        /// Waiting jobs, oldest first (a few per writer: each writer bounds its blocks in flight).
        private var jobs = [() -> Void]()

        init(count: Int) {
            for index in 0..<max(1, count) {
                let thread = Thread { [unowned self] in self.work() }
                thread.name = "kiln.gzip.\(index)"
                thread.qualityOfService = .userInitiated
                thread.start()
            }
        }

        func submit(_ job: @escaping () -> Void) {
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }

        private func work() {
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                // Taken out, so a block's input is freed as soon as it is compressed.
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
    }
}
