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

    /// The same cases through the baseline (non-AVX2) kernels: the route a CPU without AVX2/FMA takes.
    func testEveryCaseWithTheBaselineKernels() throws {
        try withBaselineKernels {
            try testHeadDepth40AcrossChunkSizesAndThreadCounts()
            try testValueDepthDiffersFromKeyDepthWithAdditiveMask()
            try testCausalDepth80WithPeakedRows()
            try testValueDepthNotAMultipleOfEightUsesTheGEMMRoute()
        }
    }
}
