import Foundation
import XCTest

extension CLITests {
    func json(_ path: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
    }

    func testEvalScoresFixturesWritesJSONAndCompares() throws {
        let folder = try temporaryFolder()
        let report = folder.appendingPathComponent("report.json")
        let run = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/winoground", "sugarcrepe:fixtures/eval/sugarcrepe",
                               "--json", report.path, "--resamples", "200"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("winoground (winoground, fixtures/eval/winoground/examples.jsonl): 12 of 12 items scored"), run.stdout)
        XCTAssertTrue(run.stdout.contains("replace_rel"), run.stdout)
        XCTAssertTrue(run.stderr.contains("embedding images 36/36"), run.stderr)
        let benchmarks = try XCTUnwrap(json(report)["benchmarks"] as? [[String: Any]])
        XCTAssertEqual(benchmarks.compactMap { $0["name"] as? String }, ["winoground", "sugarcrepe"])
        let text = try XCTUnwrap((benchmarks[0]["scores"] as? [[String: Any]])?.first)
        XCTAssertEqual(text["metric"] as? String, "text")
        XCTAssertEqual((text["models"] as? [[String: Any]])?.first?["correct"] as? Int, 5, "fixtures/eval/README.md: 5 of 12")

        let compared = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/choice/choice.jsonl", "--compare", "fixtures/demo/clip",
                                    "--json", report.path, "--resamples", "100"])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        XCTAssertTrue(compared.stdout.contains("model B: fixtures/demo/clip") && compared.stdout.contains("B − A"), compared.stdout)
        let score = try XCTUnwrap(((json(report)["benchmarks"] as? [[String: Any]])?.first?["scores"] as? [[String: Any]])?.first)
        XCTAssertEqual((score["models"] as? [[String: Any]])?.count, 2)
        XCTAssertNotNil(score["difference"] as? [String: Any])
    }

    func testEvalReadsTheExampleWorldsTestSwaps() throws {
        let world = try temporaryFolder().appendingPathComponent("world")
        XCTAssertEqual(try sdsclip(["example-data", world.path, "--count", "2", "--size", "32", "--test-pairs", "5"]).status, 0)
        let run = try sdsclip(["eval", "fixtures/demo/clip", world.appendingPathComponent("test-swaps.jsonl").path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("test-swaps (winoground, ") && run.stdout.contains("5 of 5 items scored"), run.stdout)
        XCTAssertTrue(run.stdout.contains("group"), run.stdout)
    }

    func testEvalNamesBadItemsAndFailsOnlyWhenNothingScores() throws {
        let folder = try temporaryFolder()
        let world = folder.appendingPathComponent("world")
        XCTAssertEqual(try sdsclip(["example-data", world.path, "--count", "2", "--size", "32", "--test-pairs", "3"]).status, 0)
        try FileManager.default.removeItem(at: world.appendingPathComponent("test-images/00001_0.png"))
        let file = world.appendingPathComponent("test-swaps.jsonl")
        let text = try String(contentsOf: file, encoding: .utf8) + "{\"image_0\": 3}\n"
        try text.write(to: file, atomically: true, encoding: .utf8)
        let run = try sdsclip(["eval", "fixtures/demo/clip", file.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("skipped test-swaps test-swaps.jsonl:2: cannot read image file"), run.stderr)
        XCTAssertTrue(run.stderr.contains("skipped test-swaps test-swaps.jsonl:4: no \"caption_0\" field"), run.stderr)
        XCTAssertTrue(run.stdout.contains("2 of 4 items scored, 2 skipped"), run.stdout)

        let nothing = folder.appendingPathComponent("nothing.jsonl")
        try "{\"image\": \"none.png\", \"captions\": [\"a\", \"b\"], \"answer\": 0}\n".write(to: nothing, atomically: true, encoding: .utf8)
        let empty = try sdsclip(["eval", "fixtures/demo/clip", nothing.path])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.stderr.contains("no item of any benchmark could be scored"), empty.stderr)

        let missing = try sdsclip(["eval", "fixtures/demo/clip", folder.appendingPathComponent("absent").path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("absent: the benchmark does not exist"), missing.stderr)
        XCTAssertEqual(try sdsclip(["eval", "fixtures/demo/clip"]).status, 64, "a BENCHMARK is required")
    }
}

extension CLITests {
    /// Zero-shot, retrieval and an example world (its swaps and probe) in one run, compared with a
    /// second model; --split picks another Karpathy split; bad layouts and flags are refused with the reason.
    func testEvalGeneralBenchmarksCompareAndSplit() throws {
        let folder = try temporaryFolder()
        let world = folder.appendingPathComponent("world")
        XCTAssertEqual(try sdsclip(["example-data", world.path, "--count", "12", "--size", "32", "--test-pairs", "3"]).status, 0)
        let report = folder.appendingPathComponent("report.json")
        let run = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/zeroshot", "retrieval:fixtures/eval/retrieval/dataset_coco.json",
                               world.path, "--compare", "fixtures/demo/clip", "--json", report.path, "--resamples", "100"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("zeroshot (zeroshot, fixtures/eval/zeroshot): 18 of 18 items scored"), run.stdout)
        XCTAssertTrue(run.stdout.contains("retrieval-coco-test (retrieval, fixtures/eval/retrieval/dataset_coco.json): 10 of 10 items scored"), run.stdout)
        XCTAssertTrue(run.stdout.contains("text→image R@10") && run.stdout.contains("top-5"), run.stdout)
        XCTAssertTrue(run.stdout.contains("test-swaps (winoground, ") && run.stdout.contains("probe (probe, "), run.stdout)
        XCTAssertTrue(run.stdout.contains("6 of 6 items scored") && run.stdout.contains("second shape"), run.stdout)
        let benchmarks = try XCTUnwrap(json(report)["benchmarks"] as? [[String: Any]])
        XCTAssertEqual(benchmarks.compactMap { $0["name"] as? String }, ["zeroshot", "retrieval-coco-test", "test-swaps", "probe"])
        let zeroShot = try XCTUnwrap(benchmarks[0]["scores"] as? [[String: Any]])
        XCTAssertEqual(zeroShot.compactMap { $0["metric"] as? String }, ["top-1", "top-5"])
        XCTAssertNotNil(zeroShot[0]["difference"] as? [String: Any])
        let reference = try json(Self.root.appendingPathComponent("fixtures/eval/expected-general.json"))
        let correct = try XCTUnwrap((reference["zeroshot"] as? [String: Any])?["correct"] as? [Int])
        XCTAssertEqual(zeroShot.compactMap { ($0["models"] as? [[String: Any]])?.first?["correct"] as? Int }, correct)

        // The fixture ships only the test split's images: the val entry is named, skipped, and nothing scores.
        let val = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/retrieval", "--split", "val", "--resamples", "10"])
        XCTAssertEqual(val.status, 1, val.stderr)
        XCTAssertTrue(val.stderr.contains("skipped retrieval-coco-val dataset_coco.json images[10] (COCO_val2014_000000000011.jpg): "), val.stderr)
        XCTAssertTrue(val.stdout.contains("retrieval-coco-val (retrieval, fixtures/eval/retrieval/dataset_coco.json): 0 of 1 items scored, 1 skipped"), val.stdout)
        XCTAssertEqual(try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/retrieval", "--split", "dev"]).status, 64)
        let file = try sdsclip(["eval", "fixtures/eval/clip", "zeroshot:fixtures/eval/retrieval/dataset_coco.json"])
        XCTAssertEqual(file.status, 1)
        XCTAssertTrue(file.stderr.contains("zeroshot needs a folder, not a file"), file.stderr)
    }
}

extension CLITests {
    /// A broken image in a class folder and a missing retrieval image are named on stderr, skipped and
    /// counted; the rest is scored.
    func testEvalGeneralBenchmarksNameBadItems() throws {
        let folder = try temporaryFolder()
        let classes = folder.appendingPathComponent("classes")
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("fixtures/eval/zeroshot"), to: classes)
        try Data("not a JPEG".utf8).write(to: classes.appendingPathComponent("red_circle/99.jpg"))
        let coco = folder.appendingPathComponent("coco")
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("fixtures/eval/retrieval"), to: coco)
        try FileManager.default.removeItem(at: coco.appendingPathComponent("val2014/COCO_val2014_000000000003.jpg"))
        let run = try sdsclip(["eval", "fixtures/demo/clip", classes.path, coco.path, "--resamples", "50"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("skipped zeroshot red_circle/99.jpg: "), run.stderr)
        XCTAssertTrue(run.stdout.contains("zeroshot (zeroshot, \(classes.path)): 18 of 19 items scored, 1 skipped"), run.stdout)
        XCTAssertTrue(run.stderr.contains("skipped retrieval-coco-test dataset_coco.json images[2] (COCO_val2014_000000000003.jpg): "), run.stderr)
        XCTAssertTrue(run.stderr.contains("captions leave the gallery too"), run.stderr)
        XCTAssertTrue(run.stdout.contains("9 of 10 items scored, 1 skipped"), run.stdout)
    }
}
