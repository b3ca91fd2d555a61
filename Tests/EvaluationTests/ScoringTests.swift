import Checkpoints
import Foundation
import XCTest

@testable import Evaluation

final class ScoringTests: XCTestCase {
    let i0 = ImageReference(path: "i0"), i1 = ImageReference(path: "i1")

    /// Winoground's definitions with strict inequalities: a tie is wrong.
    func testWinogroundScoresAreStrict() {
        // s(c, i) = cosine; unit vectors make the similarities easy to read off.
        func item(_ c0: [Float], _ c1: [Float]) -> (BenchmarkItem, EmbeddingTable) {
            let table = EmbeddingTable.fixed(images: [(i0, [1, 0]), (i1, [0, 1])], captions: [("c0", c0), ("c1", c1)])
            return (BenchmarkItem(id: "x", images: [i0, i1], captions: ["c0", "c1"], task: .pairs), table)
        }
        func score(_ c0: [Float], _ c1: [Float]) -> [Bool]? {
            let (item, table) = item(c0, c1)
            return try? ItemScorer.score(item, with: table).get()
        }
        // c0 matches i0 and c1 matches i1 in both directions: all three.
        XCTAssertEqual(score([1, 0.1], [0.1, 1]), [true, true, true])
        // Both captions prefer i0: s(c1,i1) > s(c0,i1) still holds for text; image fails for c1.
        XCTAssertEqual(score([1, 0], [0.9, 0.5]), [true, false, false])
        // Equal similarities everywhere: nothing is correct.
        XCTAssertEqual(score([1, 1], [1, 1]), [false, false, false])
        // c0 ties between the images: text may hold, image cannot.
        XCTAssertEqual(score([1, 1], [0, 1]), [true, false, false])
    }

    func testMultipleChoiceNeedsTheAnswerStrictlyHighest() {
        let table = EmbeddingTable.fixed(images: [(i0, [1, 0])], captions: [("a", [1, 0]), ("b", [1, 0]), ("c", [0, 1]), ("d", [0.9, 0.1])])
        func correct(_ captions: [String], _ answer: Int) -> Bool? {
            try? ItemScorer.score(BenchmarkItem(id: "x", images: [i0], captions: captions, task: .choice(answer: answer)), with: table).get()[0]
        }
        XCTAssertEqual(correct(["a", "c", "d"], 0), true)
        XCTAssertEqual(correct(["d", "a"], 0), false)
        XCTAssertEqual(correct(["a", "b"], 0), false, "a tie is not a win")
        XCTAssertEqual(correct(["c", "d", "a"], 2), true)
        // An item whose image or caption has no embedding is skipped with the reason.
        var missing = table
        missing.fail(image: i1, reason: "corrupt PNG")
        let skipped = ItemScorer.score(BenchmarkItem(id: "row 4", images: [i1], captions: ["a", "b"], task: .choice(answer: 0)), with: missing)
        XCTAssertEqual(skipped, .failure(SkippedItem(id: "row 4", reason: "corrupt PNG")))
    }

