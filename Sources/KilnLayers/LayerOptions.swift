import KilnCore
import KilnOCI

/// How a layer is encoded.
package struct LayerOptions: Sendable, Hashable {
    /// The layer blob's encoding.
    package enum Compression: Sendable, Hashable {
        /// gzip at a zlib level from 0 to 9.
        case gzip(level: Int)
        /// Plain tar: the blob digest equals the diffID.
        case none
    }

    /// gzip level 6, the level Docker and `gzip` use by default.
    package static let defaultGzipLevel = 6

    package var compression: Compression
    /// Seconds since 1970 stamped on every entry as its modification time.
    package var epoch: Int64

    package init(compression: Compression = .gzip(level: LayerOptions.defaultGzipLevel), epoch: Int64 = 0) {
        self.compression = compression
        self.epoch = epoch
    }

    /// The options kiln uses unless told otherwise: gzip 6, and the epoch from `SOURCE_DATE_EPOCH`.
    /// - Throws: `EpochError` when `SOURCE_DATE_EPOCH` is set but not a whole number of seconds.
    package static func standard(environment: [String: String]) throws(EpochError) -> LayerOptions {
        LayerOptions(epoch: try SourceDateEpoch.resolve(environment: environment))
    }

    /// What a key hashes for these options: both reach a layer's bytes (`epoch=… compression=…`).
    package var keyLine: String { "epoch=\(epoch) compression=\(compression)" }

    /// The media type a layer with this encoding gets in an OCI manifest.
    package var mediaType: MediaType {
        switch compression {
        case .gzip: .ociLayerGzip
        case .none: .ociLayer
        }
    }
}

/// What writing a layer produced.
package struct LayerResult: Sendable, Hashable {
    /// SHA-256 of the uncompressed tar: what `rootfs.diff_ids` lists.
    package var diffID: Digest
    /// SHA-256 of the blob as stored and pushed.
    package var digest: Digest
    /// The blob's size in bytes.
    package var size: Int64
    /// The uncompressed tar's size in bytes.
    package var uncompressedSize: Int64
    /// The layer media type.
    package var mediaType: MediaType

    /// The descriptor a manifest lists for this layer.
    package var descriptor: Descriptor { Descriptor(mediaType: mediaType, digest: digest, size: size) }
}
