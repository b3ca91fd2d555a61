import Checkpoints
import Foundation
import Models
import SDSTraining
import Tensors
import XCTest

@testable import Evaluation

/// The teacher's diffusion-score classifier against diffusers and transformers
/// (tools/make_diffusion_eval_fixtures.py on fixtures/eval/diffusion/teacher, the demo teacher with louder
/// cross-attention): with the fixture's timesteps and noise
/// injected, every image's z0 and every caption-image pair's denoising error agree within 1e-5
/// relative, and every item's outcomes and every score of fixtures/eval's Winoground and multiple-choice
/// items are equal. The fixture keeps every comparison at least 1e-4 of the error apart, so equal
/// outcomes are what parity means here.
final class DiffusionScoreParityTests: XCTestCase {
    static let relativeTolerance = 1e-5

    static func demoTeacher(_ path: String = Repository.path("fixtures/demo/sd")) throws -> DiffusionTeacher {
        let teacher = try SDSTeacher.load(path)
        let vae = try StableDiffusionLoader.loadVAE(path, parts: .encoder).model
        return try DiffusionTeacher(unet: teacher.unet, textEncoder: teacher.textEncoder, vae: vae, alphasCumprod: teacher.schedule.alphasCumprod,
                                    prediction: .epsilon, padID: Int(CLIPTokenizer.endOfTextID), source: path)   // SD1 pads with end of text
    }

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repository.path("fixtures/eval/diffusion/expected.json")))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testErrorsOutcomesAndScoresEqualDiffusers() throws {
        let expected = try expected()
        let root = Repository.path("fixtures/eval")
        let references = try XCTUnwrap(expected["benchmarks"] as? [[String: Any]])
        let benchmarks = try BenchmarkLoader.open(references.compactMap { $0["path"] as? String }.map { BenchmarkSpec(argument: root + "/" + $0) })
        XCTAssertEqual(benchmarks.map(\.name), ["winoground", "choice"])

        let teacher = try Self.demoTeacher(Repository.path(try XCTUnwrap(expected["teacher"] as? String)))
        XCTAssertEqual(teacher.padID, expected["pad_id"] as? Int)
        let timesteps = try XCTUnwrap(expected["timesteps"] as? [Int])
        let scorer = try DiffusionScorer(teacher: teacher, settings: DiffusionScoring(timesteps: timesteps.count, batchSize: 3))
        XCTAssertEqual(scorer.resolution, expected["resolution"] as? Int, "the native resolution: UNet sample_size × the VAE's downsampling")
        XCTAssertEqual(try DiffusionDraws.evenlySpaced(count: timesteps.count, steps: 1000), timesteps, "Diffusion Classifier's spacing")

        let shape = try XCTUnwrap(expected["noise_shape"] as? [Int])
        XCTAssertEqual(Array(shape.dropFirst()), scorer.latentShape)
        let noise = try XCTUnwrap(expected["noise"] as? [Double]).map(Float.init)
        let size = scorer.latentShape.reduce(1, *)
        let draws = try DiffusionDraws(timesteps: timesteps, noise: (0..<timesteps.count).map {
            try Tensor(shape: scorer.latentShape, data: Array(noise[$0 * size ..< ($0 + 1) * size]))
        })

        // z0 of every image.
        let pairs = Evaluator.pairs(benchmarks)
        let latents = try XCTUnwrap(expected["latents"] as? [[String: Any]])
        XCTAssertEqual(pairs.map(\.image.path), latents.compactMap { $0["image"] as? String }.map { root + "/" + $0 })
        var scratch = DiffusionPairTable()
        var ours: [ImageReference: [Float]] = [:]
        for image in pairs.map(\.image) { ours[image] = try withNoGrad { try scorer.latent(of: image, into: &scratch) } }
        var worstLatent = 0.0
        for entry in latents {
            let image = ImageReference(path: root + "/" + (entry["image"] as? String ?? ""))
            let theirs = try XCTUnwrap(entry["z0"] as? [Double])
            let mine = try XCTUnwrap(ours[image], image.description).map(Double.init)
            XCTAssertEqual(mine.count, theirs.count)
            let scale = theirs.map(abs).max() ?? 1
            worstLatent = max(worstLatent, (zip(mine, theirs).map { abs($0 - $1) }.max() ?? 0) / scale)
        }
        XCTAssertLessThanOrEqual(worstLatent, Self.relativeTolerance)

        // Every pair's error.
        var progress: [EmbeddingProgress] = []
        let table = try scorer.score(pairs, draws: draws) { progress.append($0) }
        let expectedPairs = try XCTUnwrap(expected["pairs"] as? [[String: Any]])
        XCTAssertEqual(table.errors.count, expectedPairs.count)
        XCTAssertEqual(progress.last, EmbeddingProgress(stage: .denoising, done: expectedPairs.count * timesteps.count, total: expectedPairs.count * timesteps.count))
        var worst = 0.0
        for entry in expectedPairs {
            let image = ImageReference(path: root + "/" + (entry["image"] as? String ?? ""))
            let caption = try XCTUnwrap(entry["caption"] as? String)
            let theirs = try XCTUnwrap(entry["error"] as? Double)
            let mine = try XCTUnwrap(table.error(caption: caption, image: image), "\(caption) on \(image)")
            XCTAssertEqual(table.score(caption: caption, image: image), -mine)
            worst = max(worst, abs(mine - theirs) / theirs)
        }
        XCTAssertLessThanOrEqual(worst, Self.relativeTolerance)
        print("diffusion parity: worst relative z0 error \(worstLatent), worst relative pair error \(worst)")

        // Item outcomes and scores.
        let report = Evaluator.report(benchmarks, runs: [ModelRun(label: "teacher", table: table, scoring: scorer.describe(draws))],
                                      bootstrap: BootstrapSettings(resamples: 100))
        for ((benchmark, result), reference) in zip(zip(benchmarks, report.benchmarks), references) {
            let outcomes = try benchmark.items.map { try ItemScorer.score($0, with: table).get() }
            XCTAssertEqual(outcomes, reference["outcomes"] as? [[Bool]], benchmark.name)
            let scores = try XCTUnwrap(reference["scores"] as? [[String: Any]])
            XCTAssertEqual(result.scores.count, scores.count, benchmark.name)
            for (score, theirs) in zip(result.scores, scores) {
                XCTAssertEqual(score.metric, theirs["metric"] as? String)
                XCTAssertEqual(score.items, theirs["items"] as? Int)
                XCTAssertEqual(score.models[0].correct, theirs["correct"] as? Int, "\(benchmark.name) \(score.metric) \(score.scope)")
            }
        }
        XCTAssertEqual(report.models.first?.scoring?.contains("K = \(timesteps.count) timesteps"), true)
    }

    /// The CLI's draws: Diffusion Classifier's timesteps and noise from one seeded stream, the same for
    /// the same seed and different for another.
    func testSeededDrawsAreReproducible() throws {
        let a = try DiffusionDraws.seeded(count: 10, steps: 1000, latentShape: [4, 8, 8], seed: 7)
        let b = try DiffusionDraws.seeded(count: 10, steps: 1000, latentShape: [4, 8, 8], seed: 7)
        let c = try DiffusionDraws.seeded(count: 10, steps: 1000, latentShape: [4, 8, 8], seed: 8)
        XCTAssertEqual(a.timesteps, [50, 150, 250, 350, 450, 550, 650, 750, 850, 950])
        XCTAssertEqual(a.noise.map(\.scalars), b.noise.map(\.scalars))
        XCTAssertNotEqual(a.noise.map(\.scalars), c.noise.map(\.scalars))
        XCTAssertNotEqual(a.noise[0].scalars, a.noise[1].scalars, "each k draws its own noise")
        XCTAssertEqual(try DiffusionDraws.evenlySpaced(count: 3, steps: 1000), [166, 499, 832])
        XCTAssertThrowsError(try DiffusionDraws.evenlySpaced(count: 0, steps: 1000))
        XCTAssertThrowsError(try DiffusionDraws.evenlySpaced(count: 1001, steps: 1000))
    }

    /// Parts that do not fit are refused with what was expected; a bad image or caption is a failure of
    /// that input only.
    func testMisfitsAreClearErrorsAndBadInputsAreSkipped() throws {
        let teacher = try Self.demoTeacher()
        XCTAssertThrowsError(try DiffusionScorer(teacher: teacher, settings: DiffusionScoring(resolution: 13))) { error in
            XCTAssertTrue("\(error)".contains("positive multiple of"), "\(error)")
        }
        let small = try CLIPTextTransformer(ParameterScope(RandomParameterSource(seed: 1))["text_model"],
                                            configuration: CLIPTextConfiguration(vocabularySize: 1000, width: 8, layers: 1, heads: 2))
        XCTAssertThrowsError(try DiffusionTeacher(unet: teacher.unet, textEncoder: small, vae: teacher.vae, alphasCumprod: teacher.alphasCumprod,
                                                  prediction: .epsilon, padID: 0, source: "tiny")) { error in
            XCTAssertTrue("\(error)".contains("tiny: its text encoder has 1000 tokens"), "\(error)")
        }
        let wide = try CLIPTextTransformer(ParameterScope(RandomParameterSource(seed: 1))["text_model"],
                                           configuration: CLIPTextConfiguration(width: 16, layers: 1, heads: 2))
        XCTAssertThrowsError(try DiffusionTeacher(unet: teacher.unet, textEncoder: wide, vae: teacher.vae, alphasCumprod: teacher.alphasCumprod,
                                                  prediction: .epsilon, padID: 0, source: "wide")) { error in
            XCTAssertTrue("\(error)".contains("cross_attention_dim"), "\(error)")
        }
        let decoderOnly = try StableDiffusionLoader.loadVAE(Repository.path("fixtures/demo/sd"), parts: .decoder).model
        XCTAssertThrowsError(try DiffusionTeacher(unet: teacher.unet, textEncoder: teacher.textEncoder, vae: decoderOnly,
                                                  alphasCumprod: teacher.alphasCumprod, prediction: .epsilon, padID: 0)) { error in
            XCTAssertTrue("\(error)".contains("VAE encoder"), "\(error)")
        }

        let scratch = try Scratch(self)
        let good = ImageReference(path: try scratch.picture("a.png", seed: 1)), missing = ImageReference(path: scratch.path("none.png"))
        let scorer = try DiffusionScorer(teacher: teacher, settings: DiffusionScoring(timesteps: 2))
        let long = Array(repeating: "word", count: 100).joined(separator: " ")
        let table = try scorer.score([(good, ["a red circle", "a blue square"]), (missing, ["a red circle"])])
        XCTAssertNotNil(table.score(caption: "a red circle", image: good))
        XCTAssertNotNil(table.score(caption: "a blue square", image: good))
        XCTAssertNotEqual(table.score(caption: "a red circle", image: good), table.score(caption: "a blue square", image: good))
        XCTAssertNil(table.score(caption: "a red circle", image: missing))
        XCTAssertNotNil(table.imageFailure(missing))
        XCTAssertEqual(table.inputs, ScoredInputs(images: 1, captions: 2, failedImages: 1, failedCaptions: 0))
        // Over-long captions are truncated as the pipeline's tokenizer does, not refused.
        XCTAssertNotNil(try scorer.score([(good, [long])]).score(caption: long, image: good))
        let skipped = ItemScorer.score(BenchmarkItem(id: "row 2", images: [missing], captions: ["a red circle", "b"], task: .choice(answer: 0)), with: table)
        guard case .failure(let skip) = skipped else { return XCTFail("an item whose image failed must be skipped") }
        XCTAssertEqual(skip.id, "row 2")
    }
}