    /// Bad items end to end with a real CLIP: a missing image, an undecodable one and a malformed row are
    /// named, skipped and counted; the rest is scored; nothing throws.
    func testBadItemsAreSkippedAndCounted() throws {
        let scratch = try Scratch(self)
        for k in 0..<4 { try scratch.picture("images/\(k).png", seed: k) }
        try scratch.put("images/broken.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
        try scratch.put("images/text.png", text: "not an image")
        try scratch.put("pairs.jsonl", text: """
        {"image_0": "images/0.png", "image_1": "images/1.png", "caption_0": "a red circle", "caption_1": "a blue square"}
        {"image_0": "images/2.png", "image_1": "images/missing.png", "caption_0": "a red circle", "caption_1": "a green square"}
        {"image_0": "images/broken.png", "image_1": "images/3.png", "caption_0": "one", "caption_1": "two"}
        {"image_0": "images/text.png", "image_1": "images/3.png", "caption_0": "one", "caption_1": "two"}
        {"image_0": "images/2.png", "image_1": "images/3.png", "caption_0": "one"}
        {"image_0": "images/2.png", "image_1": "images/3.png", "caption_0": "one", "caption_1": "two"}
        """)
        let benchmarks = try BenchmarkLoader.open([BenchmarkSpec(argument: scratch.path("pairs.jsonl"))])
        let clip = try CLIPLoader.load(Repository.path("fixtures/demo/clip"))
        let inputs = Evaluator.inputs(benchmarks)
        XCTAssertEqual(inputs.images.count, 7)
        XCTAssertEqual(Set(inputs.captions).count, inputs.captions.count)
        var seen: [EmbeddingProgress] = []
        let table = try CLIPEmbedder(model: clip.model, batchSize: 3).embed(images: inputs.images, captions: inputs.captions) { seen.append($0) }
        XCTAssertEqual(table.imageFailures.count, 3)
        XCTAssertEqual(seen.last, EmbeddingProgress(stage: .captions, done: inputs.captions.count, total: inputs.captions.count))
        XCTAssertTrue(seen.contains(EmbeddingProgress(stage: .images, done: 6, total: 7)), "progress after each batch")

        let report = Evaluator.report(benchmarks, runs: [ModelRun(label: "demo", table: table)], bootstrap: BootstrapSettings(resamples: 100))
        let result = try XCTUnwrap(report.benchmarks.first)
        XCTAssertEqual(result.rows, 6)
        XCTAssertEqual(result.scored, 2)
        XCTAssertEqual(result.skipped.map(\.id), ["pairs.jsonl:5", "pairs.jsonl:2", "pairs.jsonl:3", "pairs.jsonl:4"])
        XCTAssertEqual(result.skipped[0].reason, "no \"caption_1\" field")
        XCTAssertTrue(result.skipped[1].reason.contains("missing.png"), result.skipped[1].reason)
        XCTAssertTrue(result.skipped[2].reason.contains("broken.png"), result.skipped[2].reason)
        XCTAssertTrue(result.skipped[3].reason.contains("neither JPEG"), result.skipped[3].reason)
        XCTAssertEqual(result.scores.map(\.metric), ["text", "image", "group"])
        XCTAssertTrue(result.scores.allSatisfy { $0.items == 2 })
        XCTAssertEqual(report.models, [ModelSummary(label: "demo", images: 4, captions: inputs.captions.count, failedImages: 3, failedCaptions: 0)])
    }

    /// A model whose vocabulary the tokenizer overruns is refused before any work, with the reason.
    func testSmallVocabularyIsRefused() throws {
        let clip = try CLIPLoader.load(Repository.path("fixtures/clip/hf"))
        XCTAssertThrowsError(try CLIPEmbedder(model: clip.model, source: "fixtures/clip/hf")) { error in
            XCTAssertTrue("\(error)".hasPrefix("fixtures/clip/hf: its text vocabulary has 1000 tokens"), "\(error)")
        }
    }

    /// Two runs: side by side, the difference B − A with its paired interval, the same items for both.
    func testComparisonAndJSONReport() throws {
        let items = (0..<40).map { k in
            BenchmarkItem(id: "r\(k)", images: [ImageReference(path: "i\(k % 4)")], captions: ["c\(k % 3)", "c\((k + 1) % 3)"],
                          task: .choice(answer: 0), subset: k % 2 == 0 ? "even" : "odd")
        }
        let benchmark = Benchmark(name: "toy", kind: .aroRelation, source: "toy.json", items: items, skipped: [SkippedItem(id: "r40", reason: "bad row")])
        let images = (0..<4).map { (ImageReference(path: "i\($0)"), [Float(1), Float($0) * 0.5]) }
        let a = EmbeddingTable.fixed(images: images, captions: [("c0", [1, 0]), ("c1", [0, 1]), ("c2", [1, 1])])
        let b = EmbeddingTable.fixed(images: images, captions: [("c0", [1, 0.8]), ("c1", [0, 1]), ("c2", [1, -1])])
        let report = Evaluator.report([benchmark], runs: [ModelRun(label: "A", table: a), ModelRun(label: "B", table: b)])
        let result = try XCTUnwrap(report.benchmarks.first)
        XCTAssertEqual(result.scored, 40)
        XCTAssertEqual(result.skipped.count, 1)
        // all, even, odd, and the macro of both (neither is in ARO's symmetric list).
        XCTAssertEqual(result.scores.map(\.scope), [.all, .subset("even"), .subset("odd"), .macro(subsets: ["even", "odd"])])
        for score in result.scores {
            let difference = try XCTUnwrap(score.difference)
            XCTAssertEqual(difference.value, score.models[1].estimate.value - score.models[0].estimate.value, accuracy: 1e-12)
            XCTAssertLessThanOrEqual(difference.low, difference.value)
            XCTAssertGreaterThanOrEqual(difference.high, difference.value)
        }
        XCTAssertNil(result.scores[3].models[0].correct, "a macro average has no count of correct items")

        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ReportJSON.encode(report))) as? [String: Any])
        let bootstrap = try XCTUnwrap(parsed["bootstrap"] as? [String: Any])
        XCTAssertEqual(bootstrap["resamples"] as? Int, 1000)
        let benchmarks = try XCTUnwrap(parsed["benchmarks"] as? [[String: Any]])
        XCTAssertEqual(benchmarks.first?["skipped_count"] as? Int, 1)
        let scores = try XCTUnwrap(benchmarks.first?["scores"] as? [[String: Any]])
        XCTAssertEqual(scores.count, 4)
        let models = try XCTUnwrap(scores[0]["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 2)
        XCTAssertEqual(models[0]["correct"] as? Int, result.scores[0].models[0].correct)
        XCTAssertEqual(try XCTUnwrap(models[1]["value"] as? Double), result.scores[0].models[1].estimate.value, accuracy: 1e-15)
        XCTAssertNotNil(scores[0]["difference"] as? [String: Any])
        XCTAssertEqual(scores[3]["subsets"] as? [String], ["even", "odd"])

        let table = ReportTable.render(report)
        XCTAssertTrue(table.contains("B − A"), table)
        XCTAssertTrue(table.contains("macro of 2"), table)
        XCTAssertTrue(table.contains("toy (aro-relation, toy.json): 40 of 41 items scored, 1 skipped"), table)
    }
}
