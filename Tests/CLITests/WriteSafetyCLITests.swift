import Foundation
import XCTest

/// Writes never lose or damage a file: `convert` refuses an existing output without `--overwrite`,
/// the input as output and special destinations; signals remove the temp file; a kill at any moment
/// leaves the destination as it was. And `verify` fails broken bundles plainly.
final class WriteSafetyCLITests: XCTestCase {
    func run(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    var binary: URL { Bundle.main.bundleURL.appendingPathComponent("sdsclip") }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-safety-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func entries(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    func temporaries(_ folder: URL) throws -> [String] { try entries(folder).filter { $0.hasPrefix(".") } }

    /// A safetensors file of one F32 tensor of `count` distinct values.
    func writeInput(_ path: URL, count: Int) throws {
        try CLITests.writeSafetensors([("w", [count], (0..<count).map { Float($0 % 65_521) * 0.25 })], to: path)
    }

    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits (up to 20 s) until `folder` holds a temp file of `name`.
    func waitForTemporary(of name: String, in folder: URL) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try entries(folder).contains(where: { $0.hasPrefix(".\(name).tmp-") }) { return }
            usleep(1000)
        }
        XCTFail("no temp file of \(name) appeared")
    }

    func testAnExistingOutputNeedsOverwriteWhichKeepsItsMode() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("out.safetensors")
        try Data("precious".utf8).write(to: output)
        XCTAssertEqual(chmod(output.path, 0o640), 0)
        let refused = try run(["convert", "fixtures/clip/openai_jit/ViT-tiny.pt", output.path, "--quiet"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("the output exists") && refused.stderr.contains("--overwrite"), refused.stderr)
        XCTAssertEqual(try String(contentsOf: output, encoding: .utf8), "precious")
        let replaced = try run(["convert", "fixtures/clip/openai_jit/ViT-tiny.pt", output.path, "--quiet", "--overwrite"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertGreaterThan(try Data(contentsOf: output).count, 100_000)
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: output.path)[.posixPermissions] as? Int)
        XCTAssertEqual(mode, 0o640, "the replaced file's permissions are kept")
        XCTAssertEqual(try entries(folder), ["out.safetensors"])
    }

