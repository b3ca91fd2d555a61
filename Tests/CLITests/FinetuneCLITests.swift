import Foundation
import XCTest

/// `sdsclip finetune` as a user runs it, on the example world with the tiny demo models (real
/// 49408-token vocabulary): the artefacts of a run, exact resume after SIGKILL at several points and
/// after SIGINT, and errors before any work.
final class FinetuneCLITests: XCTestCase {
    static let root = CLITests.root
    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("sdsclip") }

    func run(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-finetune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func exampleData(in folder: URL) throws -> String {
        let data = folder.appendingPathComponent("data").path
        let made = try run(["example-data", data, "--count", "32", "--size", "40"])
        XCTAssertEqual(made.status, 0, made.stderr)
        return data
    }

    /// The settings of every run here: 12 steps of 4 pairs, an 8×8 latent, checkpoints every 2 steps.
    func arguments(data: String, out: String, steps: Int = 12) -> [String] {
        ["finetune", "--clip", "fixtures/demo/clip", "--teacher", "fixtures/demo/sd", "--data", data + "/train.jsonl",
         "--out", out, "--latent-size", "8", "--batch-size", "4", "--steps", String(steps), "--checkpoint-every", "2",
         "--keep-checkpoints", "2", "--lr-clip", "1e-3", "--lr-map", "1e-2", "--warmup-steps", "2", "--seed", "7"]
    }

    func contents(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    /// Metrics lines without the timing fields (which differ between runs).
    func metricsWithoutTimes(_ out: String) throws -> [String] {
        let text = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").map { line in
            line.replacingOccurrences(of: #", "elapsed_s": [^,]*, "samples_per_s": [^}]*"#, with: "", options: .regularExpression)
        }
    }

    func assertSameResult(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try contents(a + "/final/model.safetensors"), try contents(b + "/final/model.safetensors"), "distilled CLIP", file: file, line: line)
        XCTAssertEqual(try contents(a + "/final/latent_map/latent_map.safetensors"), try contents(b + "/final/latent_map/latent_map.safetensors"), "h_w", file: file, line: line)
        XCTAssertEqual(try metricsWithoutTimes(a), try metricsWithoutTimes(b), "metrics", file: file, line: line)
    }

    func testRunWritesCheckpointsMetricsPlotAndALoadableCLIP() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let out = folder.appendingPathComponent("run").path
        let result = try run(arguments(data: data, out: out))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("step 12/12"), result.stderr)
        XCTAssertTrue(result.stdout.contains("distilled CLIP"), result.stdout)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints").sorted()
        XCTAssertEqual(checkpoints, ["step-10", "step-12"], "the last 2 kept")
        XCTAssertEqual(try metricsWithoutTimes(out).count, 12)
        let png = try contents(out + "/loss.png")
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        // The distilled CLIP loads like any CLIP, and only LayerNorms changed.
        let embed = try run(["embed", out + "/final", "--image", data + "/images/00000.png"])
        XCTAssertEqual(embed.status, 0, embed.stderr)
        let training = try XCTUnwrap(JSONSerialization.jsonObject(with: contents(out + "/final/training.json")) as? [String: Any])
        let trained = try XCTUnwrap(training["trained"] as? [String])
        XCTAssertTrue(trained.allSatisfy { $0.contains("norm") || $0.contains("layrnorm") || $0.hasPrefix("latent_map.") }, "\(trained)")
        // A second run into the same folder without --resume is refused.
        let again = try run(arguments(data: data, out: out))
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--resume latest"), again.stderr)
    }

    /// Killed with SIGKILL at five different moments (between and inside steps and checkpoint writes),
    /// then resumed with `--resume latest`: the result is bit-identical to an uninterrupted run.
    func testResumeAfterSIGKILLAtFivePointsIsExact() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let reference = folder.appendingPathComponent("reference").path
        XCTAssertEqual(try run(arguments(data: data, out: reference)).status, 0)
        // Kill once the metrics log has this many steps, plus a delay (ms) that lands inside later work.
        let points: [(steps: Int, delay: UInt32)] = [(1, 0), (3, 150), (5, 40), (8, 90), (10, 10)]
        for (index, point) in points.enumerated() {
            let out = folder.appendingPathComponent("killed-\(index)").path
            let process = Process()
            process.executableURL = binary
            process.arguments = arguments(data: data, out: out)
            process.currentDirectoryURL = Self.root
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(120)
            while process.isRunning, Date() < deadline {
                let lines = (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
                if lines >= point.steps { break }
                usleep(5_000)
            }
            usleep(point.delay * 1000)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // The user's command again, plus --resume latest (before the first checkpoint it starts over).
            let resumed = try run(arguments(data: data, out: out) + ["--resume", "latest"])
            XCTAssertEqual(resumed.status, 0, "point \(index): \(resumed.stderr)")
            try assertSameResult(reference, out)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: out + "/checkpoints").filter { $0.hasPrefix(".") }
            XCTAssertEqual(leftovers, [], "a killed writer's partial folder is removed by the next write")
        }
    }

    /// SIGINT writes a checkpoint of the step reached and exits with 130; resuming ends as an
    /// uninterrupted run does.
    func testSIGINTCheckpointsAndResumes() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let reference = folder.appendingPathComponent("reference").path
        XCTAssertEqual(try run(arguments(data: data, out: reference)).status, 0)
        let out = folder.appendingPathComponent("interrupted").path
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments(data: data, out: out)
        process.currentDirectoryURL = Self.root
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        while process.isRunning, ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            usleep(5_000)
        }
        kill(process.processIdentifier, SIGINT)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, message)
        XCTAssertTrue(message.contains("stopped by SIGINT"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/final"), "no distilled CLIP from an interrupted run")
        // After a checkpoint, --out and --resume are all a resume needs.
        let resumed = try run(["finetune", "--out", out, "--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try assertSameResult(reference, out)
    }

    func testBadConfigurationFailsBeforeAnyWork() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let out = folder.appendingPathComponent("run").path
        let cases: [([String], String)] = [
            (["--latent-size", "7"], "multiple of"),
            (["--t-max", "1000"], "t-max"),
            (["--mapper", "grid"], "mapper"),
            (["--clip", "fixtures/sd/sd1_diffusers"], "CLIP"),
        ]
        for (extra, expected) in cases {
            let result = try run(arguments(data: data, out: out) + extra)
            XCTAssertEqual(result.status, 1, "\(extra): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(extra): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/metrics.jsonl"), "\(extra): no work started")
        }
        let config = folder.appendingPathComponent("bad.yaml").path
        try "batch-size: 4\nlearning-rate: 3\n".write(toFile: config, atomically: true, encoding: .utf8)
        let unknown = try run(["finetune", "--config", config, "--print-config"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("unknown setting 'learning-rate'"), unknown.stderr)
        // A teacher whose cross-attention width differs from its text encoder's.
        let printed = try run(arguments(data: data, out: out) + ["--print-config"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        let effective = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(effective["batch-size"] as? Int, 4)
        XCTAssertEqual(effective["lambda"] as? Double, 0.1)
    }
}
