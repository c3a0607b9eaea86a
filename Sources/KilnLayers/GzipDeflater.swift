import CZlib
import KilnCore

/// A streaming gzip compressor on zlib with a fixed header, so equal input gives equal bytes on
/// every machine.
///
/// zlib writes the gzip header itself; left alone it takes the OS byte from the platform it was
/// built for (3 on Linux, 19 on macOS) and so would make the same layer differ between machines.
/// Kiln sets the header explicitly: no file name, no comment, modification time 0, OS byte 255
/// ("unknown", as Go's compress/gzip writes, which most container tools use).
final class GzipDeflater {
    static let osByte: Int32 = 255
    private let stream: UnsafeMutablePointer<z_stream>
    private let header: UnsafeMutablePointer<gz_header>
    private let output: UnsafeMutableRawBufferPointer

    /// - Parameter level: 0 (store) to 9 (smallest).
    init(level: Int32) throws(LayerError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        header = .allocate(capacity: 1)
        header.initialize(to: gz_header())
        header.pointee.os = Self.osByte
        output = .allocate(byteCount: 256 << 10, alignment: 16)
        // windowBits 15 + 16 asks zlib for a gzip wrapper rather than zlib's own.
        var status = deflateInit2_(
            stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        if status == Z_OK { status = deflateSetHeader(stream, header) }
        guard status == Z_OK else {
            let message = Self.message(stream, status)
            deflateEnd(stream)
            Self.release(stream, header, output)
            throw .compression(message)
        }
    }

    deinit {
        deflateEnd(stream)
        Self.release(stream, header, output)
    }

    private static func release(
        _ stream: UnsafeMutablePointer<z_stream>, _ header: UnsafeMutablePointer<gz_header>,
        _ output: UnsafeMutableRawBufferPointer
    ) {
        stream.deinitialize(count: 1)
        stream.deallocate()
        header.deinitialize(count: 1)
        header.deallocate()
        output.deallocate()
    }

    /// Compresses `input`, handing every produced chunk to `emit`.
    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let base = input.baseAddress, input.count > 0 else { return }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        try run(flush: Z_NO_FLUSH, emit: emit)
    }

    /// Ends the stream (writes the trailer with CRC and length).
    func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        try run(flush: Z_FINISH, emit: emit)
    }

    private func run(flush: Int32, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let outBase = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        while true {
            stream.pointee.next_out = outBase
            stream.pointee.avail_out = uInt(output.count)
            let status = deflate(stream, flush)
            guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                throw LayerError.compression(Self.message(stream, status))
            }
            let produced = output.count - Int(stream.pointee.avail_out)
            if produced > 0 { try emit(UnsafeRawBufferPointer(rebasing: output[0..<produced])) }
            if flush == Z_FINISH {
                if status == Z_STREAM_END { return }
            } else if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 {
                return
            }
        }
    }

    private static func message(_ stream: UnsafeMutablePointer<z_stream>, _ status: Int32) -> String {
        if let text = stream.pointee.msg { return String(cString: text) }
        return "zlib status \(status)"
    }
}