    func testTheInputIsNeverReplacedEvenWithOverwrite() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("a.pt")
        try FileManager.default.copyItem(atPath: "fixtures/clip/openai_jit/ViT-tiny.pt", toPath: input.path)
        let original = try Data(contentsOf: input)
        let hard = folder.appendingPathComponent("b.pt").path
        XCTAssertEqual(link(input.path, hard), 0)
        for output in [input.path, hard] {
            let result = try run(["convert", input.path, output, "--overwrite", "--quiet"])
            XCTAssertEqual(result.status, 1, output)
            XCTAssertTrue(result.stderr.contains("is the input"), result.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: input), original, "the input is untouched")
        XCTAssertEqual(try entries(folder), ["a.pt", "b.pt"])
    }

    func testSymlinkAndFIFODestinationsAreRefused() throws {
        let folder = try temporaryFolder()
        let target = folder.appendingPathComponent("target.safetensors")
        try Data("target".utf8).write(to: target)
        let link = folder.appendingPathComponent("link.safetensors").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target.path)
        let fifo = folder.appendingPathComponent("fifo.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for (path, words) in [(link, "symbolic link"), (fifo, "FIFO")] {
            let result = try run(["convert", "fixtures/clip/openai_jit/ViT-tiny.pt", path, "--overwrite", "--quiet"])
            XCTAssertEqual(result.status, 1, path)
            XCTAssertTrue(result.stderr.contains(words), result.stderr)
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: link)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeSymbolicLink)
        var info = stat()
        XCTAssertEqual(lstat(fifo, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "target", "nothing written through the link")
        XCTAssertEqual(try entries(folder), ["fifo.safetensors", "link.safetensors", "target.safetensors"])
    }

    /// SIGINT, SIGTERM and SIGHUP while the temp file is being written: the process dies of the
    /// signal, the temp file is gone and the old output is intact. After SIGKILL the temp file stays,
    /// and the next write to the same output removes it.
    func testSignalsRemoveTheTempFileAndTheNextRunRemovesAKilledOnes() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors")
        try writeInput(input, count: 8 << 20)
        let output = folder.appendingPathComponent("out.safetensors")
        let first = try run(["convert", input.path, output.path, "--dtype", "f16", "--quiet"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let previous = try Data(contentsOf: output)
        for number in [SIGINT, SIGTERM, SIGHUP, SIGKILL] {
            let process = try start(["convert", input.path, output.path, "--dtype", "f16", "--overwrite", "--quiet"])
            try waitForTemporary(of: "out.safetensors", in: folder)
            kill(process.processIdentifier, number)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .uncaughtSignal, "signal \(number)")
            XCTAssertEqual(process.terminationStatus, number)
            XCTAssertEqual(try Data(contentsOf: output), previous, "signal \(number): the output is the previous file")
            if number == SIGKILL {
                XCTAssertEqual(try temporaries(folder).count, 1, "a killed writer cannot clean up")
            } else {
                XCTAssertEqual(try temporaries(folder), [], "signal \(number) removes the temp file")
            }
        }
        let next = try run(["convert", input.path, output.path, "--dtype", "f16", "--overwrite", "--quiet"])
        XCTAssertEqual(next.status, 0, next.stderr)
        XCTAssertEqual(try entries(folder), ["in.safetensors", "out.safetensors"], "the killed writer's temp file is removed")
        XCTAssertEqual(try Data(contentsOf: output), previous)
    }

    /// SIGINT while `convert --layout diffusers` fills its `.NAME.partial-PID/` folder removes that
    /// folder; the output is then absent (or complete, when the signal came too late to stop it).
    func testSIGINTRemovesTheDiffusersPartialFolder() throws {
        var interrupted = 0
        for _ in 0..<5 where interrupted == 0 {
            let folder = try temporaryFolder()
            let output = folder.appendingPathComponent("pipeline")
            let process = try start(["convert", "fixtures/sd/sd1_tiny.safetensors", output.path, "--layout", "diffusers",
                                     "--config", "fixtures/sd/sd1_diffusers", "--quiet"])
            while process.isRunning, try !entries(folder).contains(where: { $0.hasPrefix(".pipeline.partial-") }) { usleep(200) }
            kill(process.processIdentifier, SIGINT)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal {
                interrupted += 1
                XCTAssertEqual(process.terminationStatus, SIGINT)
            }
            let left = try entries(folder)
            XCTAssertTrue(left == [] || (left == ["pipeline"] && FileManager.default.fileExists(atPath: output.path + "/model_index.json")),
                          "\(left)")
        }
        XCTAssertEqual(interrupted, 1, "one of five conversions is stopped while it writes")
    }

    /// An empty output folder that gains a file while `convert --layout diffusers` runs is not taken
    /// over (rename(2) refuses a folder holding anything): the file stays and the conversion fails.
    func testADiffusersOutputFolderThatGainsAFileMeanwhileIsLeftAlone() throws {
        var refused = 0
        for _ in 0..<5 where refused == 0 {
            let folder = try temporaryFolder()
            let output = folder.appendingPathComponent("pipeline")
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: false)
            let process = Process()
            process.executableURL = binary
            process.arguments = ["convert", "fixtures/sd/sd1_tiny.safetensors", output.path, "--layout", "diffusers",
                                 "--config", "fixtures/sd/sd1_diffusers", "--quiet"]
            process.currentDirectoryURL = CLITests.root
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            while process.isRunning, try !entries(folder).contains(where: { $0.hasPrefix(".pipeline.partial-") }) { usleep(200) }
            try Data("mine".utf8).write(to: output.appendingPathComponent("notes.txt"))
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(try String(contentsOf: output.appendingPathComponent("notes.txt"), encoding: .utf8), "mine", "the user's file is kept")
            if process.terminationStatus != 0 {
                refused += 1
                XCTAssertTrue(message.contains("pipeline"), message)
                XCTAssertEqual(try entries(output), ["notes.txt"])
                XCTAssertEqual(try entries(folder), ["pipeline"], "no partial folder left")
            }
        }
        XCTAssertEqual(refused, 1, "one of five conversions finds its folder no longer empty")
    }

    /// `convert … 2>&1 | head -1`: the progress line after the first meets a closed pipe (SIGPIPE).
    func testSIGPIPERemovesTheTempFile() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors")
        try writeInput(input, count: 16 << 20)  // 64 MiB: convert shows progress
        let output = folder.appendingPathComponent("out.safetensors")
        try Data("previous".utf8).write(to: output)
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/bash")
        shell.arguments = ["-c", "'\(binary.path)' convert '\(input.path)' '\(output.path)' --dtype f16 --overwrite 2>&1 | head -1 >/dev/null; echo ${PIPESTATUS[0]}"]
        let out = Pipe()
        shell.standardOutput = out
        try shell.run()
        let status = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        shell.waitUntilExit()
        XCTAssertEqual(status.trimmingCharacters(in: .whitespacesAndNewlines), "141", "convert dies of SIGPIPE (128 + 13)")
        XCTAssertEqual(try entries(folder), ["in.safetensors", "out.safetensors"], "no temp file left")
        XCTAssertEqual(try String(contentsOf: output, encoding: .utf8), "previous")
    }

    /// The done-when: a write onto an existing destination killed at 20 seeded random moments
    /// over its course (SIGKILL, SIGINT, SIGTERM in turn) leaves the destination exactly the previous
    /// file each time (or the complete new one, which here has the same bytes), SIGINT/SIGTERM leave
    /// no temp file, and after a following normal run none is left at all.
    func testAWriteKilledAtTwentyRandomMomentsLeavesThePreviousFile() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors")
        try writeInput(input, count: 4 << 20)  // 16 MiB of F32, written as 8 MiB of F16
        let output = folder.appendingPathComponent("out.safetensors")
        let arguments = ["convert", input.path, output.path, "--dtype", "f16", "--overwrite", "--quiet"]
        let started = Date()
        let first = try run(arguments)
        let duration = Date().timeIntervalSince(started)
        XCTAssertEqual(first.status, 0, first.stderr)
        let previous = try Data(contentsOf: output)
        var random = SplitMix64(seed: 11)
        let signals = [SIGKILL, SIGINT, SIGTERM]
        var interrupted = 0
        for round in 0..<20 {
            let number = signals[round % signals.count]
            let delay = duration * Double(random.next() % 1000) / 1000
            let process = try start(arguments)
            usleep(UInt32(delay * 1_000_000))
            kill(process.processIdentifier, number)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1 }
            let now = try? Data(contentsOf: output)
            XCTAssertTrue(now == nil || now == previous, "round \(round), signal \(number) after \(delay) s: the destination changed")
            if number != SIGKILL {  // (an earlier SIGKILL's may still be there when this run died before writing)
                let own = try temporaries(folder).filter { $0.contains(".tmp-\(process.processIdentifier)-") }
                XCTAssertEqual(own, [], "round \(round), signal \(number): its temp file is left")
            }
        }
        XCTAssertGreaterThanOrEqual(interrupted, 10, "most kills land while the write runs")
        let last = try run(arguments)
        XCTAssertEqual(last.status, 0, last.stderr)
        XCTAssertEqual(try entries(folder), ["in.safetensors", "out.safetensors"], "no temp file after the next run")
        XCTAssertEqual(try Data(contentsOf: output), previous)
    }

    // MARK: verify and broken bundles

    /// The fixture bundle with its header rewritten by `edit` (and its data by `patch`).
    func bundle(_ name: String, in folder: URL, edit: (inout [String: Any]) -> Void = { _ in },
                patch: (inout Data, [String: Any]) -> Void = { _, _ in }) throws -> String {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: "fixtures/clip/openclip_gelu.reference.safetensors"))
        let length = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + length))) as? [String: Any])
        var data = bytes.subdata(in: (8 + length)..<bytes.count)
        edit(&header)
        patch(&data, header)
        var headerBytes = Array(try JSONSerialization.data(withJSONObject: header))
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: headerBytes)
        file.append(data)
        let path = folder.appendingPathComponent(name).path
        try file.write(to: URL(fileURLWithPath: path))
        return path
    }

    func testVerifyFailsBrokenBundlesPlainly() throws {
        let folder = try temporaryFolder()
        let noOutputs = try bundle("no-outputs.safetensors", in: folder) { header in
            for key in header.keys where key.hasPrefix("outputs.") { header["unused." + key.dropFirst(8)] = header.removeValue(forKey: key) }
        }
        let none = try run(["verify", "fixtures/clip/openclip_gelu", noOutputs])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertFalse(none.stdout.contains("passed"), none.stdout)
        XCTAssertTrue(none.stderr.contains("no outputs"), none.stderr)

        let infinite = try bundle("inf.safetensors", in: folder, patch: { data, header in
            let entry = header["outputs.text_embeds"] as? [String: Any]
            let start = (entry?["data_offsets"] as? [Int])?.first ?? 0
            withUnsafeBytes(of: Float.infinity) { data.replaceSubrange(start..<(start + 4), with: $0) }
        })
        let inf = try run(["verify", "fixtures/clip/openclip_gelu", infinite])
        XCTAssertEqual(inf.status, 2, inf.stdout + inf.stderr)
        XCTAssertTrue(inf.stdout.contains("FAIL text_embeds"), inf.stdout)
        XCTAssertTrue(inf.stdout.contains("non-finite") && inf.stdout.contains("[0, 0]"), inf.stdout)
        XCTAssertFalse(inf.stdout.contains("nan"), inf.stdout)
        XCTAssertTrue(inf.stdout.contains("verify: FAILED"), inf.stdout)

        let reshaped = try bundle("shape.safetensors", in: folder) { header in
            guard var entry = header["outputs.text_embeds"] as? [String: Any], let shape = entry["shape"] as? [Int] else { return }
            entry["shape"] = [shape.reduce(1, *)]
            header["outputs.text_embeds"] = entry
        }
        let shape = try run(["verify", "fixtures/clip/openclip_gelu", reshaped])
        XCTAssertEqual(shape.status, 2, shape.stdout + shape.stderr)
        XCTAssertTrue(shape.stdout.contains("shapes differ: computed [2, 16], expected [32]"), shape.stdout)
        XCTAssertFalse(shape.stdout.contains("inf"), shape.stdout)
    }
}

/// A small seeded generator (SplitMix64), so the kill moments are the same on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
