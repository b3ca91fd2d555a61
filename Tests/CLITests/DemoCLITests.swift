import Foundation
import XCTest

extension CLITests {
    /// `sdsclip demo` end to end with few steps: every stage runs, the report files are there, the exported
    /// folders load back and score exactly as each other, and report.json holds scores in [0, 1] with intervals.
    func testDemoRunsTheWholePipelineAndReports() throws {
        let out = try temporaryFolder().appendingPathComponent("demo")
        let run = try sdsclip(["demo", out.path, "--steps", "3", "--train-samples", "16", "--test-pairs", "12", "--resamples", "200"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for stage in 1...6 { XCTAssertTrue(run.stderr.contains("[\(stage)/6]"), "stage \(stage): \(run.stderr)") }
        XCTAssertEqual(run.stderr.components(separatedBy: "training for 3 steps").count, 3, run.stderr)
        XCTAssertTrue(run.stdout.contains("wrote \(out.path)/report.md"), run.stdout)
        for file in ["report.md", "report.json", "loss.png", "data/test-swaps.jsonl", "runs/sds/final/model.safetensors",
                     "runs/sds/final/vocab.json", "runs/control/final/model.safetensors", "runs/sds/metrics.jsonl",
                     "export/sds-hf/model.safetensors", "export/sds-hf/merges.txt", "export/sds-openclip/open_clip_model.safetensors",
                     "export/sds-openclip/vocab.json", "export/sds-hf/latent_map/latent_map.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        let png = try Data(contentsOf: out.appendingPathComponent("loss.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])

        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any])
        let benchmark = try XCTUnwrap(report["benchmark"] as? [String: Any])
        XCTAssertEqual(benchmark["scored"] as? Int, 12)
        let models = try XCTUnwrap(report["models"] as? [String: Any])
        XCTAssertEqual(Set(models.keys), ["base", "control", "sds"])
        for (name, entry) in models {
            let scores = try XCTUnwrap((entry as? [String: Any])?["scores"] as? [String: Any], name)
            for metric in ["text", "image", "group"] {
                let score = try XCTUnwrap(scores[metric] as? [String: Double], "\(name) \(metric)")
                let value = try XCTUnwrap(score["value"]), low = try XCTUnwrap(score["low"]), high = try XCTUnwrap(score["high"])
                XCTAssertTrue(0 <= low && low <= value && value <= high && high <= 1, "\(name) \(metric): \(score)")
                XCTAssertEqual(value * 12, (value * 12).rounded(), accuracy: 1e-9, "a fraction of the 12 pairs")
            }
        }
        let comparisons = try XCTUnwrap(report["comparisons"] as? [[String: Any]])
        XCTAssertEqual(comparisons.count, 9)
        // The teacher's diffusion-score classifier on the same pairs: Winoground scores with intervals.
        let teacher = try XCTUnwrap(report["teacher_diffusion_score"] as? [String: Any], "\(report)")
        for metric in ["text", "image", "group"] {
            let estimate = try XCTUnwrap(teacher[metric] as? [String: Any], "\(teacher)")
            let (value, low, high) = try (XCTUnwrap(estimate["value"] as? Double), XCTUnwrap(estimate["low"] as? Double), XCTUnwrap(estimate["high"] as? Double))
            XCTAssertTrue(0 <= low && low <= value && value <= high && high <= 1, "\(metric): \(estimate)")
        }
        let runs = try XCTUnwrap(report["runs"] as? [[String: Any]])
        let clipLosses = try runs.map { try XCTUnwrap(($0["final_losses"] as? [String: Double])?["loss_clip"]) }
        XCTAssertEqual(runs.map { $0["lambda"] as? Double }, [0.1, 0])
        XCTAssertNotEqual(clipLosses[0], clipLosses[1], "λ > 0 changes the trained LayerNorms, so L_CLIP differs by step 3")
        let markdown = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        XCTAssertTrue(markdown.contains("| SDS fine-tune") && markdown.contains("| teacher's diffusion-score classifier") && !markdown.contains("not measured") && markdown.contains("loss.png"), markdown)

        // The two exports load back in sdsclip (with the model's own tokenizer) and score identically.
        let json = out.appendingPathComponent("exports.json").path
        let compare = try sdsclip(["eval", out.appendingPathComponent("export/sds-hf").path, out.appendingPathComponent("data/test-swaps.jsonl").path,
                                   "--compare", out.appendingPathComponent("export/sds-openclip").path, "--resamples", "10", "--json", json])
        XCTAssertEqual(compare.status, 0, compare.stderr)
        let scored = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let scores = try XCTUnwrap(((scored["benchmarks"] as? [[String: Any]])?.first)?["scores"] as? [[String: Any]])
        XCTAssertEqual(scores.count, 3)
        for score in scores {
            let pair = try XCTUnwrap(score["models"] as? [[String: Any]])
            XCTAssertEqual(pair[0]["correct"] as? Int, pair[1]["correct"] as? Int, "\(score)")
            let difference = try XCTUnwrap(score["difference"] as? [String: Double])
            XCTAssertEqual(difference, ["value": 0, "low": 0, "high": 0])
        }
        // The SDS result scored in the report is the hf export's.
        let sdsText = try XCTUnwrap(((models["sds"] as? [String: Any])?["scores"] as? [String: Any])?["text"] as? [String: Double])
        XCTAssertEqual(sdsText["correct"].map(Int.init), pair0Correct(scores, metric: "text"))

        let again = try sdsclip(["demo", out.path, "--steps", "1"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("not empty") && again.stderr.contains("--overwrite"), again.stderr)
    }

    func pair0Correct(_ scores: [[String: Any]], metric: String) -> Int? {
        (scores.first { $0["metric"] as? String == metric }?["models"] as? [[String: Any]])?.first?["correct"] as? Int
    }
}
