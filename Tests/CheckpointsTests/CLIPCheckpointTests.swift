import Foundation
import XCTest
@testable import Checkpoints
import Layouts
import Models
import Tensors
import WeightsIO

/// CLIP parity against bundles produced by transformers and open_clip from the fixture models
/// (tools/make_clip_fixtures.py), in every layout each model is saved in.
final class CLIPCheckpointTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func fixture(_ path: String) -> String { root.appendingPathComponent("fixtures/clip/\(path)").path }

    /// The bar: relative error ≤ 1e-4 on embeddings and logits.
    let tolerance = Tolerance(absolute: 0, relative: 1e-4)

    func assertVerifies(_ model: String, _ bundle: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let report = try ModelVerifier.verify(model: Self.fixture(model), bundlePath: Self.fixture(bundle), tolerance: tolerance)
        XCTAssertEqual(report.comparisons.map(\.name).sorted(), ["image_embeds", "logits_per_image", "text_embeds"], file: file, line: line)
        for c in report.comparisons {
            XCTAssertTrue(c.passed, "\(model) \(c.name): max-abs \(c.maxAbsoluteError), relative \(c.relativeError)", file: file, line: line)
            XCTAssertLessThanOrEqual(c.relativeError, 1e-4, file: file, line: line)
        }
    }

    func testTransformersFolderSafetensorsAndBin() throws {
        try assertVerifies("hf", "hf.reference.safetensors")
        try assertVerifies("hf/model.safetensors", "hf.reference.safetensors")
        try assertVerifies("hf/pytorch_model.bin", "hf.reference.safetensors")
    }

    func testTransformersGELUWithMixedPrecisionFile() throws {
        try assertVerifies("hf_gelu_fp16mix", "hf_gelu_fp16mix.reference.safetensors")
        try assertVerifies("hf_gelu_fp16mix/pytorch_model.bin", "hf_gelu_fp16mix.reference.safetensors")
    }

    func testOpenCLIPQuickGELU() throws {
        try assertVerifies("openclip_quickgelu", "openclip_quickgelu.reference.safetensors")
        try assertVerifies("openclip_quickgelu/open_clip_pytorch_model.bin", "openclip_quickgelu.reference.safetensors")
    }

    func testOpenCLIPGELUAndDataParallelPrefix() throws {
        try assertVerifies("openclip_gelu/open_clip_model.safetensors", "openclip_gelu.reference.safetensors")
        // The .bin keys all start with `module.` (a DataParallel save).
        try assertVerifies("openclip_gelu/open_clip_pytorch_model.bin", "openclip_gelu.reference.safetensors")
    }

    func testOpenAITorchScriptArchiveAndStateDict() throws {
        try assertVerifies("openai_jit/ViT-tiny.pt", "openai_jit.reference.safetensors")
        try assertVerifies("openai_jit/ViT-tiny-state-dict.pt", "openai_jit.reference.safetensors")
    }

    func testWrongActivationIsCaughtByVerification() throws {
        // The GELU model forced to QuickGELU must fail: activation is not in the weights, so this
        // shows the comparison is sensitive to it.
        let loaded = try CLIPLoader.load(Self.fixture("openclip_gelu"), activation: .quickGELU)
        let bundle = try ReferenceBundle(path: Self.fixture("openclip_gelu.reference.safetensors"))
        let text = try withNoGrad { try loaded.model.encodeText(bundle.idRows("input_ids")) }
        let comparison = tolerance.compare(name: "text_embeds", computed: text, expected: try bundle.expected("text_embeds"))
        XCTAssertFalse(comparison.passed)
        XCTAssertGreaterThan(comparison.relativeError, 1e-3)
    }

    func testUnknownSizeWithoutConfigurationIsRefusedWithAdvice() throws {
        let store = try WeightsReader.open(Self.fixture("openclip_quickgelu/open_clip_model.safetensors"))
        let (_, tensors) = try CLIPLoader.canonicalTensors(store, file: "x")
        XCTAssertThrowsError(try CLIPArchitecture.infer(tensors.mapValues(\.shape), file: "x")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("unknown CLIP size"), text)
            XCTAssertTrue(text.contains("--config"), text)
        }
    }

    func testNotACLIPCheckpoint() throws {
        XCTAssertThrowsError(try CLIPLoader.load(Self.root.appendingPathComponent("fixtures/clip/hf.reference.safetensors").path)) { error in
            XCTAssertTrue("\(error)".contains("not a CLIP checkpoint"), "\(error)")
        }
    }
}
