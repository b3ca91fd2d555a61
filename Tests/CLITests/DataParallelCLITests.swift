import Foundation
import XCTest

/// `mpirun -np N sdsclip finetune` on one machine (Open MPI, installed by scripts/install-deps.sh), on the
/// example world with the demo models: N ranks give what one process with the same global batch gives,
/// a killed job resumes with another rank count, and a failing rank stops the whole job by name.
final class DataParallelCLITests: XCTestCase {
    static let root = CLITests.root
    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("sdsclip") }

    /// Open MPI's launcher. Its absence is a failure, not a skip: CI installs it.
    func launcher() throws -> String {
        let path = "/usr/bin/mpirun"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail("mpirun is not installed (scripts/install-deps.sh installs openmpi-bin)")
            throw XCTSkip("no mpirun")
        }
        return path
    }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func exampleData(in folder: URL) throws -> String {
        let data = folder.appendingPathComponent("data").path
        let made = try CLITests.sdsclip(["example-data", data, "--count", "32", "--size", "40"])
        XCTAssertEqual(made.status, 0, made.stderr)
        return data
    }

    /// The runs here: batches of 4 pairs, an 8×8 latent, checkpoints every 2 steps.
    func arguments(data: String, out: String, steps: Int) -> [String] {
        ["finetune", "--clip", "fixtures/demo/clip", "--teacher", "fixtures/demo/sd", "--data", data + "/train.jsonl",
         "--out", out, "--latent-size", "8", "--batch-size", "4", "--steps", String(steps), "--checkpoint-every", "2",
         "--lr-clip", "1e-3", "--lr-map", "1e-2", "--warmup-steps", "2", "--seed", "7"]
    }

    /// `mpirun` with the flags a one-machine test needs (more ranks than cores; CI runs as root).
    func mpiArguments(ranks: Int, _ arguments: [String]) -> [String] {
        ["--oversubscribe", "--allow-run-as-root", "-np", String(ranks), binary.path] + arguments
    }

    func process(_ executable: String, _ arguments: [String], stderr: Any = FileHandle.nullDevice) -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = Self.root
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        return process
    }

    /// Runs to the end and collects both outputs.
    func run(_ executable: String, _ arguments: [String]) throws -> CLITests.Run {
        try CLITests.run(URL(fileURLWithPath: executable), arguments)
    }

    func mpirun(ranks: Int, _ arguments: [String]) throws -> CLITests.Run {
        try run(try launcher(), mpiArguments(ranks: ranks, arguments))
    }

    func single(_ arguments: [String]) throws -> CLITests.Run { try run(binary.path, arguments) }

    func metricsLines(_ out: String) -> Int {
        (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8))?.split(separator: "\n").count ?? 0
    }

    /// Waits (bounded) until the run's metrics log has `steps` lines.
    func waitForSteps(_ steps: Int, in out: String, while process: Process) {
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline, metricsLines(out) < steps { usleep(5_000) }
    }

    /// The processes whose parent is `parent` (the ranks mpirun started), with their MPI rank.
    func children(of parent: Int32) -> [(pid: Int32, rank: Int?)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> (Int32, Int?)? in
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == parent else { return nil }
            let environment = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/environ"))) ?? Data()
            let rank = environment.split(separator: 0).lazy.map { String(decoding: $0, as: UTF8.self) }
                .first { $0.hasPrefix("OMPI_COMM_WORLD_RANK=") }.flatMap { Int($0.dropFirst("OMPI_COMM_WORLD_RANK=".count)) }
            return (pid, rank)
        }
    }

    // MARK: Weights

    /// The F32 tensors of a safetensors file by name.
    func tensors(_ path: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 8 else { throw CocoaError(.fileReadCorruptFile) }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        var result: [String: [Float]] = [:]
        for (name, value) in header where name != "__metadata__" {
            let entry = try XCTUnwrap(value as? [String: Any])
            guard entry["dtype"] as? String == "F32" else { continue }
            let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
            let bytes = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
            result[name] = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return result
    }

    /// Every tensor of the distilled CLIP and h_w within `tolerance` of the other run's, relative to the
    /// tensor's largest magnitude (0: bit-identical files).
    func assertSameWeights(_ a: String, _ b: String, tolerance: Float, file: StaticString = #filePath, line: UInt = #line) throws {
        for name in ["final/model.safetensors", "final/latent_map/latent_map.safetensors"] {
            if tolerance == 0 {
                XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(a)/\(name)")), try Data(contentsOf: URL(fileURLWithPath: "\(b)/\(name)")),
                               name, file: file, line: line)
                continue
            }
            let left = try tensors("\(a)/\(name)"), right = try tensors("\(b)/\(name)")
            XCTAssertEqual(Set(left.keys), Set(right.keys), name, file: file, line: line)
            XCTAssertFalse(left.isEmpty, name, file: file, line: line)
            var worst: (Float, String) = (0, "")
            for (key, x) in left {
                let y = right[key] ?? []
                XCTAssertEqual(x.count, y.count, key, file: file, line: line)
                let scale = max(x.map(abs).max() ?? 0, Float.leastNormalMagnitude)
                let difference = zip(x, y).map { abs($0 - $1) }.max() ?? 0
                if difference / scale > worst.0 { worst = (difference / scale, key) }
            }
            XCTAssertLessThanOrEqual(worst.0, tolerance, "\(name): \(worst.1)", file: file, line: line)
        }
    }

    // MARK: Tests

    /// 2 ranks × accumulation 1 = 1 process × accumulation 2: bit-identical (a sum of two is the same in
    /// either order). 4 ranks = 1 process × accumulation 4 within 1e-6 relative (the all-reduce adds
    /// four partial sums in its own order).
    func testTwoAndFourRanksEqualOneProcessWithTheSameGlobalBatch() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        for ranks in [2, 4] {
            let one = folder.appendingPathComponent("one-\(ranks)").path, many = folder.appendingPathComponent("ranks-\(ranks)").path
            let reference = try single(arguments(data: data, out: one, steps: 4) + ["--accumulation", String(ranks)])
            XCTAssertEqual(reference.status, 0, reference.stderr)
            let parallel = try mpirun(ranks: ranks, arguments(data: data, out: many, steps: 4))
            XCTAssertEqual(parallel.status, 0, parallel.stderr)
            XCTAssertTrue(parallel.stderr.contains("global batch \(4 * ranks) = \(ranks) ranks × batch-size 4 × accumulation 1"), parallel.stderr)
            XCTAssertTrue(parallel.stdout.contains("all-reduce:"), parallel.stdout)
            XCTAssertFalse(reference.stdout.contains("all-reduce:"), "a run without mpirun prints as before")
            try assertSameWeights(one, many, tolerance: ranks == 2 ? 0 : 1e-6)
            // Rank 0 alone writes: one metrics line a step, each with the all-reduce time.
            let lines = try String(contentsOfFile: many + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 4)
            XCTAssertTrue(lines.allSatisfy { $0.contains("\"allreduce_s\"") && $0.contains("\"samples\": ") }, "\(lines)")
            XCTAssertTrue(lines.last?.contains("\"samples\": \(16 * ranks)") ?? false, "samples of the whole job: \(lines)")
        }
    }

    /// SIGKILL of a whole 2-rank job (mpirun and both ranks), resumed by one process with accumulation 2;
    /// and the reverse. Both end bit-identical to the uninterrupted run.
    func testKilledJobResumesWithAnotherRankCount() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let steps = 8
        let reference = folder.appendingPathComponent("reference").path
        XCTAssertEqual(try single(arguments(data: data, out: reference, steps: steps) + ["--accumulation", "2"]).status, 0)

        // 2 ranks, killed after step 3 (the last checkpoint is step 2), resumed by one process.
        let twoThenOne = folder.appendingPathComponent("two-then-one").path
        let job = process(try launcher(), mpiArguments(ranks: 2, arguments(data: data, out: twoThenOne, steps: steps)))
        try job.run()
        waitForSteps(3, in: twoThenOne, while: job)
        let ranks = children(of: job.processIdentifier)
        XCTAssertEqual(ranks.compactMap(\.rank).sorted(), [0, 1], "\(ranks)")
        kill(job.processIdentifier, SIGKILL)
        ranks.forEach { kill($0.pid, SIGKILL) }
        job.waitUntilExit()
        XCTAssertFalse(FileManager.default.fileExists(atPath: twoThenOne + "/final"))
        // The global batch must stay: one process needs accumulation 2, and is told so.
        let refused = try single(["finetune", "--out", twoThenOne, "--resume", "latest"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("global batch") && refused.stderr.contains("--accumulation 2"), refused.stderr)
        let resumed = try single(["finetune", "--out", twoThenOne, "--resume", "latest", "--accumulation", "2"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at step"), resumed.stderr)
        try assertSameWeights(reference, twoThenOne, tolerance: 0)

        // One process, killed after step 3, resumed by 2 ranks with accumulation 1.
        let oneThenTwo = folder.appendingPathComponent("one-then-two").path
        let alone = process(binary.path, arguments(data: data, out: oneThenTwo, steps: steps) + ["--accumulation", "2"])
        try alone.run()
        waitForSteps(3, in: oneThenTwo, while: alone)
        kill(alone.processIdentifier, SIGKILL)
        alone.waitUntilExit()
        let parallel = try mpirun(ranks: 2, ["finetune", "--out", oneThenTwo, "--resume", "latest", "--accumulation", "1"])
        XCTAssertEqual(parallel.status, 0, parallel.stderr)
        XCTAssertTrue(parallel.stderr.contains("resuming at step"), parallel.stderr)
        try assertSameWeights(reference, oneThenTwo, tolerance: 0)
    }

    /// SIGUSR1 to mpirun (which forwards it to every rank): one checkpoint by rank 0, status 138 from
    /// the job, and the resume ends as the uninterrupted run.
    func testSIGUSR1StopsTheJobCleanlyAndItResumes() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let reference = folder.appendingPathComponent("reference").path
        XCTAssertEqual(try single(arguments(data: data, out: reference, steps: 8) + ["--accumulation", "2"]).status, 0)
        let out = folder.appendingPathComponent("stopped").path
        let err = Pipe()
        let job = process(try launcher(), mpiArguments(ranks: 2, arguments(data: data, out: out, steps: 8)), stderr: err)
        try job.run()
        waitForSteps(3, in: out, while: job)
        kill(job.processIdentifier, SIGUSR1)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertEqual(job.terminationStatus, 138, message)
        XCTAssertEqual(message.components(separatedBy: "stopped by SIGUSR1").count, 2, "rank 0 alone reports: \(message)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/final"))
        let resumed = try mpirun(ranks: 2, ["finetune", "--out", out, "--resume", "latest"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try assertSameWeights(reference, out, tolerance: 0)
    }

    /// A rank that stops answering (SIGSTOP) makes the others give up after --collective-timeout (15 s: long
    /// enough that a loaded machine's normal steps never reach it), naming
    /// the collective and the step, and the whole job ends; a rank whose share of the data is too bad
    /// stops the job naming itself.
    func testFailingRankStopsTheWholeJobByName() throws {
        let folder = try temporaryFolder()
        let data = try exampleData(in: folder)
        let out = folder.appendingPathComponent("stuck").path
        let err = Pipe()
        let job = process(try launcher(), mpiArguments(ranks: 2, arguments(data: data, out: out, steps: 500) + ["--collective-timeout", "15"]),
                          stderr: err)
        try job.run()
        waitForSteps(1, in: out, while: job)
        XCTAssertTrue(job.isRunning, "the job ended before its first step")
        let stuck = try XCTUnwrap(children(of: job.processIdentifier).first { $0.rank == 1 })
        kill(stuck.pid, SIGSTOP)
        let started = Date()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        job.waitUntilExit()
        XCTAssertNotEqual(job.terminationStatus, 0, message)
        XCTAssertLessThan(Date().timeIntervalSince(started), 90, "no rank waits forever")
        XCTAssertTrue(message.range(of: #"rank 0 failed: rank 0: the (statistics|gradient) all-reduce of step \d+ did not complete within 15 s"#,
                                    options: .regularExpression) != nil, message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/final"))
        kill(stuck.pid, SIGKILL)  // in case MPI_Abort has not reached it

        // Half the images are not images: whichever rank passes the 5 % limit first ends the job.
        let images = try FileManager.default.contentsOfDirectory(atPath: data + "/images").filter { $0.hasSuffix(".png") }.sorted()
        for name in images.enumerated().filter({ $0.offset % 2 == 0 }).map(\.element) {
            try Data("not a png".utf8).write(to: URL(fileURLWithPath: data + "/images/" + name))
        }
        // The limit is judged at the end of an epoch (4 steps here) on this small set, so the run asks for more.
        let bad = try mpirun(ranks: 2, arguments(data: data, out: folder.appendingPathComponent("bad").path, steps: 8))
        XCTAssertNotEqual(bad.status, 0, bad.stderr)
        XCTAssertTrue(bad.stderr.range(of: #"rank [01] failed: .*too many bad samples"#, options: .regularExpression) != nil, bad.stderr)
    }
}
