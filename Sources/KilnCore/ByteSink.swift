/// Somewhere bytes are written in order: a file being written atomically, a blob being ingested
/// into the store. Producers (the layer writer) stream into a sink without knowing which it is.
package protocol ByteSink: AnyObject {
    /// Appends bytes; a thrown error aborts the producer.
    func write(_ bytes: UnsafeRawBufferPointer) throws(FileError)
}

extension ByteSink {
    /// Appends bytes held in an array or slice.
    package func write(_ bytes: some ByteStorage) throws(FileError) {
        let failure: FileError? = bytes.withUnsafeBytes { raw in
            do throws(FileError) { try write(raw) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }
}

extension AtomicFileWriter: ByteSink {}
