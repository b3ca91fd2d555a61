import Foundation
import XCTest

/// `sdsclip export` as a user runs it: the folder it writes and loads back, refusing an existing OUT
/// without --overwrite, its help and argument errors.
final class ExportCLITests: XCTestCase {
    func run(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-export-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testExportBothLayoutsAndEmbedTheSame() throws {
        let folder = try temporaryFolder()
        let model = "fixtures/demo/clip"
        let reference = try run(["embed", model, "--text", "a red circle", "a blue square"])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        for layout in ["hf", "openclip"] {
            let out = folder.appendingPathComponent(layout).path
            let export = try run(["export", model, out, "--layout", layout])
            XCTAssertEqual(export.status, 0, export.stderr)
            XCTAssertTrue(export.stderr.contains("wrote \(out): \(layout) layout"), export.stderr)
            let weights = layout == "hf" ? "model.safetensors" : "open_clip_model.safetensors"
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + weights), layout)
            let embed = try run(["embed", out, "--text", "a red circle", "a blue square"])
            XCTAssertEqual(embed.status, 0, embed.stderr)
            XCTAssertEqual(embed.stdout, reference.stdout, "\(layout): same embeddings as the source")
        }
        let entries = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertEqual(entries, ["hf", "openclip"], "no temporary folders left")
    }

    func testExistingOutIsRefusedWithoutOverwrite() throws {
        let out = try temporaryFolder().appendingPathComponent("out").path
        XCTAssertEqual(try run(["export", "fixtures/clip/hf", out, "--layout", "openclip"]).status, 0)
        let again = try run(["export", "fixtures/clip/hf", out, "--layout", "hf"])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--overwrite"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/config.json"), "the existing folder is untouched")
        let replaced = try run(["export", "fixtures/clip/hf", out, "--layout", "hf", "--overwrite", "--dtype", "bf16"])
        XCTAssertEqual(replaced.status, 0, replaced.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/config.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/open_clip_model.safetensors"), "replaced as a whole")
        let inspect = try run(["inspect", out + "/model.safetensors", "--json"])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        let dtypes = Set(try XCTUnwrap(json["tensors"] as? [[String: Any]]).compactMap { $0["dtype"] as? String })
        XCTAssertEqual(dtypes, ["BF16"])
    }

    func testHelpAndBadArguments() throws {
        let help = try run(["export", "--help"])
        XCTAssertEqual(help.status, 0)
        for phrase in ["--layout", "hf", "openclip", "--dtype", "--overwrite", "local-dir:OUT", "SHA-256", "latent_map"] {
            XCTAssertTrue(help.stdout.contains(phrase), "help mentions \(phrase)")
        }
        let out = try temporaryFolder().appendingPathComponent("out").path
        let noLayout = try run(["export", "fixtures/clip/hf", out])
        XCTAssertNotEqual(noLayout.status, 0)
        XCTAssertTrue(noLayout.stderr.contains("--layout"), noLayout.stderr)
        let missing = try run(["export", "fixtures/clip/does-not-exist", out, "--layout", "hf"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("does-not-exist"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
