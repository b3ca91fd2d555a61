import Foundation
import XCTest

/// Issue 11, part A, as a user meets it: degenerate model shapes, FIFOs and unreadable special files
/// end in a report or a clear error, never a trap or a hang.
final class HardeningCLITests: XCTestCase {
    /// Runs `sdsclip`, killing it after `seconds` (a hang must fail the test, not stall the suite).
    func sdsclip(_ arguments: [String], within seconds: TimeInterval = 10) throws -> CLITests.Run? {
        let binary = Bundle.main.bundleURL.appendingPathComponent("sdsclip")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("sdsclip is not built next to the tests at \(binary.path)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = CLITests.root
        let folder = try temporaryFolder()
        let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        guard exited.wait(timeout: .now() + seconds) == .success else {
            process.terminate()
            XCTFail("sdsclip \(arguments.joined(separator: " ")) still running after \(seconds) s")
            return nil
        }
        return CLITests.Run(status: process.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                            stderr: try String(contentsOf: errURL, encoding: .utf8))
    }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-cli-hardening-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testInspectReportsDegenerateModelShapesInsteadOfTrapping() throws {
        let clip = try XCTUnwrap(try sdsclip(["inspect", "formats/valid/st_clip_empty_position_embedding.safetensors"]))
        XCTAssertEqual(clip.status, 0, clip.stderr)
        XCTAssertTrue(clip.stderr.contains("the vision position embedding has 0 rows"), clip.stderr)

        let layers = try XCTUnwrap(try sdsclip(["inspect", "formats/valid/st_sd_downsampler_at_block0.safetensors"]))
        XCTAssertEqual(layers.status, 0, layers.stderr)
        XCTAssertTrue(layers.stdout.contains("unet          0 tensors, 0 parameters, 3 tensors in no known layout"), layers.stdout)

        let index = try XCTUnwrap(try sdsclip(["inspect", "formats/valid/st_sd_block_index_int_min.safetensors"]))
        XCTAssertEqual(index.status, 0, index.stderr)
        XCTAssertTrue(index.stdout.contains("unet          1 tensors, 2 parameters, 1 tensors in no known layout"), index.stdout)

        let json = try XCTUnwrap(try sdsclip(["inspect", "formats/valid/st_zero_elements_huge_dims.safetensors", "--json"]))
        XCTAssertEqual(json.status, 0, json.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["tensors"] as? Int ?? (report["tensors"] as? [Any])?.count, 3)
    }

    func testConvertWritesAndReadsBackZeroElementTensorsWithHugeDimensions() throws {
        let folder = try temporaryFolder()
        let output = folder.appendingPathComponent("out.safetensors").path
        let run = try XCTUnwrap(try sdsclip(["convert", "formats/valid/st_zero_elements_huge_dims.safetensors", output, "--dtype", "f16"]))
        XCTAssertEqual(run.status, 0, run.stderr)
        let again = try XCTUnwrap(try sdsclip(["inspect", output]))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("[0, 3, 1, 4611686"), again.stdout)  // the column may cut it short
        XCTAssertTrue(again.stdout.contains("[0, 4294967296, 4294967296]") || again.stdout.contains("[0, 4294967296, 429496"), again.stdout)
    }

    func testFIFOInputsAreRefusedAtOnce() throws {
        let folder = try temporaryFolder()
        let model = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let fifo = model.appendingPathComponent("model.safetensors").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let output = folder.appendingPathComponent("out.safetensors").path
        let attempts: [[String]] = [
            ["inspect", fifo], ["convert", fifo, output], ["inspect", model.path], ["convert", model.path, output],
            ["verify", "fixtures/clip/openclip_gelu", fifo],
        ]
        for arguments in attempts {
            guard let run = try sdsclip(arguments) else { continue }
            XCTAssertEqual(run.status, 1, "\(arguments): \(run.stdout)\(run.stderr)")
            XCTAssertTrue(run.stderr.contains("is a FIFO (named pipe), not a regular file"), "\(arguments): \(run.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(arguments): no output")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model"], "no temp file left")
    }
}
