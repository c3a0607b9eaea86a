import KilnCore
import KilnOCI

/// How a layer is encoded.
public struct LayerOptions: Sendable, Hashable {
    /// The layer blob's encoding.
    public enum Compression: Sendable, Hashable {
        /// gzip at a zlib level from 0 to 9.
        case gzip(level: Int)
        /// Plain tar: the blob digest equals the diffID.
        case none
    }

    /// gzip level 6, the level Docker and `gzip` use by default.
    public static let defaultGzipLevel = 6

    public var compression: Compression
    /// Seconds since 1970 stamped on every entry as its modification time.
    public var epoch: Int64

    public init(compression: Compression = .gzip(level: LayerOptions.defaultGzipLevel), epoch: Int64 = 0) {
        self.compression = compression
        self.epoch = epoch
    }

    /// The options kiln uses unless told otherwise: gzip 6, and the epoch from `SOURCE_DATE_EPOCH`.
    /// - Throws: `EpochError` when `SOURCE_DATE_EPOCH` is set but not a whole number of seconds.
    public static func standard(environment: [String: String]) throws(EpochError) -> LayerOptions {
        LayerOptions(epoch: try SourceDateEpoch.resolve(environment: environment))
    }

    /// The media type a layer with this encoding gets in an OCI manifest.
    public var mediaType: MediaType {
        switch compression {
        case .gzip: .ociLayerGzip
        case .none: .ociLayer
        }
    }
}

/// What writing a layer produced.
public struct LayerResult: Sendable, Hashable {
    /// SHA-256 of the uncompressed tar: what `rootfs.diff_ids` lists.
    public var diffID: Digest
    /// SHA-256 of the blob as stored and pushed.
    public var digest: Digest
    /// The blob's size in bytes.
    public var size: Int64
    /// The uncompressed tar's size in bytes.
    public var uncompressedSize: Int64
    /// The layer media type.
    public var mediaType: MediaType

    /// The descriptor a manifest lists for this layer.
    public var descriptor: Descriptor { Descriptor(mediaType: mediaType, digest: digest, size: size) }
}
