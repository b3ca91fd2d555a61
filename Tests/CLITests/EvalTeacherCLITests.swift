import Foundation
import XCTest

extension CLITests {
    /// `--teacher` beside a CLIP (model B, B − A) and alone (MODEL left out), reproducible from its seed.
    func testEvalTeacherScoresBesideMODELAndAlone() throws {
        let folder = try temporaryFolder()
        let report = folder.appendingPathComponent("report.json")
        let run = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/winoground", "--teacher", "fixtures/demo/sd",
                               "--teacher-timesteps", "2", "--json", report.path, "--resamples", "100"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("model B: fixtures/demo/sd") && run.stdout.contains("B − A"), run.stdout)
        XCTAssertTrue(run.stdout.contains("s(c, i): −(denoising error of the teacher), mean over K = 2 timesteps (250, 750)"), run.stdout)
        // 12 items × 2 images × 2 captions × 2 timesteps.
        XCTAssertTrue(run.stderr.contains("fixtures/demo/sd: denoising caption × image × timestep rows 96/96"), run.stderr)
        let first = try Data(contentsOf: report)
        let models = try XCTUnwrap(json(report)["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 2)
        XCTAssertTrue(models[0]["scoring"] is NSNull)
        XCTAssertTrue((models[1]["scoring"] as? String)?.contains("seed 0") == true)

        let again = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/winoground", "--teacher", "fixtures/demo/sd",
                                 "--teacher-timesteps", "2", "--json", report.path, "--resamples", "100"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(try Data(contentsOf: report), first, "the same seed gives the same report")

        let alone = try sdsclip(["eval", "--teacher", "fixtures/demo/sd", "fixtures/eval/choice/choice.jsonl", "--teacher-timesteps", "1",
                                 "--teacher-seed", "3", "--resamples", "50"])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        XCTAssertTrue(alone.stdout.contains("model: fixtures/demo/sd (6 images, 21 captions encoded)"), alone.stdout)
        XCTAssertTrue(alone.stdout.contains("choice (choice, fixtures/eval/choice/choice.jsonl): 6 of 6 items scored"), alone.stdout)
        XCTAssertFalse(alone.stdout.contains("model B"), alone.stdout)
    }

    func testEvalTeacherRefusesWhatCannotWork() throws {
        let both = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/winoground", "--teacher", "fixtures/demo/sd", "--compare", "fixtures/demo/clip"])
        XCTAssertEqual(both.status, 64)
        XCTAssertTrue(both.stderr.contains("--teacher and --compare each add the second model"), both.stderr)

        // A pipeline folder without its VAE.
        let folder = try temporaryFolder().appendingPathComponent("novae")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let demo = CLITests.root.appendingPathComponent("fixtures/demo/sd")
        for part in ["model_index.json", "scheduler", "text_encoder", "unet"] {
            try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent(part), withDestinationURL: demo.appendingPathComponent(part))
        }
        let novae = try sdsclip(["eval", "--teacher", folder.path, "fixtures/eval/choice/choice.jsonl", "--teacher-timesteps", "1"])
        XCTAssertEqual(novae.status, 1)
        XCTAssertTrue(novae.stderr.contains("the diffusion-score classifier encodes images with the teacher's VAE, which could not be loaded"), novae.stderr)

        let odd = try sdsclip(["eval", "--teacher", "fixtures/demo/sd", "fixtures/eval/choice/choice.jsonl", "--teacher-resolution", "0"])
        XCTAssertEqual(odd.status, 64)
        let many = try sdsclip(["eval", "--teacher", "fixtures/demo/sd", "fixtures/eval/choice/choice.jsonl", "--teacher-timesteps", "5000"])
        XCTAssertEqual(many.status, 1)
        XCTAssertTrue(many.stderr.contains("K = 5000 timesteps must be 1 to the schedule's 1000"), many.stderr)
    }

    /// Zero-shot, retrieval and the probe need embeddings: beside the teacher they are reported unscored,
    /// with the reason, while the item benchmarks of the same run are scored for both models.
    func testEvalTeacherLeavesCorpusBenchmarksUnscoredWithTheReason() throws {
        let run = try sdsclip(["eval", "fixtures/eval/clip", "fixtures/eval/winoground", "zeroshot:fixtures/eval/zeroshot",
                               "--teacher", "fixtures/demo/sd", "--teacher-timesteps", "1", "--resamples", "20"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("skipped zeroshot zeroshot: needs embeddings, which fixtures/demo/sd does not give"), run.stderr)
        XCTAssertTrue(run.stdout.contains("zeroshot (zeroshot, fixtures/eval/zeroshot): 0 of 18 items scored, 1 skipped"), run.stdout)
        XCTAssertTrue(run.stdout.contains("12 of 12 items scored"), run.stdout)
    }
}
