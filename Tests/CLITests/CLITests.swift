import Foundation
import XCTest

/// The `sdsclip` executable as a user runs it: exit statuses, stdout/stderr, files left behind.
final class CLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs the built `sdsclip` (same products folder as this test bundle).
    func sdsclip(_ arguments: [String]) throws -> Run { try Self.sdsclip(arguments) }

    static func sdsclip(_ arguments: [String], in directory: URL = root) throws -> Run {
        let binary = Bundle.main.bundleURL.appendingPathComponent("sdsclip")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("sdsclip is not built next to the tests at \(binary.path)")
        }
        return try run(binary, arguments, in: directory)
    }

    /// Runs any executable to the end in `directory` and collects its status and both outputs.
    static func run(_ executable: URL, _ arguments: [String], in directory: URL = root) throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    /// A safetensors file of F32 tensors (name, shape, values), written byte by byte: this target links
    /// only the executable, not WeightsIO.
    static func writeSafetensors(_ tensors: [(String, [Int], [Float])], to url: URL) throws {
        var header: [String] = []
        var data: [UInt8] = []
        for (name, shape, values) in tensors {
            let start = data.count
            values.withUnsafeBytes { data.append(contentsOf: $0) }  // little-endian hosts, as safetensors stores them
            header.append("\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(start),\(data.count)]}")
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var file: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file += $0 }
        try Data(file + json + data).write(to: url)
    }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testTokenizeGoldenIDs() throws {
        let run = try sdsclip(["tokenize", "a photo of an astronaut riding a horse on mars", "--context-length", "14"])
        XCTAssertEqual(run.status, 0, run.stderr)
        // models.md §2.6, padded with 0 to 14.
        XCTAssertEqual(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "[49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407, 0, 0]")
        let padded = try sdsclip(["tokenize", "A photo of a cat", "--context-length", "9", "--pad-id", "49407"])
        XCTAssertEqual(padded.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       "[49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407]")
    }

    func testInspectReportsFormatTotalsAndCLIPArchitecture() throws {
        let run = try sdsclip(["inspect", "fixtures/clip/openai_jit/ViT-tiny.pt", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["format"] as? String, "torchscript")
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertTrue(tensors.contains { ($0["name"] as? String) == "visual.proj" && ($0["dtype"] as? String) == "F16" })
        XCTAssertEqual(json["tensorCount"] as? Int, tensors.count)
        let clip = try XCTUnwrap(json["clip"] as? [String: Any], "inspect --json reports the CLIP architecture")
        XCTAssertEqual(clip["layout"] as? String, "torchscript-openai")

        let text = try sdsclip(["inspect", "fixtures/clip/hf"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("format:   safetensors"), text.stdout)
        XCTAssertTrue(text.stdout.contains("layout:"), text.stdout)
    }

    func testConvertWritesSafetensorsThatReadBack() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("out.safetensors").path
        let run = try sdsclip(["convert", "fixtures/clip/openai_jit/ViT-tiny.pt", output, "--dtype", "f32", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let back = try sdsclip(["inspect", output, "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as? [String: Any])
        let dtypes = Set(try XCTUnwrap(json["tensors"] as? [[String: Any]]).compactMap { $0["dtype"] as? String })
        XCTAssertEqual(dtypes, ["F32", "I64"], "floats cast to F32, the integer buffers kept")
    }

    func testConvertToDiffusersHonoursDTypeAndPredictionType() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("pipeline").path
        let run = try sdsclip(["convert", "fixtures/sd/sd2_tiny.safetensors", output, "--layout", "diffusers", "--config", "fixtures/sd/sd2_diffusers",
                               "--dtype", "bf16", "--prediction-type", "v_prediction"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("bf16") && run.stderr.contains("no safety checker"), run.stderr)
        let back = try sdsclip(["inspect", output + "/unet", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(Set(try XCTUnwrap(json["tensors"] as? [[String: Any]]).compactMap { $0["dtype"] as? String }), ["BF16"])
        let scheduler = try Data(contentsOf: URL(fileURLWithPath: output + "/scheduler/scheduler_config.json"))
        XCTAssertTrue(String(decoding: scheduler, as: UTF8.self).contains("\"v_prediction\""))
        for name in ["tokenizer/vocab.json", "tokenizer/merges.txt", "feature_extractor/preprocessor_config.json", "model_index.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: output + "/" + name), name)
        }
        // Options of the diffusers layout without it are a usage error, and nothing is written.
        let flat = folder.appendingPathComponent("flat.safetensors").path
        let misuse = try sdsclip(["convert", "fixtures/sd/sd1_tiny.safetensors", flat, "--prediction-type", "epsilon"])
        XCTAssertNotEqual(misuse.status, 0)
        XCTAssertTrue(misuse.stderr.contains("--layout diffusers"), misuse.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: flat))
    }

    func testFailedConvertLeavesNoFileAndKeepsAnExistingOne() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("out.safetensors")
        try Data("precious".utf8).write(to: output)
        let run = try sdsclip(["convert", "formats/invalid/pkl_posix_system.pt", output.path, "--overwrite"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.hasPrefix("error: "), run.stderr)
        XCTAssertTrue(run.stderr.contains("posix"), run.stderr)
        XCTAssertEqual(try String(contentsOf: output, encoding: .utf8), "precious", "the existing output is untouched")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.safetensors"], "no temporary file left")
    }

    func testVerifyPassesAndFailsWithDistinctStatus() throws {
        let ok = try sdsclip(["verify", "fixtures/clip/openclip_gelu", "fixtures/clip/openclip_gelu.reference.safetensors"])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(ok.stdout.contains("verify: passed"))
        // The QuickGELU model against the GELU model's bundle: outputs differ, status 2.
        let bad = try sdsclip(["verify", "fixtures/clip/openclip_quickgelu", "fixtures/clip/openclip_gelu.reference.safetensors"])
        XCTAssertEqual(bad.status, 2, bad.stdout + bad.stderr)
        XCTAssertTrue(bad.stdout.contains("FAIL"), bad.stdout)
    }

    /// `--precision bf16`: verify picks the bf16 tolerance (float32 or autocast reference) and says so;
    /// embed and eval take the flag; finetune's configuration shows it.
    func testPrecisionFlag() throws {
        let step = try sdsclip(["verify", "fixtures/clip/hf", "fixtures/bf16/sd1_pooled_full_autocast.safetensors",
                                "--teacher", "fixtures/sd/sd1_diffusers", "--precision", "bf16"])
        XCTAssertEqual(step.status, 0, step.stdout + step.stderr)
        XCTAssertTrue(step.stdout.contains("frozen matrices in bf16"), step.stdout)
        XCTAssertTrue(step.stdout.contains("not compared"), step.stdout)
        let strict = try sdsclip(["verify", "fixtures/clip/hf", "fixtures/sds/sd1_pooled_full.safetensors",
                                  "--teacher", "fixtures/sd/sd1_diffusers", "--precision", "bf16", "--rtol", "1e-4", "--atol", "1e-7"])
        XCTAssertEqual(strict.status, 2, "bf16 cannot meet float32's bound: " + strict.stdout)
        let embed = try sdsclip(["embed", "fixtures/demo/clip", "--text", "a red circle", "--precision", "bf16"])
        XCTAssertEqual(embed.status, 0, embed.stderr)
        XCTAssertTrue(embed.stderr.contains("precision bf16"), embed.stderr)
        let unknown = try sdsclip(["embed", "fixtures/clip/openclip_quickgelu", "--text", "x", "--precision", "fp8"])
        XCTAssertEqual(unknown.status, 64, unknown.stderr)
        let config = try sdsclip(["finetune", "--precision", "auto", "--print-config"])
        XCTAssertEqual(config.status, 0, config.stderr)
        XCTAssertTrue(config.stdout.contains("\"precision\" : \"auto\""), config.stdout)
    }

    func testEmbedWritesEmbeddings() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("embeds.safetensors").path
        let run = try sdsclip(["embed", "fixtures/clip/openclip_quickgelu", "--image", "fixtures/images/rgb_224x224.png",
                               "fixtures/images/rgb_333x250.png", "--output", output])
        XCTAssertEqual(run.status, 0, run.stderr)
        let back = try sdsclip(["inspect", output, "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as? [String: Any])
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.first?["name"] as? String, "image_embeds")
        XCTAssertEqual(tensors.first?["shape"] as? [Int], [2, 16])
        let missing = try sdsclip(["embed", "fixtures/clip/openclip_quickgelu", "--image", "no/such/file.png"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("no/such/file.png"), missing.stderr)
    }

    func testUsageErrorsAreReported() throws {
        let run = try sdsclip(["embed", "fixtures/clip/hf"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--image") || run.stderr.contains("--text"), run.stderr)
        let unknown = try sdsclip(["inspect", "fixtures/does-not-exist"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("does-not-exist"), unknown.stderr)
    }
}
