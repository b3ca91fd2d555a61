import Foundation
import XCTest
@testable import WeightsIO

/// What an atomic write may replace: only regular files (never a symlink, FIFO or device), an
/// existing one only when allowed and never an input; the replacement keeps the mode. Temp files and
/// folders booked in `TemporaryFiles` are removed by `removeAll`, and a dead writer's leftovers by
/// the next write to the same destination.
final class WriteDestinationTests: XCTestCase {
    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-dest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func entries(_ folder: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
    }

    func fileType(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
    }

    /// The PID of a process that has exited (and been reaped).
    func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    func testSymlinksFIFOsAndDevicesAreRefusedAndLeftAsTheyAre() throws {
        let folder = try temporaryFolder()
        let target = folder.appendingPathComponent("target.bin")
        try Data("target".utf8).write(to: target)
        let link = folder.appendingPathComponent("link.bin").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target.path)
        let fifo = folder.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for (path, words) in [(link, "symbolic link"), (fifo, "FIFO")] {
            XCTAssertThrowsError(try AtomicFile.write(Array("new".utf8), to: path)) { error in
                XCTAssertTrue("\(error)".contains(words) && "\(error)".contains(path), "\(error)")
            }
        }
        XCTAssertEqual(fileType(link), S_IFLNK, "the link is still a link")
        XCTAssertEqual(fileType(fifo), S_IFIFO, "the FIFO is still a FIFO")
        XCTAssertEqual(try String(contentsOf: target, encoding: .utf8), "target", "nothing written through the link")
        XCTAssertEqual(try entries(folder), ["fifo", "link.bin", "target.bin"], "no temp file left")
        // A character device is refused by the check itself (made before any temp file exists).
        XCTAssertThrowsError(try WriteDestination.check("/dev/null", options: WriteOptions())) { error in
            XCTAssertTrue("\(error)".contains("character device"), "\(error)")
        }
        XCTAssertThrowsError(try WriteDestination.check(folder.path, options: WriteOptions())) { error in
            XCTAssertTrue("\(error)".contains("folder"), "\(error)")
        }
    }

    func testAnExistingFileIsRefusedOrReplacedKeepingItsMode() throws {
        let folder = try temporaryFolder()
        let path = folder.appendingPathComponent("out.bin").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(chmod(path, 0o600), 0)
        XCTAssertThrowsError(try AtomicFile.write(to: path, options: WriteOptions(existing: .refuse)) { try $0.write(Array("new".utf8)) }) { error in
            XCTAssertTrue("\(error)".contains("--overwrite"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        try AtomicFile.write(to: path, options: WriteOptions(existing: .replace)) { try $0.write(Array("new".utf8)) }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
        var info = stat()
        XCTAssertEqual(stat(path, &info), 0)
        XCTAssertEqual(info.st_mode & 0o7777, 0o600, "the replacement keeps the replaced file's mode")
        // A file that appears while a refusing write runs is not replaced at the rename either.
        let late = folder.appendingPathComponent("late.bin").path
        XCTAssertThrowsError(try AtomicFile.write(to: late, options: WriteOptions(existing: .refuse)) { writer in
            try writer.write(Array("new".utf8))
            try Data("theirs".utf8).write(to: URL(fileURLWithPath: late))
        })
        XCTAssertEqual(try String(contentsOfFile: late, encoding: .utf8), "theirs")
        XCTAssertEqual(try entries(folder), ["late.bin", "out.bin"])
    }

    func testTheInputIsNeverTheOutputUnderAnyName() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors").path
        try SafetensorsWriter.write([SafetensorsWriter.Tensor(name: "w", shape: [4], floats: [1, 2, 3, 4])], to: input)
        let original = try Data(contentsOf: URL(fileURLWithPath: input))
        let hardLink = folder.appendingPathComponent("hard.safetensors").path
        XCTAssertEqual(link(input, hardLink), 0)
        for output in [input, hardLink, folder.path + "/./in.safetensors"] {
            XCTAssertThrowsError(try WeightsConverter.convert(input: input, output: output, dtype: .f16,
                                                              writing: WriteOptions(existing: .replace))) { error in
                XCTAssertTrue("\(error)".contains("is the input"), "\(error)")
            }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), original)
        XCTAssertEqual(try entries(folder), ["hard.safetensors", "in.safetensors"])
        // A folder holding the input is never replaced.
        let model = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: false)
        try Data("weights".utf8).write(to: model.appendingPathComponent("w.bin"))
        let protected = WriteOptions(protected: ProtectedFiles(paths: [model.path + "/w.bin"]))
        XCTAssertThrowsError(try AtomicFolder.write(to: model.path, existing: .replace, options: protected) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("holds the input"), "\(error)")
        }
        XCTAssertEqual(try entries(model), ["w.bin"])
    }

    func testRemoveAllDeletesLiveTempFilesAndFoldersAndStopsTheRename() throws {
        let folder = try temporaryFolder()
        let path = folder.appendingPathComponent("out.bin").path
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        let temporaries = TemporaryFiles()
        let writer = try AtomicFileWriter(destination: path, options: WriteOptions(temporaries: temporaries))
        try writer.write([UInt8](repeating: 7, count: 1 << 20))
        XCTAssertEqual(temporaries.paths, [writer.temporaryPath])
        XCTAssertTrue(FileManager.default.fileExists(atPath: writer.temporaryPath))
        temporaries.removeAll()
        XCTAssertFalse(FileManager.default.fileExists(atPath: writer.temporaryPath))
        XCTAssertThrowsError(try writer.commit(), "nothing is renamed into place after removeAll")
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        XCTAssertThrowsError(try AtomicFileWriter(destination: path, options: WriteOptions(temporaries: temporaries)))
        XCTAssertEqual(try entries(folder), ["out.bin"])

        // A folder's staging folder likewise, with what was written into it.
        let folderRegistry = TemporaryFiles()
        let out = folder.appendingPathComponent("pipeline").path
        XCTAssertThrowsError(try AtomicFolder.write(to: out, existing: .refuse, options: WriteOptions(temporaries: folderRegistry)) { staging in
            try AtomicFile.write(Array("a".utf8), to: staging + "/a.json")
            XCTAssertEqual(folderRegistry.paths, [staging])
            folderRegistry.removeAll()
            XCTAssertFalse(FileManager.default.fileExists(atPath: staging))
        })
        XCTAssertEqual(try entries(folder), ["out.bin"])
        // Committed writes leave nothing booked.
        let clean = TemporaryFiles()
        try AtomicFile.write(to: path, options: WriteOptions(temporaries: clean)) { try $0.write(Array("new".utf8)) }
        XCTAssertEqual(clean.paths, [])
    }

    func testStaleTempFilesOfDeadWritersAreRemovedByTheNextWrite() throws {
        let folder = try temporaryFolder()
        let dead = try deadPID()
        let live = getppid()
        let names = [".out.bin.tmp-\(dead)-1", ".out.bin.tmp-\(live)-2", ".other.bin.tmp-\(dead)-3"]
        for name in names { try Data(count: 1000).write(to: folder.appendingPathComponent(name)) }
        try AtomicFile.write(Array("new".utf8), to: folder.appendingPathComponent("out.bin").path)
        XCTAssertEqual(try entries(folder), [".other.bin.tmp-\(dead)-3", ".out.bin.tmp-\(live)-2", "out.bin"],
                       "only this destination's temp files, and only a dead process's")

        // Folders: a dead writer's partial folder goes; its replaced (old) folder, the user's previous one, stays.
        let partial = folder.appendingPathComponent(".pipe.partial-\(dead)")
        let old = folder.appendingPathComponent(".pipe.old-\(dead)")
        for made in [partial, old] {
            try FileManager.default.createDirectory(at: made, withIntermediateDirectories: false)
            try Data("x".utf8).write(to: made.appendingPathComponent("x"))
        }
        let pipe = folder.appendingPathComponent("pipe").path
        XCTAssertThrowsError(try AtomicFolder.write(to: pipe, existing: .refuse) { _ in throw CocoaError(.userCancelled) })
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial.path), "the dead writer's partial folder is removed")
        try AtomicFolder.write(to: pipe, existing: .refuse) { try Data("y".utf8).write(to: URL(fileURLWithPath: $0 + "/y")) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: old.path + "/x"), "the previous folder stays")
        XCTAssertEqual(try entries(URL(fileURLWithPath: pipe)), ["y"])
    }
}
