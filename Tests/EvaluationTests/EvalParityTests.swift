import Checkpoints
import Foundation
import XCTest

@testable import Evaluation

/// sdsclip's evaluation against the real libraries (tools/make_eval_fixtures.py: transformers CLIPModel,
/// open_clip's preprocessing and tokenizer, Pillow's crop) on fixtures/eval: every distinct image (with its
/// crop) and caption embeds within 1e-4 relative, and every item's outcomes and every score are equal:
/// exactly for counts, to rounding for the macro averages. The fixtures keep every comparison at least
/// 1e-4 apart, so equal outcomes are what parity means here.
final class EvalParityTests: XCTestCase {
    static let relativeTolerance: Float = 1e-4

    struct Expected {
        let json: [String: Any]
        var images: [[String: Any]] { json["images"] as? [[String: Any]] ?? [] }
        var captions: [[String: Any]] { json["captions"] as? [[String: Any]] ?? [] }
        var benchmarks: [[String: Any]] { json["benchmarks"] as? [[String: Any]] ?? [] }
    }

    func expected() throws -> Expected {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repository.path("fixtures/eval/expected.json")))
        return Expected(json: try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any]))
    }

    func testScoresAndEmbeddingsEqualTheLibraries() throws {
        let expected = try expected()
        let root = Repository.path("fixtures/eval")
        let specs = expected.benchmarks.compactMap { $0["path"] as? String }.map { BenchmarkSpec(argument: root + "/" + $0) }
        XCTAssertEqual(specs.count, 5)
        let benchmarks = try BenchmarkLoader.open(specs)
        XCTAssertEqual(benchmarks.map(\.name), expected.benchmarks.compactMap { $0["name"] as? String })
        XCTAssertTrue(benchmarks.allSatisfy { $0.skipped.isEmpty })

        let clip = try CLIPLoader.load(root + "/clip")
        let inputs = Evaluator.inputs(benchmarks)
        let table = try CLIPEmbedder(model: clip.model, batchSize: 16).embed(images: inputs.images, captions: inputs.captions)
        XCTAssertTrue(table.imageFailures.isEmpty && table.textFailures.isEmpty)

        // Embeddings, in the generator's order of first appearance (the same as ours).
        XCTAssertEqual(inputs.images.count, expected.images.count)
        XCTAssertEqual(inputs.captions.count, expected.captions.count)
        var worst: Float = 0
        for (image, entry) in zip(inputs.images, expected.images) {
            XCTAssertEqual(image.path, root + "/" + (entry["path"] as? String ?? ""))
            let crop = (entry["crop"] as? [Int]).map { CropBox(left: $0[0], top: $0[1], right: $0[2], bottom: $0[3]) }
            XCTAssertEqual(image.crop, crop, image.path)
            worst = max(worst, try error(table.embedding(of: image), entry["embedding"], image.description))
        }
        for (caption, entry) in zip(inputs.captions, expected.captions) {
            XCTAssertEqual(caption, entry["text"] as? String)
            worst = max(worst, try error(table.embedding(of: caption), entry["embedding"], caption))
        }
        XCTAssertLessThanOrEqual(worst, Self.relativeTolerance)
        print("eval parity: worst relative embedding error \(worst)")

        let report = Evaluator.report(benchmarks, runs: [ModelRun(label: "fixture", table: table)], bootstrap: BootstrapSettings(resamples: 200))
        for ((benchmark, result), reference) in zip(zip(benchmarks, report.benchmarks), expected.benchmarks) {
            // Item by item.
            let outcomes = try benchmark.items.map { try ItemScorer.score($0, with: table).get() }
            XCTAssertEqual(outcomes, reference["outcomes"] as? [[Bool]], benchmark.name)
            XCTAssertEqual(result.scored, reference["items"] as? Int)
            // Score by score, in the same order.
            let scores = try XCTUnwrap(reference["scores"] as? [[String: Any]])
            XCTAssertEqual(result.scores.count, scores.count, benchmark.name)
            for (score, theirs) in zip(result.scores, scores) {
                let label = "\(benchmark.name) \(score.metric) \(score.scope)"
                XCTAssertEqual(score.metric, theirs["metric"] as? String, label)
                XCTAssertEqual(score.items, theirs["items"] as? Int, label)
                switch score.scope {
                case .all: XCTAssertEqual(theirs["scope"] as? String, "all", label)
                case .subset(let name): XCTAssertEqual(theirs["subset"] as? String, name, label)
                case .macro(let subsets): XCTAssertEqual(theirs["subsets"] as? [String], subsets, label)
                }
                XCTAssertEqual(score.models[0].correct, theirs["correct"] as? Int, label)
                XCTAssertEqual(score.models[0].estimate.value, try XCTUnwrap(theirs["value"] as? Double), accuracy: 1e-12, label)
            }
        }
    }

    /// max|ours − theirs| / max|theirs| of one embedding.
    func error(_ ours: ArraySlice<Float>?, _ theirs: Any?, _ label: String) throws -> Float {
        let ours = try XCTUnwrap(ours, "\(label) was not embedded")
        let theirs = try XCTUnwrap(theirs as? [Double], label).map(Float.init)
        XCTAssertEqual(ours.count, theirs.count, label)
        let scale = theirs.map(abs).max() ?? 1
        let error = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(error / scale, Self.relativeTolerance, label)
        return error / scale
    }
}
