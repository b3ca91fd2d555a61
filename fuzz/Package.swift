// swift-tools-version: 6.0
import PackageDescription

// libFuzzer harnesses for sdsclip's parsers. Built by tools/fuzz.sh with
// `swift build -c release -Xswiftc -sanitize=fuzzer,address` (one comma list: with two
// `-sanitize` flags swiftc keeps only the last); each executable is a libFuzzer binary
// whose entry point is `LLVMFuzzerTestOneInput`. Kept out of the main package so a normal build never
// needs the sanitizer runtimes.
let package = Package(
    name: "sdsclip-fuzz",
    dependencies: [.package(name: "sdsclip", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "WeightsIO", package: "sdsclip")]),
        .executableTarget(name: "fuzz-safetensors", dependencies: ["FuzzSupport", .product(name: "WeightsIO", package: "sdsclip")]),
        .executableTarget(name: "fuzz-zip", dependencies: ["FuzzSupport", .product(name: "WeightsIO", package: "sdsclip")]),
        .executableTarget(name: "fuzz-pickle", dependencies: ["FuzzSupport", .product(name: "WeightsIO", package: "sdsclip")]),
        .executableTarget(name: "fuzz-torchscript", dependencies: ["FuzzSupport", .product(name: "WeightsIO", package: "sdsclip")]),
        .executableTarget(name: "fuzz-config", dependencies: [
            "FuzzSupport", .product(name: "WeightsIO", package: "sdsclip"),
            .product(name: "Models", package: "sdsclip"), .product(name: "Checkpoints", package: "sdsclip"),
            .product(name: "SDSTraining", package: "sdsclip"),
        ]),
        .executableTarget(name: "fuzz-vocabulary", dependencies: [
            "FuzzSupport", .product(name: "Models", package: "sdsclip"),
        ]),
    ]
)
