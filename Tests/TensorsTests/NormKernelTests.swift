import XCTest
@testable import Tensors

/// GroupNorm and LayerNorm through the blocked-sum and affine kernels (CTensorKernels) against torch
/// (fixtures/tensors/norm_kernels.safetensors, made by tools/make_norm_kernel_fixtures.py in float64):
/// groups spanning several 1024-element summation blocks plus a ragged tail, inputs with a mean far
/// from zero, a LayerNorm width that is not a multiple of 8; gradients as well.
/// Tolerance: |Δ| ≤ 1e-5·(|ref| + max|ref|) per element, as for the other op fixtures.
final class NormKernelTests: XCTestCase {
    var fixture: FixtureFile!

    override func setUpWithError() throws { fixture = try FixtureFile(named: "norm_kernels") }

    func testGroupNormOverSeveralSummationBlocksWithAnOffsetMean() throws {
        try checkCase(fixture, "group_norm_long", inputs: ["x", "w", "b"]) {
            try groupNorm($0["x"]!, groups: 4, weight: $0["w"]!, bias: $0["b"]!, eps: 1e-5)
        }
    }

    func testLayerNormOnARaggedWidth() throws {
        try checkCase(fixture, "layer_norm_771", inputs: ["x", "w", "b"]) {
            try layerNorm($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, eps: 1e-5)
        }
    }

    /// The same cases through the baseline (non-AVX2) kernels: the route a CPU without AVX2/FMA takes.
    func testEveryCaseWithTheBaselineKernels() throws {
        try withBaselineKernels {
            try testGroupNormOverSeveralSummationBlocksWithAnOffsetMean()
            try testLayerNormOnARaggedWidth()
        }
    }
}
