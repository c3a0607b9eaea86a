import KilnBuild
import KilnCore
import KilnLayers
import KilnOCI
import KilnProcessors

/// What the lane's settings put into one processor's images, in one value: the build args it
/// sees, the layer options, the labels and annotations the lane adds, whether `RUN` steps can
/// run, and where the processor's files are. The job's build options are made from it (so the
/// input key, every step key and every `RUN`'s identity), and so is the key memo's fingerprint:
/// a setting added here reaches every key at once, and `KeyDerivationTests` changes each in turn
/// and checks which keys move.
struct KeyInputs {
    var ref: ProcessorRef
    var context: String
    var dockerfile: String
    var platforms: [Platform]
    /// The lane's build args with the processor's own over them.
    var buildArgs: [String: String]
    var layerOptions: LayerOptions
    var metadata: ImageMetadata
    /// `RUN` steps can run (an executor is configured).
    var runs: Bool
    /// The globs that found the processors (a processor's files are hidden from the others').
    var globs: [String]

    init(_ processor: Processor, platforms: [Platform], lane: Lane) {
        ref = processor.ref
        context = processor.context
        dockerfile = processor.dockerfile
        self.platforms = platforms
        buildArgs = lane.settings.config.buildArgs.merging(processor.buildArgs) { _, own in own }
        layerOptions = lane.settings.layerOptions
        metadata = lane.metadata(for: processor.ref)
        runs = lane.settings.executor != nil
        globs = lane.settings.config.globs
    }

    /// The lines the key memo's fingerprint hashes (with the formats and the binary's identity):
    /// every part of this value, in a fixed order.
    var fingerprintLines: [String] {
        var lines = [
            "ref \(ref)", "context \(context)", "dockerfile \(dockerfile)",
            "platforms \(platforms.map(\.description).joined(separator: ","))",
            "layers \(layerOptions.keyLine)",  // the text the keys hash
            "executor \(runs)",
            "processors \(globs.joined(separator: ","))",
        ]
        lines += buildArgs.sorted { $0.key < $1.key }.map { "arg \($0.key)=\($0.value)" }
        lines += metadata.keyLines
        return lines
    }
}
