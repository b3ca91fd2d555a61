import Foundation
import XCTest

@testable import Evaluation

/// Zero-shot, retrieval and probe: layouts, bad rows, and the ranking rules on hand-made vectors.
final class GeneralBenchmarkTests: XCTestCase {
    func image(_ name: String) -> ImageReference { ImageReference(path: name) }

    // MARK: zero-shot

    func testImageFolderOrderNamesAndTemplates() throws {
        let scratch = try Scratch(self)
        try scratch.picture("set/b_class/2.png", seed: 1)
        try scratch.picture("set/b_class/10.png", seed: 2)
        try scratch.picture("set/b_class/sub/1.png", seed: 3)
        try scratch.picture("set/b_class/sub-a/1.png", seed: 4)
        try scratch.picture("set/b_class/sub/deeper/1.png", seed: 7)
        try scratch.put("set/b_class/notes.txt", text: "not an image")
        try scratch.picture("set/a/x.PNG", seed: 5)
        try scratch.picture("set/.hidden/x.png", seed: 6)
        let benchmark = try XCTUnwrap(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("set"))).first)
        XCTAssertEqual(benchmark.kind, .zeroShot, "detected: two class folders with images")
        let task = try XCTUnwrap(benchmark.corpus as? ZeroShotTask)
        XCTAssertEqual(task.classNames, ["a", "b class"])
        XCTAssertEqual(task.templates, ImageFolderReader.defaultTemplates)
        // torchvision's order (ImageFolder 0.28 on this tree): folders sorted by path, so "sub" < "sub-a" < "sub/deeper",
        // then each folder's files by name.
        XCTAssertEqual(task.examples.map(\.id), ["a/x.PNG", "b_class/10.png", "b_class/2.png", "b_class/sub/1.png", "b_class/sub-a/1.png",
                                                 "b_class/sub/deeper/1.png"])
        XCTAssertEqual(task.examples.map(\.label), [0, 1, 1, 1, 1, 1])
        XCTAssertEqual(task.captions, ["a photo of a a.", "a photo of a b class."])

        try scratch.put("set/templates.txt", text: "a {} here\n\n  itap of a {c}.  \n")
        try scratch.put("set/classnames.txt", text: "apple\nbanana\n")
        let named = try XCTUnwrap(try ImageFolderReader.read(folder: scratch.path("set")).corpus as? ZeroShotTask)
        XCTAssertEqual(named.captions, ["a apple here", "itap of a apple.", "a banana here", "itap of a banana."])

        try scratch.put("other.json", text: "{\"a\": \"cat\", \"b_class\": \"dog\"}")
        let mapped = try XCTUnwrap(try ImageFolderReader.read(folder: scratch.path("set"), classNames: scratch.path("other.json")).corpus as? ZeroShotTask)
        XCTAssertEqual(mapped.classNames, ["cat", "dog"])

        try scratch.put("three.txt", text: "x\ny\nz\n")
        XCTAssertThrowsError(try ImageFolderReader.read(folder: scratch.path("set"), classNames: scratch.path("three.txt"))) { error in
            XCTAssertTrue("\(error)".contains("has 3 class names for 2 class folders"), "\(error)")
        }
        try scratch.put("partial.json", text: "{\"a\": \"cat\"}")
        XCTAssertThrowsError(try ImageFolderReader.read(folder: scratch.path("set"), classNames: scratch.path("partial.json"))) { error in
            XCTAssertTrue("\(error)".contains("no class name (a non-empty string) for the class folder \"b_class\""), "\(error)")
        }
        try scratch.put("bad-templates.txt", text: "a photo of a {}.\na photo\n")
        XCTAssertThrowsError(try ImageFolderReader.read(folder: scratch.path("set"), templates: scratch.path("bad-templates.txt"))) { error in
            XCTAssertTrue("\(error)".contains("template 2 \"a photo\" has no {}"), "\(error)")
        }
    }

    func testZeroShotTopKAndTies() throws {
        // Image i sits on class i's prompt except where noted; 6 classes, so top-5 is 5 of 6.
        let names = ["c0", "c1", "c2", "c3", "c4", "c5"]
        var prompts: [(String, [Float])] = []
        for (k, name) in names.enumerated() {
            var v = [Float](repeating: 0, count: 6)
            v[k] = 1
            prompts.append(("a \(name)", v))
        }
        let examples = [
            ZeroShotTask.Example(id: "right", image: image("i0"), label: 0),
            // Ranked second: wrong at top-1, right at top-5.
            ZeroShotTask.Example(id: "second", image: image("i1"), label: 1),
            // Tied with class 3: a tie counts against it.
            ZeroShotTask.Example(id: "tie", image: image("i2"), label: 2),
            // Last of six: wrong at both.
            ZeroShotTask.Example(id: "last", image: image("i3"), label: 5),
            ZeroShotTask.Example(id: "broken", image: image("broken"), label: 0),
        ]
        var table = EmbeddingTable.fixed(images: [(image("i0"), [1, 0, 0, 0, 0, 0]), (image("i1"), [0.5, 0.4, 0, 0, 0, 0]),
                                                  (image("i2"), [0, 0, 1, 1, 0, 0]), (image("i3"), [1, 0.9, 0.8, 0.7, 0.6, 0])],
                                         captions: prompts)
        table.fail(image: image("broken"), reason: "broken: not a PNG")
        let task = ZeroShotTask(classNames: names, templates: ["a {}"], examples: examples)
        let outcome = task.evaluate([table])
        XCTAssertEqual(outcome.groups[0].metrics, ["top-1", "top-5"])
        XCTAssertEqual(outcome.groups[0].values[0], [[true, false, false, false], [true, true, true, false]])
        XCTAssertEqual(outcome.scored, 4)
        XCTAssertEqual(outcome.skipped, [SkippedItem(id: "broken", reason: "broken: not a PNG")])

        // Three classes: top-3 names the metric; a class without an embedded prompt is no candidate.
        var small = EmbeddingTable.fixed(images: [(image("i0"), [1, 0, 0, 0, 0, 0])], captions: Array(prompts.prefix(2)))
        small.fail(caption: "a c2", reason: "too long")
        let three = ZeroShotTask(classNames: ["c0", "c1", "c2"], templates: ["a {}"],
                                 examples: [.init(id: "x", image: image("i0"), label: 0), .init(id: "y", image: image("i0"), label: 2)])
        let result = three.evaluate([small])
        XCTAssertEqual(result.groups[0].metrics, ["top-1", "top-2"])
        XCTAssertEqual(result.scored, 1)
        XCTAssertEqual(result.skipped.map(\.id), ["class c2 prompt \"a c2\"", "y"])
        XCTAssertEqual(result.skipped.last?.reason, "no prompt of its class \"c2\" could be embedded")
    }

    /// A unit one compared model could not embed is left out for both; the report pairs the rest.
    func testCorpusUnitsAreSharedAcrossComparedModels() throws {
        let prompts: [(String, [Float])] = [("a c0", [1, 0]), ("a c1", [0, 1])]
        let a = EmbeddingTable.fixed(images: [(image("i0"), [1, 0]), (image("i1"), [0, 1]), (image("i2"), [1, 1.1])], captions: prompts)
        var b = EmbeddingTable.fixed(images: [(image("i0"), [0, 1]), (image("i2"), [1, 1.1])], captions: prompts)
        b.fail(image: image("i1"), reason: "i1: unreadable for B")
        let task = ZeroShotTask(classNames: ["c0", "c1"], templates: ["a {}"],
                                examples: [.init(id: "0", image: image("i0"), label: 0), .init(id: "1", image: image("i1"), label: 1),
                                           .init(id: "2", image: image("i2"), label: 1)])
        let benchmark = Benchmark(name: "toy", kind: .zeroShot, source: "toy/", corpus: task, skipped: [SkippedItem(id: "x", reason: "bad row")])
        let report = Evaluator.report([benchmark], runs: [ModelRun(label: "A", table: a), ModelRun(label: "B", table: b)],
                                      bootstrap: BootstrapSettings(resamples: 200))
        let result = try XCTUnwrap(report.benchmarks.first)
        XCTAssertEqual(result.rows, 4)
        XCTAssertEqual(result.scored, 2)
        XCTAssertEqual(result.skipped.map(\.id), ["x", "1"])
        let top1 = try XCTUnwrap(result.scores.first)
        XCTAssertEqual(top1.metric, "top-1")
        XCTAssertEqual(top1.items, 2)
        // A gets i0 (c0) and i2 (c1) right; B gets i0 wrong.
        XCTAssertEqual(top1.models.map(\.correct), [2, 1])
        XCTAssertEqual(try XCTUnwrap(top1.difference).value, -0.5, accuracy: 1e-12)
        XCTAssertEqual(result.scores.map(\.metric), ["top-1", "top-2"])
    }

    // MARK: retrieval

    func testKarpathySplitsAndBadEntries() throws {
        let scratch = try Scratch(self)
        try scratch.put("coco/dataset_coco.json", text: """
        {"images": [
          {"filepath": "val2014", "filename": "a.jpg", "split": "test", "sentences": [{"raw": "one"}, {"raw": "two"}]},
          {"filepath": "val2014", "filename": "b.jpg", "split": "val", "sentences": [{"raw": "three"}]},
          {"filename": "c.jpg", "split": "test", "sentences": []},
          {"filepath": "val2014", "filename": "d.jpg", "split": "test", "sentences": [{"tokens": ["x"]}]},
          {"filename": "e.jpg", "sentences": [{"raw": "five"}]},
          7,
          {"filepath": "val2014", "filename": "a.jpg", "split": "test", "sentences": [{"raw": "again"}]},
          {"filename": "f.jpg", "split": "test", "sentences": [{"raw": "six"}]}
        ], "dataset": "coco"}
        """)
        let file = scratch.path("coco/dataset_coco.json")
        let benchmark = try XCTUnwrap(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("coco"))).first)
        XCTAssertEqual(benchmark.kind, .retrieval, "a folder holding dataset_coco.json")
        let task = try XCTUnwrap(benchmark.corpus as? RetrievalTask)
        XCTAssertEqual(task.entries.map(\.image.path), [scratch.path("coco/val2014/a.jpg"), scratch.path("coco/f.jpg")])
        XCTAssertEqual(task.captions, ["one", "two", "six"])
        XCTAssertEqual(benchmark.skipped.map(\.id), ["dataset_coco.json images[2] (c.jpg)", "dataset_coco.json images[3] (d.jpg)",
                                                     "dataset_coco.json images[4] (e.jpg)", "dataset_coco.json images[5]",
                                                     "dataset_coco.json images[6] (a.jpg)"])
        XCTAssertEqual(benchmark.skipped.map(\.reason), ["\"sentences\" is empty", "sentences[0] has no \"raw\" string", "no \"split\" field",
                                                         "expected an object, found the number 7",
                                                         "the image \(scratch.path("coco/val2014/a.jpg")) is listed twice in the split"])
        XCTAssertEqual(benchmark.rowCount, 7, "2 test entries and 5 bad rows; the val entry is not counted")

        let val = try KarpathyReader.read(file: file, split: "val")
        XCTAssertEqual((val.corpus as? RetrievalTask)?.captions, ["three"])
        XCTAssertThrowsError(try KarpathyReader.read(file: file, images: scratch.path("nowhere"))) { error in
            XCTAssertTrue("\(error)".contains("the image folder given by --images does not exist"), "\(error)")
        }
        try scratch.put("empty/dataset_flickr30k.json", text: "{\"images\": [{\"filename\": \"x.jpg\", \"split\": \"train\", \"sentences\": [{\"raw\": \"a\"}]}]}")
        XCTAssertThrowsError(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("empty/dataset_flickr30k.json")))) { error in
            XCTAssertTrue("\(error)".contains("no image has \"split\": \"test\""), "\(error)")
        }
    }

    func testRetrievalRanksCountTiesAgainstTheQuery() throws {
        // Three images on the axes; captions by hand.
        let entries = [
            RetrievalTask.Entry(id: "0", image: image("i0"), captions: ["x", "shared"]),
            RetrievalTask.Entry(id: "1", image: image("i1"), captions: ["y", "shared"]),
            RetrievalTask.Entry(id: "2", image: image("i2"), captions: ["z"]),
            RetrievalTask.Entry(id: "3", image: image("gone"), captions: ["w"]),
        ]
        var table = EmbeddingTable.fixed(
            images: [(image("i0"), [1, 0, 0]), (image("i1"), [0, 1, 0]), (image("i2"), [0, 0, 1])],
            captions: [("x", [1, 0, 0]), ("y", [1, 1, 0]), ("z", [0.2, 0.1, 0.1]), ("shared", [1, 1, 0.2]), ("w", [0, 0, 1])])
        table.fail(image: image("gone"), reason: "gone.jpg: the file does not exist")
        let outcome = RetrievalTask(entries: entries).evaluate([table])
        XCTAssertEqual(outcome.skipped.map(\.id), ["3"])
        XCTAssertTrue(outcome.skipped[0].reason.hasSuffix("its 1 captions leave the gallery too"), outcome.skipped[0].reason)
        XCTAssertEqual(outcome.scored, 3)
        // Image queries. i0: best positive x (1.0); no negative reaches it. i1: positives y, shared (cos 0.707,
        // 0.700): no negative ("x" 0, "z" 0.41) reaches 0.707. i2: positive z (0.41); negatives x 0, y 0, shared
        // 0.14 (twice: two sentences): hits at 1.
        XCTAssertEqual(outcome.groups[0].values[0], [[true, true, true], [true, true, true], [true, true, true]])
        // Caption queries (sentences x, shared, y, shared, z): "shared" has i0 and i1 as positives.
        // "y" [1,1,0]: i0 and i1 tie at 0.707 — i0 is a negative reaching the positive: not at R@1.
        // "z" [0.2,0.1,0.1]: i0 0.82 above and i1 tied with its i2 at 0.41: rank 2 — wrong at R@1 only.
        XCTAssertEqual(outcome.groups[1].values[0], [[true, true, false, true, false], [true, true, true, true, true], [true, true, true, true, true]])
        XCTAssertEqual(outcome.groups.map(\.unit), ["image", "caption"])
    }

    func testBlockedSimilaritiesEqualOneBlock() throws {
        var generator = SystemRandomNumberGenerator()
        let vectors = (0..<37).map { _ in (0..<5).map { _ in Double.random(in: -1...1, using: &generator) } }
        let gallery = (0..<11).map { _ in (0..<5).map { _ in Double.random(in: -1...1, using: &generator) } }
        let queries = UnitMatrix(vectors, dimension: 5), candidates = UnitMatrix(gallery, dimension: 5)
        var whole: [[Float]] = [], blocked: [[Float]] = []
        try queries.scores(against: candidates) { _, row in whole.append(Array(row)) }
        var order: [Int] = []
        try queries.scores(against: candidates, blockElements: 30) { index, row in
            order.append(index)
            blocked.append(Array(row))
        }
        XCTAssertEqual(order, Array(0..<37))
        XCTAssertEqual(whole, blocked)
        for (q, row) in whole.enumerated() {
            for (g, score) in row.enumerated() {
                let dot = zip(vectors[q], gallery[g]).reduce(0) { $0 + Float($1.0) * Float($1.1) }
                XCTAssertEqual(score, dot, accuracy: 1e-5)
            }
        }
    }

    // MARK: probe

    func testProbeReadsTheWorldAndScoresUnseenLabelsWrong() throws {
        let scratch = try Scratch(self)
        try scratch.put("world/train.jsonl", text: """
        {"image": "images/0.png", "caption": "a red circle left of a blue square"}
        {"image": "images/1.png", "caption": "a blue square above a red circle"}
        {"image": "images/2.png", "caption": "three words only"}
        {"image": "images/3.png"}
        """)
        try scratch.put("world/test-swaps.jsonl", text: """
        {"image_0": "test-images/0_0.png", "image_1": "test-images/0_1.png", "caption_0": "a red circle left of a blue square", "caption_1": "a green square right of a red circle"}
        """)
        let benchmark = try ExampleWorldReader.probe(folder: scratch.path("world"))
        let task = try XCTUnwrap(benchmark.corpus as? ProbeTask)
        XCTAssertEqual(task.train.map(\.labels), [["red", "circle", "left of", "blue", "square"], ["blue", "square", "above", "red", "circle"]])
        XCTAssertEqual(task.test.map(\.id), ["test-swaps.jsonl:1 image_0", "test-swaps.jsonl:1 image_1"])
        XCTAssertEqual(benchmark.skipped.map(\.id), ["train.jsonl:3", "train.jsonl:4"])
        XCTAssertTrue(benchmark.skipped[0].reason.contains("is not of the example world's form"), benchmark.skipped[0].reason)

        // Separable by hand: the first colour is the first coordinate's sign.
        let table = EmbeddingTable.fixed(images: [
            (ImageReference(path: scratch.path("world/images/0.png")), [1, 0.1]), (ImageReference(path: scratch.path("world/images/1.png")), [-1, 0.1]),
            (ImageReference(path: scratch.path("world/test-images/0_0.png")), [0.9, 0.2]),
            (ImageReference(path: scratch.path("world/test-images/0_1.png")), [-0.8, 0.1]),
        ], captions: [])
        let outcome = task.evaluate([table])
        XCTAssertEqual(outcome.groups[0].metrics, ExampleWorldReader.attributes)
        // Test image 1 is green (never seen in training): wrong whatever the probe says.
        XCTAssertEqual(outcome.groups[0].values[0][0], [true, false])
        XCTAssertEqual(outcome.groups[0].values[0][2], [true, false], "relation: left of / right of (unseen)")
    }

    func testSoftmaxRegressionSeparatesAndIsDeterministic() {
        let features = (0..<30).map { (k: Int) -> [Double] in
            let position: Double = Double(k % 3) + 0.1 * Double(k % 5)
            return [position, Double(k % 2), 1.0]
        }
        let labels = (0..<30).map { ["a", "b", "c"][$0 % 3] }
        let fit = SoftmaxRegression.fit(features: features, labels: labels, settings: .init())
        XCTAssertEqual(fit.classes, ["a", "b", "c"])
        XCTAssertEqual(fit.scale[2], 1, "a constant feature is only centred")
        XCTAssertTrue(zip(features, labels).allSatisfy { fit.isCorrect($0, label: $1) })
        XCTAssertEqual(SoftmaxRegression.fit(features: features, labels: labels, settings: .init()).weights, fit.weights)
        XCTAssertFalse(fit.isCorrect(features[0], label: "unseen"))
    }
}
