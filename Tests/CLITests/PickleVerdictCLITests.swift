import Foundation
import XCTest

/// The pickle verdict as a user sees it: `inspect` lists unknown globals (text and --json), dangerous
/// ones end the command with their name, and `--strict` refuses unknown ones on every command.
final class PickleVerdictCLITests: XCTestCase {
    let lightning = "formats/valid/zip_lightning_hparams.ckpt"
    let lightningGlobals = ["argparse.Namespace", "omegaconf.dictconfig.DictConfig", "pytorch_lightning.utilities.parsing.AttributeDict"]

    func testInspectListsUnknownGlobalsInTextAndJSON() throws {
        let text = try CLITests.sdsclip(["inspect", lightning])
        XCTAssertEqual(text.status, 0, text.stderr)
        let line = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasPrefix("pickle:") })
        XCTAssertTrue(line.contains("unknown globals"), String(line))
        for name in lightningGlobals { XCTAssertTrue(line.contains(name), "\(line) lacks \(name)") }

        let json = try CLITests.sdsclip(["inspect", lightning, "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let pickle = try XCTUnwrap(report["pickle"] as? [String: Any])
        XCTAssertEqual(pickle["verdict"] as? String, "unknown-globals")
        XCTAssertEqual(pickle["unknownGlobals"] as? [String], lightningGlobals)
    }

    func testSafeAndPickleFreeFilesSaySo() throws {
        let safe = try CLITests.sdsclip(["inspect", "formats/valid/zip_deflate_repacked.pt", "--strict"])
        XCTAssertEqual(safe.status, 0, safe.stderr)
        XCTAssertTrue(safe.stdout.contains("pickle:   safe"), safe.stdout)
        let json = try CLITests.sdsclip(["inspect", "formats/valid/zip_handmade.pt", "--json"])
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((report["pickle"] as? [String: Any])?["verdict"] as? String, "safe")
        let safetensors = try CLITests.sdsclip(["inspect", "formats/valid/st_handmade.safetensors", "--json", "--strict"])
        XCTAssertEqual(safetensors.status, 0, safetensors.stderr)
        let plain = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(safetensors.stdout.utf8)) as? [String: Any])
        XCTAssertTrue(plain["pickle"] is NSNull, "a safetensors file has no pickle verdict: null, not absent")
    }

    func testDangerousGlobalEndsTheCommandWithItsName() throws {
        let run = try CLITests.sdsclip(["inspect", "formats/invalid/pkl_global_torch_os_system.pt"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("torch.os.system") && run.stderr.contains("os.system"), run.stderr)
        XCTAssertEqual(run.stdout, "")
    }

    func testStrictRefusesUnknownGlobalsOnEveryCommandThatReadsWeights() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-strict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out.safetensors").path
        let clip = "fixtures/clip/openai_jit/ViT-tiny.pt"  // TorchScript: its module classes are unknown globals
        let commands: [[String]] = [
            ["inspect", lightning, "--strict"],
            ["convert", lightning, output, "--strict"],
            ["embed", clip, "--text", "a cat", "--strict"],
            ["verify", clip, "formats/valid/st_handmade.safetensors", "--strict"],
            ["export", clip, folder.appendingPathComponent("export").path, "--layout", "hf", "--strict"],
        ]
        for arguments in commands {
            let run = try CLITests.sdsclip(arguments)
            XCTAssertEqual(run.status, 1, "\(arguments): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("strict") && run.stderr.contains("globals outside the allowlist"), "\(arguments): \(run.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "a refused convert writes nothing")
        let relaxed = try CLITests.sdsclip(["convert", lightning, output, "--quiet"])
        XCTAssertEqual(relaxed.status, 0, relaxed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: output))
    }
}
