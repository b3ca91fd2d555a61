import Foundation
import XCTest
@testable import Checkpoints
@testable import SDSTraining
import Models
import Tensors
import WeightsIO

/// One SDS-CLIP step against torch (tools/make_sds_fixtures.py: transformers CLIPModel + diffusers UNet
/// on the tiny fixtures, fixed inputs, noise and timesteps): L_CLIP, L_SDS, L, the gradient of every
/// trainable parameter and the parameters after one AdamW step, each within 1e-4 of the largest
/// reference magnitude (the bound; observed ≤ 4e-5), plus 1e-7 absolute for the attention key
/// biases, whose gradients are zero in exact arithmetic (rounding noise ~1e-9 on both sides).
final class SDSStepParityTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let tolerance = Tolerance(absolute: 1e-7, relative: 1e-4)

    static func bundlePath(_ name: String) -> String { root.appendingPathComponent("fixtures/sds/\(name).safetensors").path }

    func verify(_ name: String) throws -> ModelVerifier.Report {
        let bundle = try ReferenceBundle(path: Self.bundlePath(name))
        let clip = try XCTUnwrap(bundle.metadata["clip"]), teacher = try XCTUnwrap(bundle.metadata["teacher"])
        let options = ModelVerifier.Options(teacher: Self.root.appendingPathComponent(teacher).path, tolerance: Self.tolerance)
        return try ModelVerifier.verify(model: Self.root.appendingPathComponent(clip).path, bundlePath: Self.bundlePath(name),
                                        options: options, runners: SDSStepRunner.runners)
    }

    func testEveryBundleMatchesTorch() throws {
        let bundles = ["sd1_pooled_full", "sd1_pooled_sds", "sd1_tokens_full", "sd1_tokens_sds",
                       "sd2_pooled_full", "sd2_pooled_sds", "sd2_tokens_full", "sd2_tokens_sds",
                       "sd1_pooled_full_all", "sd1_tokens_full_layernorm-image", "sd2v_pooled_full", "demo_pooled_full"]
        for name in bundles {
            let report = try verify(name)
            let names = Set(report.comparisons.map(\.name))
            XCTAssertTrue(names.isSuperset(of: ["loss_clip", "loss_sds", "loss", "grad.latent_map.weight", "grad.latent_map.bias",
                                                "updated.latent_map.weight"]), name)
            for comparison in report.comparisons {
                XCTAssertTrue(comparison.passed, "\(name) \(comparison.name): relative \(comparison.relativeError)")
            }
        }
    }

    /// Every trainable parameter of the set has a reference gradient, and no other parameter does.
    func testTrainableSetsNameExactlyTheirParameters() throws {
        let expected: [(String, Int)] = [("sd1_pooled_full", 22), ("sd1_tokens_full_layernorm-image", 12), ("sd1_pooled_full_all", 78)]
        for (name, clipCount) in expected {
            let bundle = try ReferenceBundle(path: Self.bundlePath(name))
            let gradients = bundle.outputNames.filter { $0.hasPrefix("grad.") && !$0.hasPrefix("grad.latent_map.") }
            XCTAssertEqual(gradients.count, clipCount, name)
            let report = try verify(name)
            XCTAssertEqual(Set(report.computed.keys.filter { $0.hasPrefix("grad.") && !$0.hasPrefix("grad.latent_map.") }), Set(gradients), name)
        }
    }

    /// The check discriminates: the two gradient modes give the same losses but latent-map gradients
    /// that differ far beyond the tolerance, so a mode mix-up cannot pass.
    func testGradientModesDiffer() throws {
        let full = try ReferenceBundle(path: Self.bundlePath("sd1_pooled_full"))
        let sds = try ReferenceBundle(path: Self.bundlePath("sd1_pooled_sds"))
        let comparison = Self.tolerance.compare(name: "grad.latent_map.weight", computed: try sds.expected("grad.latent_map.weight"),
                                                expected: try full.expected("grad.latent_map.weight"))
        XCTAssertFalse(comparison.passed)
        XCTAssertGreaterThan(comparison.relativeError, 0.1)
    }

    func testStepBundleWithoutTeacherIsAClearError() throws {
        XCTAssertThrowsError(try ModelVerifier.verify(model: Self.root.appendingPathComponent("fixtures/clip/hf").path,
                                                      bundlePath: Self.bundlePath("sd1_pooled_full"), options: ModelVerifier.Options(),
                                                      runners: SDSStepRunner.runners)) { error in
            XCTAssertTrue("\(error)".contains("--teacher"), "\(error)")
        }
    }

    /// The tokens map puts token (i, j)'s outputs at its s×s block; with G = 5 and h = 8, s = 2 and the
    /// 10×10 grid is cropped to its top-left 8×8.
    func testTokensMapLayoutAndCrop() throws {
        let map = try LatentMap(kind: .tokens, side: 8, inputWidth: 3, grid: 5, seed: 1)
        XCTAssertEqual(map.cellsPerToken, 2)
        XCTAssertEqual(map.weight.shape, [16, 3])
        let tokens = try Tensor(shape: [1, 25, 3], data: (0..<75).map { Float($0 % 7) })
        let z = try withNoGrad { try map(tokens) }
        XCTAssertEqual(z.shape, [1, 4, 8, 8])
        let mapped = try withNoGrad { try linear(tokens, weight: map.weight.tensor, bias: map.bias.tensor) }.scalars
        // Cell (c=2, y=5, x=3): token (2, 1), inner (1, 1) → output index 2·4 + 1·2 + 1 = 11 of token 11.
        XCTAssertEqual(z.scalars[2 * 64 + 5 * 8 + 3], mapped[11 * 16 + 11])
    }
}
