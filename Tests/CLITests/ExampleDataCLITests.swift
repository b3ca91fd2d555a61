import Foundation
import XCTest

extension CLITests {
    func testExampleDataWritesEveryLayoutAndRefusesANonEmptyFolder() throws {
        let out = try temporaryFolder().appendingPathComponent("example")
        let first = try sdsclip(["example-data", out.path, "--count", "10", "--size", "32", "--shard-size", "4", "--test-pairs", "3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("wrote 10 samples") && first.stdout.contains("3 webdataset shards"), first.stdout)
        for file in ["train.jsonl", "train.csv", "test-swaps.jsonl", "shards/train-002.tar", "images/00009.png",
                     "coco/annotations/captions_train2017.json", "coco/train2017/00009.png", "test-images/00002_1.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let again = try sdsclip(["example-data", out.path])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("not empty") && again.stderr.contains("--overwrite"), again.stderr)
        XCTAssertEqual(try sdsclip(["example-data", out.path, "--overwrite", "--count", "4"]).status, 0)
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("train.jsonl"), encoding: .utf8).split(separator: "\n").count, 4)
        XCTAssertEqual(try sdsclip(["example-data", out.path, "--overwrite", "--size", "4"]).status, 1)
        XCTAssertTrue(try sdsclip(["example-data", "--help"]).stdout.contains("--shard-size"))
    }
}
