import Checkpoints
import Foundation
import XCTest

@testable import Evaluation

/// Zero-shot classification, retrieval and the example world's probe against the real libraries
/// (tools/make_eval_general_fixtures.py: torchvision's ImageFolder, open_clip's
/// build_zero_shot_classifier and tokenizer, transformers' CLIP, the probe in numpy float64).
/// With Python's own embeddings every unit's outcome is equal and the probe's weights agree to 1e-9;
/// end to end with sdsclip's embeddings (within 1e-4 of Python's) every outcome and count is equal,
/// which the fixtures' margins make what parity means.
final class GeneralEvalParityTests: XCTestCase {
    let root = Repository.path("fixtures/eval")

    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/expected-general.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func section(_ name: String) throws -> [String: Any] { try XCTUnwrap(try expected()[name] as? [String: Any], name) }

    /// (path or text, embedding) rows of an expected section.
    func rows(_ section: [String: Any], _ key: String, name: String = "path") throws -> [(String, [Float])] {
        try XCTUnwrap(section[key] as? [[String: Any]], key).map { row in
            (try XCTUnwrap(row[name] as? String), try XCTUnwrap(row["embedding"] as? [Double]).map(Float.init))
        }
    }

    /// The embedding table Python computed, keyed as sdsclip's readers name the inputs.
    func pythonTable(images: [(String, [Float])], captions: [(String, [Float])] = []) -> EmbeddingTable {
        .fixed(images: images.map { (ImageReference(path: root + "/" + $0.0), $0.1) }, captions: captions)
    }

    func outcomes(_ benchmark: Benchmark, _ tables: [EmbeddingTable]) throws -> CorpusOutcome {
        try XCTUnwrap(benchmark.corpus, benchmark.name).evaluate(tables)
    }

    /// [unit][metric] of model 0, as the generator writes them.
    func perUnit(_ group: UnitOutcomes) -> [[Bool]] {
        let values = group.values[0]
        return (0..<(values.first?.count ?? 0)).map { unit in values.map { $0[unit] } }
    }

    func testZeroShotEqualsOpenCLIPsClassifier() throws {
        let reference = try section("zeroshot")
        let benchmark = try XCTUnwrap(try BenchmarkLoader.open(BenchmarkSpec(argument: root + "/zeroshot")).first)
        XCTAssertEqual(benchmark.kind, .zeroShot)
        let task = try XCTUnwrap(benchmark.corpus as? ZeroShotTask)
        XCTAssertEqual(task.classNames, reference["classes"] as? [String])
        XCTAssertEqual(task.templates, reference["templates"] as? [String])
        // torchvision's ImageFolder order and labels, a file in a subfolder included.
        let samples = try XCTUnwrap(reference["samples"] as? [[String: Any]])
        XCTAssertEqual(task.examples.map(\.image.path), samples.compactMap { $0["path"] as? String }.map { root + "/" + $0 })
        XCTAssertEqual(task.examples.map(\.label), samples.compactMap { $0["label"] as? Int })
        XCTAssertEqual(task.captions, try rows(reference, "prompts", name: "text").map(\.0))

        // open_clip's classifier from Python's prompt embeddings.
        let prompts = try rows(reference, "prompts", name: "text")
        let table = pythonTable(images: try rows(reference, "images"), captions: prompts)
        let theirs = try XCTUnwrap(reference["classifier"] as? [[Double]])
        for (label, row) in theirs.enumerated() {
            let ours = ZeroShotTask.classifier(task.prompts(label).compactMap(table.unitVector(of:)), dimension: table.dimension)
            for (a, b) in zip(ours, row) { XCTAssertEqual(a, b, accuracy: 1e-6, "class \(label)") }
        }
        let expectedOutcomes = try XCTUnwrap(reference["outcomes"] as? [[Bool]])
        let python = try outcomes(benchmark, [table])
        XCTAssertEqual(python.groups.map(\.metrics), [["top-1", "top-5"]])
        XCTAssertEqual(perUnit(python.groups[0]), expectedOutcomes)

        // End to end with sdsclip's embeddings.
        let ours = try embed([benchmark])
        try assertClose(ours, images: try rows(reference, "images"), captions: prompts)
        XCTAssertEqual(perUnit(try outcomes(benchmark, [ours]).groups[0]), expectedOutcomes)
        let report = Evaluator.report([benchmark], runs: [ModelRun(label: "fixture", table: ours)], bootstrap: BootstrapSettings(resamples: 100))
        let result = try XCTUnwrap(report.benchmarks.first)
        XCTAssertEqual(result.scored, expectedOutcomes.count)
        XCTAssertEqual(result.scores.map(\.metric), ["top-1", "top-5"])
        XCTAssertEqual(result.scores.compactMap { $0.models[0].correct }, reference["correct"] as? [Int])
        print("zero-shot parity: top-1 \(result.scores[0].models[0].correct ?? -1), top-5 \(result.scores[1].models[0].correct ?? -1) of \(result.scored)")
    }

