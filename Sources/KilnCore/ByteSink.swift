/// Somewhere bytes are written in order: a file being written atomically, a blob being ingested
/// into the store. Producers (the layer writer) stream into a sink without knowing which it is.
public protocol ByteSink: AnyObject {
    /// Appends bytes; a thrown error aborts the producer.
    func write(_ bytes: UnsafeRawBufferPointer) throws(FileError)
}

extension AtomicFileWriter: ByteSink {}
