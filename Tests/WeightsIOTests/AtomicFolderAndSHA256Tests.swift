import Foundation
import XCTest
@testable import WeightsIO

/// `AtomicFolder`: an existing destination refused or replaced only once the new folder is complete,
/// nothing left behind on failure. `SHA256` against the FIPS 180-4 test vectors.
final class AtomicFolderAndSHA256Tests: XCTestCase {
    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func entries(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    struct Planned: Error {}

    func testNewFolderAppearsComplete() throws {
        let parent = try temporaryFolder()
        let out = parent.appendingPathComponent("out").path
        try AtomicFolder.write(to: out, existing: .refuse) { staging in
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing at the destination while building")
            XCTAssertTrue(URL(fileURLWithPath: staging).lastPathComponent.hasPrefix(".out.partial-"), staging)
            try Data("a".utf8).write(to: URL(fileURLWithPath: staging + "/a.txt"))
        }
        XCTAssertEqual(try entries(parent), ["out"])
        XCTAssertEqual(try String(contentsOfFile: out + "/a.txt", encoding: .utf8), "a")
    }

    func testExistingDestinationIsRefusedBeforeAnyWork() throws {
        let parent = try temporaryFolder()
        let out = parent.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false)
        try Data("old".utf8).write(to: out.appendingPathComponent("old.txt"))
        var ran = false
        XCTAssertThrowsError(try AtomicFolder.write(to: out.path, existing: .refuse) { _ in ran = true }) { error in
            XCTAssertTrue("\(error)".contains("--overwrite"), "\(error)")
        }
        XCTAssertFalse(ran)
        XCTAssertEqual(try entries(out), ["old.txt"])
        XCTAssertEqual(try entries(parent), ["out"])
    }

    func testReplaceSwapsOnlyACompleteFolder() throws {
        let parent = try temporaryFolder()
        let out = parent.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false)
        try Data("old".utf8).write(to: out.appendingPathComponent("old.txt"))
        // A failure while building leaves the old folder as it was and no partial folder.
        XCTAssertThrowsError(try AtomicFolder.write(to: out.path, existing: .replace) { staging in
            try Data("new".utf8).write(to: URL(fileURLWithPath: staging + "/new.txt"))
            throw Planned()
        }) { XCTAssertTrue($0 is Planned, "the body's error comes through unchanged: \($0)") }
        XCTAssertEqual(try entries(out), ["old.txt"])
        XCTAssertEqual(try entries(parent), ["out"], "no partial folder left")
        try AtomicFolder.write(to: out.path, existing: .replace) { staging in
            XCTAssertEqual(try self.entries(out), ["old.txt"], "the old folder stays until the new one is complete")
            try Data("new".utf8).write(to: URL(fileURLWithPath: staging + "/new.txt"))
        }
        XCTAssertEqual(try entries(out), ["new.txt"])
        XCTAssertEqual(try entries(parent), ["out"], "the replaced folder is removed")
    }

    func testReplaceIfEmptyTakesAnEmptyFolderOnlyAndNeverDeletes() throws {
        let parent = try temporaryFolder()
        let out = parent.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: false)
        try AtomicFolder.write(to: out.path, existing: .replaceIfEmpty) { staging in
            try Data("new".utf8).write(to: URL(fileURLWithPath: staging + "/new.txt"))
        }
        XCTAssertEqual(try entries(out), ["new.txt"])
        XCTAssertEqual(try entries(parent), ["out"])
        // Now it holds a file: refused before any work.
        var ran = false
        XCTAssertThrowsError(try AtomicFolder.write(to: out.path, existing: .replaceIfEmpty) { _ in ran = true }) {
            XCTAssertTrue("\($0)".contains("not an empty folder"), "\($0)")
        }
        XCTAssertFalse(ran)
        // An empty folder that gains a file while the new one is built is left alone, with its file.
        let other = parent.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: false)
        XCTAssertThrowsError(try AtomicFolder.write(to: other.path, existing: .replaceIfEmpty) { staging in
            try Data("new".utf8).write(to: URL(fileURLWithPath: staging + "/new.txt"))
            try Data("mine".utf8).write(to: other.appendingPathComponent("mine.txt"))
        })
        XCTAssertEqual(try entries(other), ["mine.txt"])
        XCTAssertEqual(try entries(parent), ["other", "out"], "no partial folder left")
        // rename(2) itself refuses a folder that is not empty (what guards the last instant).
        let built = parent.appendingPathComponent("built")
        try FileManager.default.createDirectory(at: built, withIntermediateDirectories: false)
        XCTAssertThrowsError(try AtomicFolder.rename(built.path, to: other.path))
        XCTAssertEqual(try entries(other), ["mine.txt"])
    }

    func testAFileIsNeverReplaced() throws {
        let parent = try temporaryFolder()
        let file = parent.appendingPathComponent("out")
        try Data("file".utf8).write(to: file)
        XCTAssertThrowsError(try AtomicFolder.write(to: file.path, existing: .replace) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("not a folder"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "file")
    }

    func testSHA256Vectors() throws {
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (text, digest) in vectors { XCTAssertEqual(SHA256.hexDigest(Array(text.utf8)), digest, text) }
        // One million "a", fed in uneven pieces that straddle block boundaries.
        var hasher = SHA256()
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        let sizes = [1, 63, 64, 65, 127, 1000, 4096]
        var offset = 0, piece = 0
        while offset < million.count {
            let end = min(offset + sizes[piece % sizes.count], million.count)
            million[offset..<end].withUnsafeBytes { hasher.update($0) }
            offset = end
            piece += 1
        }
        XCTAssertEqual(SHA256.hex(hasher.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let file = try temporaryFolder().appendingPathComponent("million")
        try Data(million).write(to: file)
        XCTAssertEqual(try SHA256.fileDigest(file.path), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