    func testRetrievalEqualsTheReference() throws {
        let reference = try section("retrieval")
        let benchmark = try XCTUnwrap(try BenchmarkLoader.open(BenchmarkSpec(argument: root + "/retrieval/dataset_coco.json")).first)
        XCTAssertEqual(benchmark.kind, .retrieval)
        XCTAssertEqual(benchmark.name, "retrieval-coco-test")
        let task = try XCTUnwrap(benchmark.corpus as? RetrievalTask)
        let images = try rows(reference, "images"), captions = try rows(reference, "captions", name: "text")
        XCTAssertEqual(task.entries.map(\.image.path), images.map { root + "/" + $0.0 }, "the test split only, in file order")
        let imageOutcomes = try XCTUnwrap(reference["image_outcomes"] as? [[Bool]])
        let textOutcomes = try XCTUnwrap(reference["text_outcomes"] as? [[Bool]])
        XCTAssertEqual(textOutcomes.count, task.captions.count)

        let python = try outcomes(benchmark, [pythonTable(images: images, captions: captions)])
        XCTAssertEqual(python.groups.map(\.metrics), [reference["image_metrics"] as? [String] ?? [], reference["text_metrics"] as? [String] ?? []])
        XCTAssertEqual(perUnit(python.groups[0]), imageOutcomes)
        XCTAssertEqual(perUnit(python.groups[1]), textOutcomes)

        let ours = try embed([benchmark])
        try assertClose(ours, images: images, captions: captions)
        let report = Evaluator.report([benchmark], runs: [ModelRun(label: "fixture", table: ours)], bootstrap: BootstrapSettings(resamples: 100))
        let result = try XCTUnwrap(report.benchmarks.first)
        XCTAssertEqual(result.scored, imageOutcomes.count)
        XCTAssertTrue(result.skipped.isEmpty, "\(result.skipped)")
        let counts = result.scores.compactMap { $0.models[0].correct }
        XCTAssertEqual(counts, (reference["image_correct"] as? [Int] ?? []) + (reference["text_correct"] as? [Int] ?? []))
        XCTAssertEqual(result.scores.map(\.items), [Int](repeating: imageOutcomes.count, count: 3) + [Int](repeating: textOutcomes.count, count: 3))
        print("retrieval parity: \(zip(result.scores.map(\.metric), counts).map { "\($0) \($1)" }.joined(separator: ", "))")
    }

