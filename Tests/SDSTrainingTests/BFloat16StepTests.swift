import Foundation
import XCTest
@testable import Checkpoints
@testable import SDSTraining
import Models
import Tensors

/// `--precision bf16` on the SDS step and the forward components: within `Tolerance.bfloat16` of torch in
/// float32 (fixtures/sds) and of torch's CPU autocast on the same inputs (fixtures/bf16,
/// tools/make_bf16_fixtures.py). On a CPU without AVX512-BF16 this runs the emulated route, the same
/// numbers as the bf16 kernels up to float32 summation order.
final class BFloat16StepTests: XCTestCase {
    static let root = SDSStepParityTests.root
    static let bf16 = Precision.bf16.resolved()

    func verify(_ bundlePath: String, precision: PrecisionChoice, tolerance: Tolerance) throws -> ModelVerifier.Report {
        let bundle = try ReferenceBundle(path: bundlePath)
        let clip = try XCTUnwrap(bundle.metadata["clip"]), teacher = try XCTUnwrap(bundle.metadata["teacher"])
        let options = ModelVerifier.Options(teacher: Self.root.appendingPathComponent(teacher).path, tolerance: tolerance, precision: precision)
        return try ModelVerifier.verify(model: Self.root.appendingPathComponent(clip).path, bundlePath: bundlePath,
                                        options: options, runners: SDSStepRunner.runners)
    }

    func fixture(_ relative: String) -> String { Self.root.appendingPathComponent(relative).path }

    func assertPasses(_ report: ModelVerifier.Report, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        for c in report.comparisons {
            XCTAssertTrue(c.passed, "\(label) \(c.name): relative \(c.relativeError), max-abs \(c.maxAbsoluteError)", file: file, line: line)
        }
    }

    func testStepIsWithinTheBFloat16ToleranceOfTorchFloat32AndAutocast() throws {
        for name in ["sd1_pooled_full", "sd1_pooled_sds", "sd2_tokens_full", "sd2v_pooled_full"] {
            let fp32 = try verify(fixture("fixtures/sds/\(name).safetensors"), precision: Self.bf16, tolerance: .bfloat16)
            assertPasses(fp32, "\(name) vs torch fp32")
            XCTAssertTrue(fp32.notes.contains { $0.contains("frozen matrices in bf16") }, "\(fp32.notes)")
            XCTAssertTrue(fp32.notes.contains { $0.hasPrefix("not compared") && $0.contains("updated.*") }, "\(fp32.notes)")
            XCTAssertTrue(fp32.comparisons.contains { $0.name == "grad.latent_map.weight" })
            XCTAssertFalse(fp32.comparisons.contains { $0.name.hasPrefix("updated.") })
            let autocast = try verify(fixture("fixtures/bf16/\(name)_autocast.safetensors"), precision: Self.bf16, tolerance: .bfloat16Autocast)
            assertPasses(autocast, "\(name) vs torch autocast")
        }
    }

    /// The check discriminates: bf16 is really on (it misses float32's 1e-4 bound), and the autocast
    /// references really differ from float32 ones (float32 Swift misses them at 1e-4 too).
    func testBFloat16IsReallyInEffect() throws {
        let strict = Tolerance(absolute: 1e-7, relative: 1e-4)
        let bf16 = try verify(fixture("fixtures/sds/sd1_pooled_full.safetensors"), precision: Self.bf16, tolerance: strict)
        XCTAssertFalse(bf16.passed, "bf16 compute matched float32 to 1e-4: the bf16 path did not run")
        let fp32 = try verify(fixture("fixtures/bf16/sd1_pooled_full_autocast.safetensors"), precision: .fp32, tolerance: strict)
        XCTAssertFalse(fp32.passed, "the autocast reference equals the float32 one")
    }

    /// Forward bundles of every component take `--precision bf16` too.
    func testForwardComponentsInBFloat16() throws {
        let runners = ModelVerifier.standardRunners
        let cases: [(model: String, bundle: String)] = [
            ("fixtures/clip/hf", "fixtures/clip/hf.reference.safetensors"),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/unet_sd1.reference.safetensors"),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/vae_encoder.reference.safetensors"),
            ("fixtures/sd/sd1_diffusers", "fixtures/sd/text_sd1.reference.safetensors"),
        ]
        for (model, bundle) in cases {
            let report = try ModelVerifier.verify(model: fixture(model), bundlePath: fixture(bundle),
                                                  options: ModelVerifier.Options(tolerance: .bfloat16, precision: Self.bf16), runners: runners)
            assertPasses(report, bundle)
        }
    }

    /// Without bf16 units `auto` is float32: the same results as the float32 path, to the float32 bound.
    func testAutoWithoutBFloat16UnitsIsFloat32() throws {
        let report = try verify(fixture("fixtures/sds/sd1_pooled_full.safetensors"), precision: Precision.auto.resolved(hasBFloat16Units: false),
                                tolerance: SDSStepParityTests.tolerance)
        assertPasses(report, "auto on a CPU without AVX512-BF16")
    }
}
