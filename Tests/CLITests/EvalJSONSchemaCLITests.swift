import Foundation
import XCTest

/// `eval --json FILE` matches docs/schemas/eval.schema.json for every benchmark kind, with one and two models.
final class EvalJSONSchemaCLITests: XCTestCase {
    func testEvalReportsMatchTheirSchemaForEveryBenchmarkKind() throws {
        let schema = try JSONSchemaValidator(schemaFile: CLITests.root.appendingPathComponent("docs/schemas/eval.schema.json").path)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-evaljson-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let world = folder.appendingPathComponent("world").path
        XCTAssertEqual(try CLITests.sdsclip(["example-data", world, "--count", "12", "--size", "32", "--test-pairs", "3"]).status, 0)
        let report = folder.appendingPathComponent("report.json")
        let runs: [[String]] = [
            ["fixtures/eval/winoground", "sugarcrepe:fixtures/eval/sugarcrepe", "fixtures/eval/choice/choice.jsonl",
             "aro-relation:fixtures/eval/aro/visual_genome_relation.json", "aro-attribution:fixtures/eval/aro/visual_genome_attribution.json"],
            ["fixtures/eval/zeroshot", "retrieval:fixtures/eval/retrieval/dataset_coco.json", world, "--compare", "fixtures/demo/clip"],
        ]
        var kinds = Set<String>()
        for arguments in runs {
            let run = try CLITests.sdsclip(["eval", "fixtures/eval/clip"] + arguments + ["--json", report.path, "--resamples", "20"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: report))
            XCTAssertEqual(schema.violations(of: object), [], "\(arguments)")
            let benchmarks = (object as? [String: Any])?["benchmarks"] as? [[String: Any]] ?? []
            kinds.formUnion(benchmarks.compactMap { $0["kind"] as? String })
        }
        XCTAssertEqual(kinds, ["winoground", "sugarcrepe", "choice", "aro-relation", "aro-attribution", "zeroshot", "retrieval", "probe"])
    }
}
