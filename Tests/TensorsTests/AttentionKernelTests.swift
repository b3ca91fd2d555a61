import XCTest
@testable import Tensors

/// The blocked attention kernels (CTensorKernels, AVX2/FMA when the CPU has it) against torch's
/// scaled_dot_product_attention (fixtures/tensors/attention_kernels.safetensors, made by
/// tools/make_attention_kernel_fixtures.py in float64). The shapes reach every register-block and
/// tail path; gradients go through the backward pass as well.
/// Tolerance: |Δ| ≤ 1e-5·(|ref| + max|ref|) per element, as for the other op fixtures.
final class AttentionKernelTests: XCTestCase {
    var fixture: FixtureFile!

    override func setUpWithError() throws { fixture = try FixtureFile(named: "attention_kernels") }

    func testHeadDepth40AcrossChunkSizesAndThreadCounts() throws {
        let saved = Threading.threadCount
        defer { Threading.setThreadCount(saved) }
        for threads in [1, 3] {
            Threading.setThreadCount(threads)
            for chunk in [nil, 4, 7] {
                try checkCase(fixture, "d40", inputs: ["q", "k", "v"]) { try attention($0["q"]!, $0["k"]!, $0["v"]!, queryChunk: chunk) }
            }
        }
    }

    func testValueDepthDiffersFromKeyDepthWithAdditiveMask() throws {
        let mask = try fixture.tensor("d64_v24_mask.input.mask")
        try checkCase(fixture, "d64_v24_mask", inputs: ["q", "k", "v"]) {
            try attention($0["q"]!, $0["k"]!, $0["v"]!, mask: .additive(mask))
        }
    }

    func testCausalDepth80WithPeakedRows() throws {
        try checkCase(fixture, "d80_causal", inputs: ["q", "k", "v"]) {
            try attention($0["q"]!, $0["k"]!, $0["v"]!, mask: .causal)
        }
    }

    func testValueDepthNotAMultipleOfEightUsesTheGEMMRoute() throws {
        try checkCase(fixture, "d12_short", inputs: ["q", "k", "v"]) { try attention($0["q"]!, $0["k"]!, $0["v"]!) }
    }

    func runEveryCase() throws {
        try testHeadDepth40AcrossChunkSizesAndThreadCounts()
        try testValueDepthDiffersFromKeyDepthWithAdditiveMask()
        try testCausalDepth80WithPeakedRows()
        try testValueDepthNotAMultipleOfEightUsesTheGEMMRoute()
    }

    /// The same cases through the baseline (non-AVX2) kernels: the route a CPU without AVX2/FMA takes.
    func testEveryCaseWithTheBaselineKernels() throws {
        try withBaselineKernels { try runEveryCase() }
    }

    /// On an AVX-512 machine the default route is the AVX-512 build; this checks the AVX2 build too.
    func testEveryCaseWithTheAVX2Kernels() throws {
        try XCTSkipIf(kernelLevel < 2, "the default run already uses the AVX2 kernels (or the CPU has none)")
        try withKernelLevel(1) { try runEveryCase() }
    }

    /// Backward through the per-head kernels (one worker) and through split GEMMs (more workers than
    /// heads) give the same gradients within rounding.
    func testBackwardRoutesAgree() throws {
        let saved = Threading.threadCount
        defer { Threading.setThreadCount(saved) }
        let q = Tensor.randn(shape: [1, 2, 37, 40], seed: 1), k = Tensor.randn(shape: [1, 2, 77, 40], seed: 2)
        let v = Tensor.randn(shape: [1, 2, 77, 40], seed: 3), g = Tensor.randn(shape: [1, 2, 37, 40], seed: 4)
        func gradients(threads: Int) throws -> [Tensor] {
            Threading.setThreadCount(threads)
            let inputs = [q, k, v].map { Parameter($0, name: "x") }
            try attention(inputs[0].tensor, inputs[1].tensor, inputs[2].tensor, queryChunk: 16).backward(gradient: g)
            return try inputs.map { try XCTUnwrap($0.grad) }
        }
        let kernels = try gradients(threads: 1), gemms = try gradients(threads: 3)
        for (a, b) in zip(kernels, gemms) { XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 1e-5) }
    }
}
