// swift-tools-version: 6.0
import PackageDescription

// Release-grade numeric code: unchecked arithmetic is never enabled globally; hot loops use
// &+ / unsafe buffers locally where profiling says so.
let package = Package(
    name: "sdsclip",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sdsclip", targets: ["sdsclip"]),
        .library(name: "WeightsIO", targets: ["WeightsIO"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Layouts", targets: ["Layouts"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries from Debian packages (scripts/install-deps.sh installs them).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs"),

        .target(name: "WeightsIO", dependencies: ["CZlib"]),
        // Row kernels (softmax exp) with runtime AVX2/FMA dispatch; the package stays baseline x86-64.
        .target(name: "CTensorKernels"),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CTensorKernels"]),
        // setjmp-based error handling for libjpeg/libpng, which Swift cannot express.
        .target(name: "CImageShim",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),
        .target(name: "Imaging", dependencies: ["CImageCodecs", "CImageShim"]),
        .target(name: "Models", dependencies: ["Tensors", "CZlib"], resources: [.copy("Resources")]),
        // Pure name/shape rules between checkpoint layouts: no tensors, no files.
        .target(name: "Layouts"),
        .target(name: "Checkpoints", dependencies: ["WeightsIO", "Tensors", "Models", "Layouts"]),
        .target(name: "SDSTraining", dependencies: ["Checkpoints", "Models", "Tensors", "Imaging"]),
        .target(name: "Evaluation", dependencies: ["Checkpoints", "Models", "Tensors", "Imaging"]),
        .executableTarget(
            name: "sdsclip",
            dependencies: [
                "WeightsIO", "Tensors", "Models", "Checkpoints", "Imaging", "SDSTraining", "Evaluation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "sdsclip-bench", dependencies: ["WeightsIO", "Tensors", "Models", "Checkpoints", "Imaging", "SDSTraining"],
                          path: "Sources/sdsclip-bench"),

        .testTarget(name: "WeightsIOTests", dependencies: ["WeightsIO"]),
        .testTarget(name: "LayoutsTests", dependencies: ["Layouts"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "WeightsIO"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Tensors", "WeightsIO"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "WeightsIO", "Models", "Tensors"]),
        .testTarget(name: "SDSTrainingTests", dependencies: ["SDSTraining", "Checkpoints", "Models", "Tensors", "WeightsIO"]),
        // Runs the built executable: exit statuses, messages, files left behind.
        .testTarget(name: "CLITests", dependencies: ["sdsclip"]),
    ]
)
