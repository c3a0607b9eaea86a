// swift-tools-version: 6.1
// kiln's benchmarks: their own package, so `swift test` at the root never builds them.
// They drive the release `kiln` binary (built by `make bench`) against peer tools run side by
// side in the same process, and report medians and ratios.
import PackageDescription

let package = Package(
    name: "kiln-benchmarks",
    targets: [
        .executableTarget(name: "kiln-bench")
    ],
    swiftLanguageModes: [.v6]
)
