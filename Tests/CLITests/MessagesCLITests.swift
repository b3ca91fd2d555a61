import Foundation
import XCTest

/// Errors that used to point at the wrong thing: each says what the path really is.
final class MessagesCLITests: XCTestCase {
    private func sdsclip(_ arguments: [String]) throws -> CLITests.Run { try CLITests.sdsclip(arguments) }

    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-messages-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testASymlinkLoopIsNotNoSuchFile() throws {
        let folder = try temporaryFolder()
        let a = folder.appendingPathComponent("a"), b = folder.appendingPathComponent("b")
        try FileManager.default.createSymbolicLink(atPath: a.path, withDestinationPath: b.path)
        try FileManager.default.createSymbolicLink(atPath: b.path, withDestinationPath: a.path)
        for arguments in [["inspect", a.path], ["embed", a.path, "--text", "x"], ["embed", "fixtures/demo/clip", "--image", a.path]] {
            let run = try sdsclip(arguments)
            XCTAssertEqual(run.status, 1, "\(arguments)")
            XCTAssertTrue(run.stderr.contains("\(a.path)") && run.stderr.contains("a symbolic link loop"), run.stderr)
            XCTAssertFalse(run.stderr.contains("no such file"), run.stderr)
        }
        let dangling = folder.appendingPathComponent("dangling")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: folder.appendingPathComponent("gone").path)
        let run = try sdsclip(["inspect", dangling.path])
        XCTAssertTrue(run.stderr.contains("a symbolic link to '\(folder.path)/gone', which does not exist"), run.stderr)
    }

    func testImagesThatAreNotRegularFilesAreRefusedClearlyWithoutHanging() throws {
        let folder = try temporaryFolder()
        let fifo = folder.appendingPathComponent("pipe.png")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let cases = [(fifo.path, "is a FIFO (named pipe), not a regular file"), ("/dev/zero", "is a character device, not a regular file"),
                     (folder.path, "is a folder, not a file")]
        for (path, reason) in cases {
            let start = Date()
            let run = try sdsclip(["embed", "fixtures/demo/clip", "--image", path])
            XCTAssertLessThan(Date().timeIntervalSince(start), 30)
            XCTAssertEqual(run.status, 1)
            XCTAssertTrue(run.stderr.contains("cannot read image file '\(path)': \(reason)"), run.stderr)
            XCTAssertFalse(run.stderr.contains("permission") || run.stderr.contains("NSCocoaErrorDomain"), run.stderr)
        }
    }

    func testAConfigurationThatIsNotJSONSaysWhere() throws {
        let folder = try temporaryFolder()
        let config = folder.appendingPathComponent("config.json")
        try Data("{\"text_config\": {\"hidden_size\": 32\n  \"layers\": 2}}".utf8).write(to: config)
        let run = try sdsclip(["inspect", "fixtures/clip/hf", "--config", config.path])
        XCTAssertTrue(run.stderr.contains("\(config.path): the configuration is not valid JSON: line 2, column 3 (byte 37): expected ',' or '}' in an object"), run.stderr)
        try Data("[1, 2]".utf8).write(to: config)
        let array = try sdsclip(["inspect", "fixtures/clip/hf", "--config", config.path])
        XCTAssertTrue(array.stderr.contains("valid JSON but not an object"), array.stderr)
    }

    func testABadSDSCLIP_BPE_VOCABSaysWhatToSet() throws {
        let run = try JSONReportsCLITests.sdsclip(["tokenize", "hello"], environment: ["SDSCLIP_BPE_VOCAB": "/no/such/bpe.txt.gz"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("SDSCLIP_BPE_VOCAB=/no/such/bpe.txt.gz cannot be used: no such file; set SDSCLIP_BPE_VOCAB to"), run.stderr)
        XCTAssertFalse(run.stderr.contains("init(vocabularyURL:)"), run.stderr)
    }
}
