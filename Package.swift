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
        // For the fuzz harnesses (fuzz/Package.swift), which read its data and configuration files.
        .library(name: "SDSTraining", targets: ["SDSTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // YAML (and JSON) fine-tune configurations.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C libraries from Debian packages (scripts/install-deps.sh installs them).
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CImageCodecs", path: "Sources/CImageCodecs"),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive"),
        // Open MPI (libopenmpi-dev) for `mpirun -np N sdsclip finetune`: linked always, initialised only under mpirun.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // oneDNN (libdnnl-dev): bf16 matmuls and convolutions where the CPU has AMX (BFloat16Matrix,
        // OneDNNConvolution), measured in tools/bench/README.md.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),

        .target(name: "WeightsIO", dependencies: ["CZlib"]),
        // Row kernels (softmax exp) with runtime AVX2/FMA dispatch; the package stays baseline x86-64.
        .target(name: "CTensorKernels"),
        // oneDNN's bf16 convolutions (forward, backward-data) with their layout reorders kept in C.
        .target(name: "CDNNLShim", dependencies: ["CDNNL"]),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CTensorKernels", "CDNNL", "CDNNLShim"]),
        // setjmp-based error handling for libjpeg/libpng, which Swift cannot express.
        .target(name: "CImageShim",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),
        // WeightsIO for its atomic file writer (PNG output).
        .target(name: "Imaging", dependencies: ["CImageCodecs", "CImageShim", "CZlib", "WeightsIO"]),
        // WeightsIO for its JSON parser (a model folder's vocab.json, errors with their byte offset).
        .target(name: "Models", dependencies: ["Tensors", "CZlib", "WeightsIO"], resources: [.copy("Resources")]),
        // Pure name/shape rules between checkpoint layouts: no tensors, no files.
        .target(name: "Layouts"),
        // Imaging for the preprocessing an exported model's processor config describes.
        .target(name: "Checkpoints", dependencies: ["WeightsIO", "Tensors", "Models", "Layouts", "Imaging"]),
        // Evaluation for `finetune --eval` (the same scoring as `sdsclip eval`).
        .target(name: "SDSTraining", dependencies: ["Checkpoints", "Models", "Tensors", "Imaging", "WeightsIO", "CArchive", "Evaluation",
                                                   .product(name: "Yams", package: "Yams")]),
        .target(name: "Evaluation", dependencies: ["Checkpoints", "Models", "Tensors", "Imaging", "WeightsIO"]),
        // MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are C macros Swift cannot import: functions over them.
        .target(name: "CMPIShim", dependencies: ["CMPI"]),
        // The MPI process group of a data-parallel fine-tune (SDSTraining itself never links MPI).
        .target(name: "DataParallel", dependencies: ["SDSTraining", "CMPIShim"]),
        .executableTarget(
            name: "sdsclip",
            dependencies: [
                "WeightsIO", "Tensors", "Models", "Checkpoints", "Imaging", "SDSTraining", "Evaluation", "DataParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "sdsclip-bench", dependencies: ["WeightsIO", "Tensors", "Models", "Checkpoints", "Imaging", "SDSTraining", "Evaluation"],
                          path: "Sources/sdsclip-bench"),

        .testTarget(name: "WeightsIOTests", dependencies: ["WeightsIO"]),
        .testTarget(name: "LayoutsTests", dependencies: ["Layouts"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "WeightsIO"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Tensors", "WeightsIO"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "WeightsIO", "Models", "Tensors"]),
        .testTarget(name: "SDSTrainingTests", dependencies: ["SDSTraining", "Imaging", "Checkpoints", "Models", "Tensors", "WeightsIO"]),
        // ExampleDataWriter writes the example world's test-swaps for the Winoground-style reader.
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Checkpoints", "Models", "Imaging", "WeightsIO", "SDSTraining"]),
        // Runs the built executable: exit statuses, messages, files left behind.
        .testTarget(name: "CLITests", dependencies: ["sdsclip"]),
    ]
)
