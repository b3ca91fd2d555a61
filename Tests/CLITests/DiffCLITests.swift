import Foundation
import XCTest

/// `sdsclip diff`: what a user sees, the published JSON schema, and the exit statuses.
final class DiffCLITests: XCTestCase {
    private func sdsclip(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    func testSameWeightsInTwoFormatsHaveNoDifferences() throws {
        let run = try sdsclip(["diff", "fixtures/clip/hf/model.safetensors", "fixtures/clip/hf/pytorch_model.bin", "--exit-code"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("summary: 0 only in A, 0 only in B, 0 changed, 78 identical (no differences)"), run.stdout)
    }

    func testReportsChangesInTextAndSchemaValidJSONWithFilterAndExitCode() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-diff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let a = folder.appendingPathComponent("a.safetensors"), b = folder.appendingPathComponent("b.safetensors")
        try CLITests.writeSafetensors([("enc.layer_norm.weight", [4], [1, 1, 1, 1]), ("enc.fc.weight", [2, 2], [0.5, -2, 0, 1]),
                              ("enc.gone", [1], [3]), ("enc.reshaped", [4], [1, 2, 3, 4])], to: a)
        try CLITests.writeSafetensors([("enc.layer_norm.weight", [4], [1, 1.25, 1, 0.5]), ("enc.fc.weight", [2, 2], [0.5, -2, 0, 1]),
                              ("enc.new", [1], [3]), ("enc.reshaped", [2, 2], [1, 2, 3, 4])], to: b)

        let text = try sdsclip(["diff", a.path, b.path])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("only in A (1):\n  enc.gone  F32 [1]"), text.stdout)
        XCTAssertTrue(text.stdout.contains("only in B (1):\n  enc.new  F32 [1]"), text.stdout)
        XCTAssertTrue(text.stdout.contains("F32  [4]  max-abs 0.5  relative 0.5  changed 2 / 4 (50.0%)"), text.stdout)
        XCTAssertTrue(text.stdout.contains("F32  [4] → [2, 2]  values not compared: the shapes differ"), text.stdout)
        XCTAssertTrue(text.stdout.contains("summary: 1 only in A, 1 only in B, 2 changed, 1 identical"), text.stdout)
        XCTAssertEqual(try sdsclip(["diff", a.path, b.path, "--exit-code"]).status, 1)

        let json = try sdsclip(["diff", a.path, b.path, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8))
        let schema = try JSONSchemaValidator(schemaFile: CLITests.root.appendingPathComponent("docs/schemas/diff.schema.json").path)
        XCTAssertEqual(schema.violations(of: object), [])
        let report = try XCTUnwrap(object as? [String: Any])
        XCTAssertEqual((report["a"] as? [String: Any])?["path"] as? String, a.standardizedFileURL.path)
        XCTAssertTrue(report["filter"].map { $0 is NSNull } ?? false)
        let pairs = try XCTUnwrap(report["inBoth"] as? [[String: Any]])
        let norm = try XCTUnwrap(pairs.first { $0["name"] as? String == "enc.layer_norm.weight" })
        let values = try XCTUnwrap(norm["values"] as? [String: Any])
        XCTAssertEqual(values["maxAbs"] as? Double, 0.5)
        XCTAssertEqual(values["changedElements"] as? Int, 2)
        let reshaped = try XCTUnwrap(pairs.first { $0["name"] as? String == "enc.reshaped" })
        XCTAssertTrue(reshaped["values"].map { $0 is NSNull } ?? false)
        // The validator itself rejects a report with a key missing.
        var broken = report
        broken.removeValue(forKey: "summary")
        XCTAssertEqual(schema.violations(of: broken), ["$: missing required key 'summary'"])

        let filtered = try sdsclip(["diff", a.path, b.path, "--filter", "*layer_norm*", "--json"])
        let filteredReport = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(filtered.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((filteredReport["inBoth"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["enc.layer_norm.weight"])
        XCTAssertEqual((filteredReport["onlyInA"] as? [Any])?.count, 0)
        XCTAssertEqual(filteredReport["filter"] as? String, "*layer_norm*")
    }

    func testAMissingSideIsAClearError() throws {
        let run = try sdsclip(["diff", "fixtures/clip/hf/model.safetensors", "no/such/weights.safetensors"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("no/such/weights.safetensors"), run.stderr)
        XCTAssertEqual(run.stdout, "")
    }
}
