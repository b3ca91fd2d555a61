import Foundation
import XCTest
@testable import Models
import Tensors
import WeightsIO

/// Schedule, timestep-embedding and configuration checks against values diffusers / LDM computed
/// (fixtures/sd/schedule.reference.safetensors, the fixture config.json files, models.md §3).
final class StableDiffusionModelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func fixture(_ path: String) -> String { root.appendingPathComponent("fixtures/sd/\(path)").path }

    func reference() throws -> WeightStore { try SafetensorsReader.read(path: Self.fixture("schedule.reference.safetensors")) }

    func doubles(_ store: WeightStore, _ name: String) throws -> [Double] {
        let record = try XCTUnwrap(store[name], name)
        let bytes = try StridedGather.packedBytes(of: record, file: "schedule")
        return bytes.withUnsafeBytes { raw in
            switch record.dtype {
            case .f64: return raw.bindMemory(to: Double.self).map { $0 }
            case .f32: return raw.bindMemory(to: Float.self).map { Double($0) }
            case .i64: return raw.bindMemory(to: Int64.self).map { Double($0) }
            default: return []
            }
        }
    }

    func testFloat64ScheduleMatchesLDM() throws {
        let store = try reference()
        let schedule = try NoiseSchedule(precision: .float64)
        let betas = try doubles(store, "betas.float64"), alphaBars = try doubles(store, "alphas_cumprod.float64")
        XCTAssertEqual(schedule.betas.count, 1000)
        for t in 0..<1000 {
            XCTAssertEqual(schedule.betas[t], betas[t], accuracy: 1e-15 * max(1, betas[t]), "β[\(t)]")
            XCTAssertEqual(schedule.alphasCumprod[t] / alphaBars[t], 1, accuracy: 1e-12, "ᾱ[\(t)]")
        }
        // models.md §3.9 check values.
        XCTAssertEqual(try schedule.alphaBar(499), 0.2776696505, accuracy: 1e-9)
        XCTAssertEqual(try schedule.alphaBar(981), 0.0057755001, accuracy: 1e-9)
        XCTAssertEqual(schedule.betas[981], 0.0116847555, accuracy: 1e-9)
    }

    func testFloat32ScheduleMatchesDiffusers() throws {
        let store = try reference()
        let schedule = try NoiseSchedule(precision: .float32)
        let betas = try doubles(store, "betas.float32"), alphaBars = try doubles(store, "alphas_cumprod.float32")
        var worstBeta = 0.0, worstAlphaBar = 0.0
        for t in 0..<1000 {
            worstBeta = max(worstBeta, abs(schedule.betas[t] - betas[t]) / betas[t])
            worstAlphaBar = max(worstAlphaBar, abs(schedule.alphasCumprod[t] - alphaBars[t]) / alphaBars[t])
        }
        // Same float32 operations; torch's vectorised linspace rounds its step products differently, so
        // betas agree to a few ulps (measured 3.1e-7), and the cumulative product to 1e-5.
        XCTAssertLessThanOrEqual(worstBeta, 4.8e-7)
        XCTAssertLessThanOrEqual(worstAlphaBar, 1e-5)
    }

    func testTimestepEmbeddingMatchesDiffusers() throws {
        let store = try reference()
        let timesteps = try doubles(store, "timestep_embedding.timesteps").map(Float.init)
        XCTAssertEqual(timesteps, [0, 1, 10, 500, 981, 999])
        let expected = try doubles(store, "timestep_embedding")
        let computed = try TimestepEmbedding.features(timesteps, width: 320).scalars
        XCTAssertEqual(computed.count, expected.count)
        // torch's vectorised expf may differ from libm by an ulp, which moves the argument t·f by an ulp of
        // t·f (up to 6e-5 at t = 999): allow 2 ulps of the argument plus 1e-6.
        for (index, (a, b)) in zip(computed, expected).enumerated() {
            let t = Double(timesteps[index / 320])
            XCTAssertEqual(Double(a), b, accuracy: 1e-6 + 2.4e-7 * t, "element \(index)")
        }
        // Small timesteps have small arguments, so there the agreement is tight.
        for index in 0..<(3 * 320) { XCTAssertEqual(Double(computed[index]), expected[index], accuracy: 1e-5) }
        // models.md §3.2 check values at t = 981 (row 4): cos first.
        XCTAssertEqual(computed[4 * 320 + 0], 0.67996, accuracy: 1e-4)
        XCTAssertEqual(computed[4 * 320 + 1], -0.79843, accuracy: 1e-4)
        XCTAssertEqual(computed[4 * 320 + 160], 0.73325, accuracy: 1e-4)
    }

    func testLeadingAndPNDMTimesteps() throws {
        let store = try reference()
        let schedule = try NoiseSchedule()
        XCTAssertEqual(try schedule.leadingTimesteps(count: 50).map(Double.init), try doubles(store, "ddim.timesteps"))
        XCTAssertEqual(try schedule.pndmTimesteps(count: 50).map(Double.init), try doubles(store, "pndm.timesteps"))
        XCTAssertThrowsError(try schedule.leadingTimesteps(count: 0))
        XCTAssertThrowsError(try schedule.alphaBar(1000))
    }

    func testPredictionHelpersInvertEachOther() throws {
        let schedule = try NoiseSchedule()
        let x0 = Tensor.randn(shape: [1, 4, 2, 2], seed: 1), noise = Tensor.randn(shape: [1, 4, 2, 2], seed: 2)
        let t = 500
        let noisy = try schedule.addNoise(x0, noise: noise, timestep: t)
        let fromEpsilon = try schedule.predictedSample(fromEpsilon: noise, sample: noisy, timestep: t)
        let v = try schedule.velocity(sample: x0, noise: noise, timestep: t)
        let fromVelocity = try schedule.predictedSample(fromVelocity: v, sample: noisy, timestep: t)
        let epsilonFromV = try schedule.epsilon(fromVelocity: v, sample: noisy, timestep: t)
        for (a, b) in zip(fromEpsilon.scalars, x0.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (a, b) in zip(fromVelocity.scalars, x0.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        for (a, b) in zip(epsilonFromV.scalars, noise.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testConfigurationsDecodeWithDiffusersDefaults() throws {
        let sd1 = try UNetConfiguration.read(Self.fixture("sd1_diffusers/unet/config.json"))
        XCTAssertEqual(sd1.blockOutChannels, [8, 12, 16])
        XCTAssertEqual(try sd1.heads(), [2, 2, 2])
        XCTAssertEqual(try sd1.crossAttentionDims(), [24, 24, 24])
        XCTAssertFalse(sd1.useLinearProjection)
        let sd2 = try UNetConfiguration.read(Self.fixture("sd2_diffusers/unet/config.json"))
        XCTAssertEqual(try sd2.heads(), [2, 3, 4])
        XCTAssertTrue(sd2.useLinearProjection)
        // An empty object is diffusers' default UNet: SD 1.x's blocks, but a 1280-wide text context
        // (UNet2DConditionModel's cross_attention_dim default), where SD 1.x uses 768.
        var defaults = try DiffusersConfigReader.decode(UNetConfiguration.self, from: Data("{}".utf8), file: "x")
        XCTAssertNil(defaults.sampleSize)
        XCTAssertEqual(try defaults.crossAttentionDims(), [1280, 1280, 1280, 1280])
        defaults.sampleSize = 64
        defaults.crossAttentionDim = .shared(768)
        XCTAssertEqual(defaults, UNetConfiguration.sd1)
        XCTAssertEqual(try UNetConfiguration.sd2.heads(), [5, 10, 20, 20])
        let vae = try AutoencoderConfiguration.read(Self.fixture("sd1_diffusers/vae/config.json"))
        XCTAssertEqual(vae.blockOutChannels, [8, 8, 16])
        XCTAssertEqual(vae.spatialFactor, 4)
        XCTAssertEqual(vae.scalingFactor, 0.18215)
    }

    func testInvalidConfigurationsAreRejected() throws {
        func check(_ json: String, mentions word: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try { () throws -> Void in
                let c = try DiffusersConfigReader.decode(UNetConfiguration.self, from: Data(json.utf8), file: "unet/config.json")
                try c.validate()
            }(), file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(word), "\(error)", file: file, line: line)
            }
        }
        check(#"{"attention_head_dim": [1, 2]}"#, mentions: "attention_head_dim")
        check(#"{"down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"]}"#, mentions: "AttnDownBlock2D")
        check(#"{"block_out_channels": [320, 640, 1280, 1270]}"#, mentions: "norm_num_groups")
        check(#"{"addition_embed_type": "text_time"}"#, mentions: "addition")
        check(#"{"layers_per_block": "two"}"#, mentions: "layers_per_block")
        check(#"{"in_channels": 4"#, mentions: "JSON")
    }

    func testUNetRejectsBadInputs() throws {
        let config = try UNetConfiguration.read(Self.fixture("sd1_diffusers/unet/config.json"))
        let model = try UNet2DConditionModel(RandomParameterSource(seed: 3), configuration: config)
        let context = Tensor(zeros: [1, 16, 24])
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 4, 6, 6]), timesteps: [1], context: context)) {
            XCTAssertTrue("\($0)".contains("multiples of 4"), "\($0)")
        }
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 4, 8, 8]), timesteps: [1], context: Tensor(zeros: [1, 16, 32]))) {
            XCTAssertTrue("\($0)".contains("cross_attention_dim"), "\($0)")
        }
        XCTAssertThrowsError(try model(Tensor(zeros: [1, 4, 8, 8]), timesteps: [1, 2, 3], context: context))
        let output = try withNoGrad { try model(Tensor.randn(shape: [1, 4, 8, 8], seed: 4), timesteps: [10], context: context) }
        XCTAssertEqual(output.shape, [1, 4, 8, 8])
    }
}
