import Foundation
import XCTest

/// No silent flags: a flag that does not apply in a combination is refused with a message saying why.
final class SilentFlagsCLITests: XCTestCase {
    private func refused(_ arguments: [String], because phrase: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let run = try CLITests.sdsclip(arguments)
        XCTAssertEqual(run.status, 64, "\(arguments): \(run.stderr)", file: file, line: line)
        XCTAssertTrue(run.stderr.contains(phrase), "\(arguments): \(run.stderr)", file: file, line: line)
        XCTAssertEqual(run.stdout, "", file: file, line: line)
    }

    func testConvertRefusesFlagsOfTheOtherOutputKind() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-flags-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let clip = "fixtures/clip/hf/model.safetensors"
        try refused(["convert", clip, folder + ".safetensors", "--ema"], because: "apply to --layout diffusers only")
        try refused(["convert", clip, folder + ".safetensors", "--config", "fixtures/sd/sd1_diffusers"], because: "apply to --layout diffusers only")
        try refused(["convert", clip, folder + ".safetensors", "--prediction-type", "epsilon"], because: "apply to --layout diffusers only")
        try refused(["convert", clip, folder, "--layout", "diffusers", "--fsync"], because: "--fsync applies to a safetensors OUTPUT")
        try refused(["convert", clip, folder, "--layout", "diffusers", "--overwrite"], because: "--overwrite applies to a safetensors OUTPUT")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder))
    }

    func testEvalRefusesTeacherCompareAndBenchmarkSettingsThatMeetNothing() throws {
        let clip = "fixtures/clip/hf"
        let winoground = "winoground:fixtures/eval/winoground"
        guard FileManager.default.fileExists(atPath: CLITests.root.appendingPathComponent("fixtures/eval/winoground").path) else {
            throw XCTSkip("no winoground fixture")
        }
        for flag in [["--teacher-timesteps", "2"], ["--teacher-seed", "1"], ["--teacher-batch-size", "2"],
                     ["--teacher-resolution", "64"], ["--teacher-prediction", "epsilon"], ["--teacher-config", "fixtures/sd/sd1_diffusers"]] {
            try refused(["eval", clip, winoground] + flag, because: "\(flag[0]) apply only with --teacher SD_MODEL")
        }
        try refused(["eval", clip, winoground, "--compare-config", "x.json"], because: "--compare-config applies only with --compare")
        try refused(["eval", clip, winoground, "--split", "val"], because: "--split applies to retrieval benchmarks")
        try refused(["eval", clip, winoground, "--templates", "t.txt"], because: "--templates applies to zeroshot benchmarks")
        try refused(["eval", clip, winoground, "--classnames", "c.txt"], because: "--classnames applies to zeroshot benchmarks")
    }
}