    func testProbeEqualsNumpy() throws {
        let reference = try section("probe")
        let benchmarks = try BenchmarkLoader.open(BenchmarkSpec(argument: root + "/world"))
        XCTAssertEqual(benchmarks.map(\.name), ["test-swaps", "probe"], "an example world is its swaps and its probe")
        let benchmark = benchmarks[1]
        let task = try XCTUnwrap(benchmark.corpus as? ProbeTask)
        let train = try rows(reference, "train"), test = try rows(reference, "test")
        XCTAssertEqual(task.train.map(\.image.path), train.map { root + "/" + $0.0 })
        XCTAssertEqual(task.test.map(\.image.path), test.map { root + "/" + $0.0 })
        XCTAssertEqual(task.attributes, reference["attributes"] as? [String])
        let settings = try XCTUnwrap(reference["settings"] as? [String: Any])
        XCTAssertEqual(task.settings, SoftmaxRegression.Settings(l2: try XCTUnwrap(settings["l2"] as? Double),
                                                                 iterations: try XCTUnwrap(settings["iterations"] as? Int),
                                                                 powerIterations: try XCTUnwrap(settings["power_iterations"] as? Int)))
        let probes = try XCTUnwrap(reference["probes"] as? [[String: Any]])

        // Python's embeddings: the same weights, the same predictions.
        let table = pythonTable(images: train + test)
        let features = task.train.compactMap { table.unitVector(of: $0.image) }
        for (attribute, probe) in probes.enumerated() {
            let fit = SoftmaxRegression.fit(features: features, labels: task.train.map { $0.labels[attribute] }, settings: task.settings)
            XCTAssertEqual(fit.classes, probe["classes"] as? [String])
            let weights = try XCTUnwrap(probe["weights"] as? [[Double]])
            let scale = weights.joined().map(abs).max() ?? 1
            for (ours, theirs) in zip(fit.weights.joined(), weights.joined()) {
                XCTAssertEqual(ours, theirs, accuracy: 1e-9 * scale, "\(task.attributes[attribute])")
            }
        }
        let expectedOutcomes = try probes.map { try XCTUnwrap($0["outcomes"] as? [Bool]) }
        let python = try outcomes(benchmark, [table])
        XCTAssertEqual(python.groups[0].metrics, task.attributes)
        XCTAssertEqual(python.groups[0].values[0], expectedOutcomes)

        // End to end.
        let ours = try embed(benchmarks)
        try assertClose(ours, images: train + test, captions: [])
        let report = Evaluator.report(benchmarks, runs: [ModelRun(label: "fixture", table: ours)], bootstrap: BootstrapSettings(resamples: 100))
        let result = report.benchmarks[1]
        XCTAssertEqual(result.scored, test.count)
        XCTAssertEqual(result.scores.map(\.metric), task.attributes)
        XCTAssertEqual(result.scores.compactMap { $0.models[0].correct }, probes.compactMap { $0["correct"] as? Int })
        XCTAssertEqual(report.benchmarks[0].scored, 8, "the swaps are scored beside the probe")
        print("probe parity: \(zip(task.attributes, result.scores).map { "\($0) \($1.models[0].correct ?? -1)/\($1.items)" }.joined(separator: ", "))")
    }

    func embed(_ benchmarks: [Benchmark]) throws -> EmbeddingTable {
        let clip = try CLIPLoader.load(root + "/clip")
        let inputs = Evaluator.inputs(benchmarks)
        let table = try CLIPEmbedder(model: clip.model, batchSize: 16).embed(images: inputs.images, captions: inputs.captions)
        XCTAssertTrue(table.imageFailures.isEmpty && table.textFailures.isEmpty, "\(table.imageFailures) \(table.textFailures)")
        return table
    }

    /// sdsclip's embeddings within 1e-4 (relative to the largest component) of Python's.
    func assertClose(_ table: EmbeddingTable, images: [(String, [Float])], captions: [(String, [Float])]) throws {
        var worst: Float = 0
        func check(_ ours: ArraySlice<Float>?, _ theirs: [Float], _ label: String) throws {
            let ours = try XCTUnwrap(ours, "\(label) was not embedded")
            let scale = theirs.map(abs).max() ?? 1
            worst = max(worst, (zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0) / scale)
        }
        for (path, embedding) in images { try check(table.embedding(of: ImageReference(path: root + "/" + path)), embedding, path) }
        for (text, embedding) in captions { try check(table.embedding(of: text), embedding, text) }
        XCTAssertLessThanOrEqual(worst, EvalParityTests.relativeTolerance)
    }
}
