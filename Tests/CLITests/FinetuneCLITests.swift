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

    /// Evaluation lines of metrics.jsonl as JSON objects.
    func evaluationLines(_ out: String) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }.filter { $0["benchmark"] != nil }
    }

    /// `--eval-every 4 --eval test-swaps`: scores at steps 4, 8 and 12 beside the losses, the last equal to
    /// `sdsclip eval` of the distilled CLIP; training is bit-identical to a run without evaluation, and a
    /// run interrupted by SIGINT and resumed logs exactly what the uninterrupted one does.
    func testEvaluationDuringTrainingIsLoggedAndChangesNothing() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let plain = folder.appendingPathComponent("plain").path, evaluated = folder.appendingPathComponent("evaluated").path
        let evalFlags = ["--eval-every", "4", "--eval", data + "/test-swaps.jsonl"]
        XCTAssertEqual(try run(arguments(data: data, out: plain)).status, 0)
        let result = try run(arguments(data: data, out: evaluated) + evalFlags)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("eval step 4: test-swaps text "), result.stderr)
        XCTAssertEqual(try contents(plain + "/final/model.safetensors"), try contents(evaluated + "/final/model.safetensors"))
        XCTAssertEqual(try contents(plain + "/final/latent_map/latent_map.safetensors"), try contents(evaluated + "/final/latent_map/latent_map.safetensors"))
        XCTAssertEqual(try metricsWithoutTimes(plain), try metricsWithoutTimes(evaluated).filter { !$0.contains("\"benchmark\"") })

        let lines = try evaluationLines(evaluated)
        XCTAssertEqual(lines.map { $0["step"] as? Int }, [4, 4, 4, 8, 8, 8, 12, 12, 12])
        XCTAssertEqual(lines.prefix(3).map { $0["metric"] as? String }, ["text", "image", "group"])
        for line in lines {
            XCTAssertEqual(line["benchmark"] as? String, "test-swaps")
            XCTAssertEqual(line["scope"] as? String, "all")
            let value = try XCTUnwrap(line["value"] as? Double), interval = try XCTUnwrap(line["interval"] as? [Double])
            XCTAssertTrue((0...1).contains(value) && interval.count == 2 && interval[0] <= value && value <= interval[1], "\(line)")
        }
        // The last scores are `sdsclip eval`'s on the distilled CLIP: same readers, scoring and bootstrap.
        let report = folder.appendingPathComponent("eval.json").path
        let eval = try run(["eval", evaluated + "/final", data + "/test-swaps.jsonl", "--json", report])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: contents(report)) as? [String: Any])
        let scores = try XCTUnwrap(((json["benchmarks"] as? [[String: Any]])?.first)?["scores"] as? [[String: Any]])
        let expected = scores.compactMap { score -> [Double]? in
            guard let model = (score["models"] as? [[String: Any]])?.first else { return nil }
            return [model["value"], model["low"], model["high"]].compactMap { $0 as? Double }
        }
        let logged = lines.suffix(3).map { line -> [Double] in
            [line["value"] as? Double ?? .nan] + ((line["interval"] as? [Double]) ?? [])
        }
        XCTAssertEqual(logged, expected)

        // SIGINT after the first evaluation, then --resume latest: the same log and weights.
        let out = folder.appendingPathComponent("interrupted").path
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments(data: data, out: out) + evalFlags
        process.currentDirectoryURL = Self.root
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        while process.isRunning, ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0) < 8 {
            usleep(5_000)
        }
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        let resumed = try run(["finetune", "--out", out, "--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try assertSameResult(evaluated, out)
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
        // An output folder that cannot be made (a file stands there): a clear error, the file untouched.
        let blocked = folder.appendingPathComponent("not-a-folder").path
        try "keep me\n".write(toFile: blocked, atomically: true, encoding: .utf8)
        let unwritable = try run(arguments(data: data, out: blocked))
        XCTAssertEqual(unwritable.status, 1, unwritable.stderr)
        XCTAssertTrue(unwritable.stderr.contains("--out: \(blocked) is a file, not a folder"), unwritable.stderr)
        XCTAssertEqual(try String(contentsOfFile: blocked, encoding: .utf8), "keep me\n")
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
