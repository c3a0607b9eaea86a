// swift-tools-version: 6.1
// kiln: a content-addressed build cache and image factory.
// The C libraries come in as system-library targets; only the module wrapping one imports it.
import PackageDescription

let package = Package(
    name: "kiln",
    platforms: [.macOS(.v15)],
    // One product: the modules share their API through `package` access, not `public`, so
    // nothing outside this package links against them.
    products: [
        .executable(name: "kiln", targets: ["kiln"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CArchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"]), .brew(["libarchive"])]),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]),

        .target(name: "KilnCore", dependencies: ["COpenSSL"]),
        .target(name: "KilnOCI", dependencies: ["KilnCore"]),
        .target(name: "KilnLayers", dependencies: ["KilnCore", "KilnOCI", "CArchive", "CZlib"]),
        .target(name: "KilnStore", dependencies: ["KilnCore", "KilnOCI"]),
        .target(
            name: "KilnRegistry",
            dependencies: [
                "KilnCore", "KilnOCI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_NIOFileSystem", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "KilnDockerfile", dependencies: ["KilnCore"]),
        .target(
            name: "KilnBuild",
            dependencies: ["KilnCore", "KilnOCI", "KilnLayers", "KilnStore", "KilnRegistry", "KilnDockerfile"]),
        .target(name: "KilnPin", dependencies: ["KilnCore", .product(name: "Yams", package: "Yams")]),
        .target(
            name: "KilnProcessors",
            dependencies: ["KilnCore", "KilnOCI", "KilnDockerfile", "KilnPin", .product(name: "Yams", package: "Yams")]),
        .target(
            name: "KilnLane",
            dependencies: [
                "KilnCore", "KilnOCI", "KilnStore", "KilnRegistry", "KilnDockerfile", "KilnBuild", "KilnPin",
                "KilnProcessors",
            ]),
        .target(name: "KilnBench", dependencies: ["KilnCore", "KilnProcessors", "KilnLane"]),
        .executableTarget(
            name: "kiln",
            dependencies: [
                "KilnCore", "KilnOCI", "KilnLayers", "KilnStore", "KilnRegistry", "KilnDockerfile", "KilnBuild",
                "KilnPin", "KilnProcessors", "KilnLane", "KilnBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .target(name: "KilnTestSupport", path: "Tests/KilnTestSupport"),
        .testTarget(name: "KilnCoreTests", dependencies: ["KilnCore", "KilnTestSupport"]),
        .testTarget(name: "KilnOCITests", dependencies: ["KilnOCI", "KilnCore", "KilnTestSupport"]),
        .testTarget(name: "KilnLayersTests", dependencies: ["KilnLayers", "KilnStore", "KilnOCI", "KilnTestSupport"]),
        .testTarget(name: "KilnStoreTests", dependencies: ["KilnStore", "KilnOCI", "KilnTestSupport"]),
        .testTarget(name: "KilnRegistryTests", dependencies: ["KilnRegistry"]),
        .testTarget(
            name: "KilnDockerfileTests", dependencies: ["KilnDockerfile", "KilnCore"], exclude: ["Conformance"]),
        .testTarget(name: "KilnPinTests", dependencies: ["KilnPin"]),
        .testTarget(
            name: "KilnBuildTests",
            dependencies: [
                "KilnBuild", "KilnCore", "KilnDockerfile", "KilnLayers", "KilnOCI", "KilnStore", "KilnTestSupport",
            ],
            exclude: ["Traces"]),
        .testTarget(
            name: "KilnProcessorsTests", dependencies: ["KilnProcessors", "KilnCore", "KilnOCI", "KilnTestSupport"]),
        .testTarget(
            name: "KilnLaneTests",
            dependencies: [
                "KilnLane", "KilnBuild", "KilnCore", "KilnLayers", "KilnOCI", "KilnProcessors", "KilnRegistry",
                "KilnStore",
            ]),
        .testTarget(
            name: "KilnBenchTests", dependencies: ["KilnBench", "KilnLane", "KilnProcessors", "KilnTestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "KilnCore", "KilnOCI", "KilnLayers", "KilnStore", "KilnRegistry", "KilnBuild", "KilnLane",
                "KilnTestSupport",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
