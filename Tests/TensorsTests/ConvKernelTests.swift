import XCTest
@testable import Tensors

/// Stride-1 convolutions from 16 channels up (3×3 by Winograd F(2×2, 3×3), other kernels as shifted
/// GEMMs on a padded image, and the same cases through im2col) against torch's
/// conv2d (fixtures/tensors/conv_kernels.safetensors, made by tools/make_conv_kernel_fixtures.py in
/// float64): several images, rectangular kernels, asymmetric padding, no bias, accumulator tiles of one
/// row and of the whole image, one and three workers; gradients as well.
/// Tolerance: |Δ| ≤ 1e-5·(|ref| + max|ref|) per element, as for the other op fixtures.
final class ConvKernelTests: XCTestCase {
    var fixture: FixtureFile!

    override func setUpWithError() throws { fixture = try FixtureFile(named: "conv_kernels") }

    /// Runs `body` with every combination of algorithm (the fast paths forced on for these small images,
    /// and im2col forced), worker count and accumulator budget (1 << 23 is the default; 1 forces one
    /// output row per tile).
    private func acrossTilingsAndThreads(_ body: (Int, ConvRouting) throws -> Void) rethrows {
        let savedThreads = Threading.threadCount
        defer { Threading.setThreadCount(savedThreads) }
        for routing in [ConvRouting.fastPaths, .im2colOnly] {
            for threads in [1, 3] {
                Threading.setThreadCount(threads)
                for budget in [1 << 23, 1] { try body(budget, routing) }
            }
        }
    }

    func testThreeByThreeOverSeveralImages() throws {
        try acrossTilingsAndThreads { budget, routing in
            try checkCase(fixture, "c16_3x3_p1", inputs: ["x", "w", "b"]) {
                try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: (1, 1), padding: .uniform(1), columnBudget: budget, routing: routing)
            }
        }
    }

    func testThreeByThreeOnRowsOfManyTilesWithAsymmetricPadding() throws {
        try acrossTilingsAndThreads { budget, routing in
            try checkCase(fixture, "c16_3x3_wide_asym", inputs: ["x", "w", "b"]) {
                try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: (1, 1),
                           padding: Padding2D(top: 1, bottom: 0, left: 0, right: 2), columnBudget: budget, routing: routing)
            }
        }
    }

    func testRectangularKernelWithAsymmetricPaddingAndNoBias() throws {
        try acrossTilingsAndThreads { budget, routing in
            try checkCase(fixture, "c24_rect_asym", inputs: ["x", "w"]) {
                try conv2d($0["x"]!, weight: $0["w"]!, bias: nil, stride: (1, 1),
                           padding: Padding2D(top: 0, bottom: 1, left: 2, right: 0), columnBudget: budget, routing: routing)
            }
        }
    }

    func testFiveByFiveKernelWiderThanTheImage() throws {
        try acrossTilingsAndThreads { budget, routing in
            try checkCase(fixture, "c32_5x5_p2", inputs: ["x", "w", "b"]) {
                try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: (1, 1), padding: .uniform(2), columnBudget: budget, routing: routing)
            }
        }
    }

    /// The same cases through the baseline (non-AVX2) kernels: the route a CPU without AVX2/FMA takes.
    func testEveryCaseWithTheBaselineKernels() throws {
        try withBaselineKernels {
            try testThreeByThreeOverSeveralImages()
            try testThreeByThreeOnRowsOfManyTilesWithAsymmetricPadding()
            try testRectangularKernelWithAsymmetricPaddingAndNoBias()
            try testFiveByFiveKernelWiderThanTheImage()
        }
    }
}
