import Foundation
import Imaging
import SDSTraining
import XCTest

@testable import Evaluation

final class ReaderTests: XCTestCase {
    // MARK: SugarCrepe

    /// The real format: three items copied from add_att.json, their images as stand-ins under the COCO names.
    func testSugarCrepeItemsFromTheRealFormat() throws {
        let scratch = try Scratch(self)
        try scratch.put("sc/add_att.json", text: """
        {
            "0": {
                "filename": "000000085329.jpg",
                "caption": "A drawing of a young woman with many facial piercings.",
                "negative_caption": "A drawing of a tattooed young woman with many facial piercings."
            },
            "1": {
                "filename": "000000562121.jpg",
                "caption": "Two zebras are battling each other on hind legs.",
                "negative_caption": "Two striped-and-spotted zebras are battling each other on hind legs."
            },
            "2": {"filename": "000000085329.jpg", "caption": 7, "negative_caption": "x"}
        }
        """)
        try scratch.picture("sc/val2017/000000085329.jpg", seed: 1)
        try scratch.picture("sc/val2017/000000562121.jpg", seed: 2)
        let benchmarks = try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("sc")))
        XCTAssertEqual(benchmarks.count, 1)
        let sugar = try XCTUnwrap(benchmarks.first)
        XCTAssertEqual(sugar.kind, .sugarCrepe)
        XCTAssertEqual(sugar.name, "sugarcrepe")
        XCTAssertEqual(sugar.items.count, 2)
        XCTAssertEqual(sugar.items[1].captions, ["Two zebras are battling each other on hind legs.",
                                                 "Two striped-and-spotted zebras are battling each other on hind legs."])
        XCTAssertEqual(sugar.items[1].images, [ImageReference(path: scratch.path("sc/val2017/000000562121.jpg"))])
        XCTAssertEqual(sugar.items[1].task, .choice(answer: 0))
        XCTAssertEqual(sugar.items[1].subset, "add_att")
        XCTAssertEqual(sugar.items[0].id, "add_att.json[\"0\"]")
        // The malformed item is named and counted, not fatal.
        XCTAssertEqual(sugar.skipped, [SkippedItem(id: "add_att.json[\"2\"]", reason: "\"caption\" must be a string, found the number 7")])
        XCTAssertEqual(sugar.rowCount, 3)

        // --images overrides val2017/ beside the files; a missing image folder is an error that says what to pass.
        XCTAssertEqual(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("sc/add_att.json")), images: scratch.path("sc/val2017"))
            .first?.items.count, 2)
        try FileManager.default.removeItem(atPath: scratch.path("sc/val2017"))
        XCTAssertThrowsError(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("sc")))) { error in
            XCTAssertTrue("\(error)".contains("--images"), "\(error)")
        }
    }

    /// All seven real files, with the item counts of shared/benchmarks/README.md.
    func testAllSevenRealSugarCrepeFiles() throws {
        guard let folder = Repository.sharedSugarCrepe else { throw XCTSkip("../shared/benchmarks/sugarcrepe is not present") }
        let scratch = try Scratch(self)
        try FileManager.default.createDirectory(atPath: scratch.path("val2017"), withIntermediateDirectories: true)
        let benchmark = try XCTUnwrap(BenchmarkLoader.open(BenchmarkSpec(layout: .sugarcrepe, path: folder), images: scratch.path("val2017")).first)
        let counts = Dictionary(grouping: benchmark.items, by: { $0.subset ?? "" }).mapValues(\.count)
        XCTAssertEqual(counts, ["add_att": 692, "add_obj": 2062, "replace_att": 788, "replace_obj": 1652, "replace_rel": 1406,
                                "swap_att": 666, "swap_obj": 245])
        XCTAssertTrue(benchmark.skipped.isEmpty)
        XCTAssertEqual(Set(benchmark.items.flatMap(\.captions)).count, 11_844)
        XCTAssertTrue(benchmark.items.allSatisfy { $0.images[0].path.hasPrefix(scratch.path("val2017") + "/000000") && $0.images[0].path.hasSuffix(".jpg") })
        // Each file on its own is detected by content.
        XCTAssertEqual(try BenchmarkLoader.detect(file: folder + "/swap_obj.json"), .sugarcrepe)
    }

    // MARK: Winoground

    func testWinogroundFolderBuiltHere() throws {
        let scratch = try Scratch(self)
        var lines: [String] = []
        for id in 0..<3 {
            try scratch.picture("wg/images/ex_\(id)_img_0.png", seed: 2 * id)
            try scratch.picture("wg/images/ex_\(id)_img_1.png", seed: 2 * id + 1)
            let tag = ["Object", "Relation", "Both"][id]
            lines.append("{\"id\": \(id), \"caption_0\": \"a cat on a mat \(id)\", \"caption_1\": \"a mat on a cat \(id)\", "
                         + "\"image_0\": \"ex_\(id)_img_0\", \"image_1\": \"ex_\(id)_img_1\", \"tag\": \"\(tag)\", "
                         + "\"secondary_tag\": \"Symbolic\", \"num_main_preds\": 1, \"collapsed_tag\": \"\(tag)\"}")
        }
        lines.insert("", at: 1)                       // blank lines are not rows
        lines.append("{\"id\": 9, \"caption_0\": \"x\"}")  // missing fields: skipped
        lines.append("{not json")
        try scratch.put("wg/examples.jsonl", text: lines.joined(separator: "\n") + "\n")
        let benchmark = try XCTUnwrap(BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("wg"))).first)
        XCTAssertEqual(benchmark.kind, .winoground)
        XCTAssertEqual(benchmark.name, "winoground")
        XCTAssertEqual(benchmark.items.map(\.subset), ["Object", "Relation", "Both"])
        XCTAssertEqual(benchmark.items[2].images.map(\.path), [scratch.path("wg/images/ex_2_img_0.png"), scratch.path("wg/images/ex_2_img_1.png")])
        XCTAssertEqual(benchmark.items[2].captions, ["a cat on a mat 2", "a mat on a cat 2"])
        XCTAssertEqual(benchmark.items[0].id, "examples.jsonl:1 (id 0)")
        XCTAssertEqual(benchmark.skipped.map(\.id), ["examples.jsonl:5 (id 9)", "examples.jsonl:6"])
        XCTAssertEqual(benchmark.skipped[0].reason, "no \"caption_1\" field")
        XCTAssertTrue(benchmark.skipped[1].reason.hasPrefix("not valid JSON"), benchmark.skipped[1].reason)
        // Forcing the layout reads the same; a folder without any benchmark says what it looked for.
        XCTAssertEqual(try BenchmarkLoader.open(BenchmarkSpec(argument: "winoground:" + scratch.path("wg"))).first?.items.count, 3)
        XCTAssertThrowsError(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("wg/images")))) { error in
            XCTAssertTrue("\(error)".contains("examples.jsonl"), "\(error)")
        }
    }

    /// The example world's test-swaps.jsonl: Winoground-style pairs, paths relative to the file, no tags.
    func testExampleWorldTestSwaps() throws {
        let scratch = try Scratch(self)
        var options = ExampleDataWriter.Options()
        options.count = 2
        options.size = 32
        _ = try ExampleDataWriter.write(to: scratch.path("world"), options: options)
        let file = scratch.path("world/test-swaps.jsonl")
        XCTAssertEqual(try BenchmarkLoader.detect(file: file), .winoground)
        let benchmark = try XCTUnwrap(BenchmarkLoader.open(BenchmarkSpec(argument: file)).first)
        XCTAssertEqual(benchmark.name, "test-swaps")
        XCTAssertEqual(benchmark.items.count, options.testPairs)
        XCTAssertTrue(benchmark.skipped.isEmpty)
        XCTAssertEqual(benchmark.items[3].images.map(\.path), [scratch.path("world/test-images/00003_0.png"), scratch.path("world/test-images/00003_1.png")])
        XCTAssertTrue(benchmark.items.allSatisfy { $0.subset == nil && $0.task == .pairs && $0.captions[0] != $0.captions[1] })
        XCTAssertTrue(benchmark.items.flatMap(\.images).allSatisfy { FileManager.default.fileExists(atPath: $0.path) })
    }

    // MARK: Multiple choice

    func testMultipleChoiceRowsAndTheirProblems() throws {
        let scratch = try Scratch(self)
        try scratch.put("mc/order.jsonl", text: """
        {"image": "images/a.png", "captions": ["right", "wrong", "worse"], "answer": 0, "id": 17}
        {"image": "/abs/b.png", "captions": ["x", "y"], "answer": 1}
        {"image": "c.png", "captions": ["x", "y"], "answer": 2}
        {"image": "c.png", "captions": ["x", "y"], "answer": true}
        {"image": "c.png", "captions": ["x"], "answer": 0}
        {"image": "c.png", "captions": ["x", 3], "answer": 0}
        [1, 2]
        """)
        let benchmark = try XCTUnwrap(BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("mc/order.jsonl"))).first)
        XCTAssertEqual(benchmark.kind, .multipleChoice)
        XCTAssertEqual(benchmark.items.count, 2)
        XCTAssertEqual(benchmark.items[0].id, "order.jsonl:1 (id 17)")
        XCTAssertEqual(benchmark.items[0].images[0].path, scratch.path("mc/images/a.png"))
        XCTAssertEqual(benchmark.items[1].images[0].path, "/abs/b.png")
        XCTAssertEqual(benchmark.items[1].task, .choice(answer: 1))
        XCTAssertEqual(benchmark.skipped.map(\.reason), [
            "\"answer\" 2 is not an index of the 2 captions",
            "\"answer\" must be an integer, found a boolean",
            "\"captions\" needs at least 2 captions, found 1",
            "\"captions\"[1] must be a string, found the number 3",
            "expected a JSON object",
        ])
        XCTAssertEqual(benchmark.skipped.first?.id, "order.jsonl:3")
    }

    // MARK: ARO

    func testAROItemsBoxesAndSubsets() throws {
        let scratch = try Scratch(self)
        try scratch.picture("aro/images/1.jpg", seed: 5, width: 40, height: 30)
        try scratch.put("aro/visual_genome_relation.json", text: """
        [{"image_id": "1", "image_path": "1.jpg", "bbox_x": 2, "bbox_y": 3, "bbox_w": 20.5, "bbox_h": 10, "relation_name": "on",
          "true_caption": "the cup is on the table", "false_caption": "the table is on the cup"},
         {"image_path": "1.jpg", "bbox_x": 5, "bbox_y": 5, "bbox_w": 0, "bbox_h": 10, "relation_name": "on",
          "true_caption": "a", "false_caption": "b"},
         {"image_path": "1.jpg", "bbox_x": 5, "bbox_y": 5, "bbox_w": 4, "bbox_h": 4, "true_caption": "a", "false_caption": "b"}]
        """)
        try scratch.put("aro/visual_genome_attribution.json", text: """
        [{"image_path": "1.jpg", "bbox_x": 0, "bbox_y": 0, "bbox_w": 50, "bbox_h": 40, "attributes": ["red", "wooden"],
          "true_caption": "the red cup and the wooden table", "false_caption": "the wooden cup and the red table"}]
        """)
        let benchmarks = try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("aro")))
        XCTAssertEqual(benchmarks.map(\.kind), [.aroRelation, .aroAttribution])
        let relation = benchmarks[0]
        XCTAssertEqual(relation.items.count, 1)
        // 2 + 20.5 = 22.5 rounds half to even, as Python's round in Pillow's crop.
        XCTAssertEqual(relation.items[0].images, [ImageReference(path: scratch.path("aro/images/1.jpg"), crop: CropBox(left: 2, top: 3, right: 22, bottom: 13))])
        XCTAssertEqual(relation.items[0].captions, ["the cup is on the table", "the table is on the cup"])
        XCTAssertEqual(relation.items[0].subset, "on")
        XCTAssertEqual(relation.skipped.map(\.id), ["visual_genome_relation.json[1]", "visual_genome_relation.json[2]"])
        XCTAssertTrue(relation.skipped[0].reason.contains("empty or too large"), relation.skipped[0].reason)
        XCTAssertEqual(relation.skipped[1].reason, "no \"relation_name\" field")
        XCTAssertEqual(benchmarks[1].items.first?.subset, "red_wooden")
        XCTAssertEqual(try BenchmarkLoader.detect(file: scratch.path("aro/visual_genome_attribution.json")), .aro)
        // Only the relation file when asked for it.
        XCTAssertEqual(try BenchmarkLoader.open(BenchmarkSpec(argument: "aro-relation:" + scratch.path("aro"))).map(\.kind), [.aroRelation])
    }

    /// Pillow's crop: the box may run past the image; the outside is black.
    func testCropFillsOutsideWithBlack() throws {
        let image = try RGBImageFixture.gradient(width: 4, height: 3)
        let cropped = try BenchmarkImage.crop(image, to: CropBox(left: 2, top: 1, right: 6, bottom: 3))
        XCTAssertEqual(cropped.width, 4)
        XCTAssertEqual(cropped.height, 2)
        for y in 0..<2 {
            for x in 0..<4 {
                let expected: [UInt8] = x < 2 ? Array(image.pixels[((y + 1) * 4 + x + 2) * 3 ..< ((y + 1) * 4 + x + 2) * 3 + 3]) : [0, 0, 0]
                XCTAssertEqual(Array(cropped.pixels[(y * 4 + x) * 3 ..< (y * 4 + x) * 3 + 3]), expected, "pixel \(x), \(y)")
            }
        }
        let outside = try BenchmarkImage.crop(image, to: CropBox(left: -5, top: -5, right: -1, bottom: -2))
        XCTAssertTrue(outside.pixels.allSatisfy { $0 == 0 })
    }

    // MARK: Detection

    func testDetectionAndForcedLayouts() throws {
        let scratch = try Scratch(self)
        let unknown = try scratch.put("x.jsonl", text: "{\"foo\": 1}\n")
        XCTAssertThrowsError(try BenchmarkLoader.detect(file: unknown)) { error in
            XCTAssertTrue("\(error)".contains("KIND:PATH"), "\(error)")
        }
        XCTAssertThrowsError(try BenchmarkLoader.detect(file: try scratch.put("empty.json", text: "  \n")))
        XCTAssertThrowsError(try BenchmarkLoader.open(BenchmarkSpec(argument: scratch.path("missing")))) { error in
            XCTAssertEqual("\(error)", scratch.path("missing") + ": the benchmark does not exist")
        }
        // A colon that does not follow a layout name is part of the path.
        XCTAssertEqual(BenchmarkSpec(argument: "data:set/x.jsonl"), BenchmarkSpec(layout: nil, path: "data:set/x.jsonl"))
        XCTAssertEqual(BenchmarkSpec(argument: "choice:a:b.jsonl"), BenchmarkSpec(layout: .choice, path: "a:b.jsonl"))
        // Two arguments naming the same benchmark get distinct names (their bootstrap seeds differ too).
        try scratch.put("a/test-swaps.jsonl", text: "{\"image_0\": \"0.png\", \"image_1\": \"1.png\", \"caption_0\": \"a\", \"caption_1\": \"b\"}\n")
        let twice = try BenchmarkLoader.open([BenchmarkSpec(argument: scratch.path("a/test-swaps.jsonl")), BenchmarkSpec(argument: scratch.path("a/test-swaps.jsonl"))])
        XCTAssertEqual(twice.map(\.name), ["test-swaps", "test-swaps#2"])
        XCTAssertEqual(twice[0].items[0].images[0].path, scratch.path("a/0.png"))
    }
}
