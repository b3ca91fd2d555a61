import Foundation
import XCTest
@testable import WeightsIO

/// The writer's file-to-file copy path (`copy_file_range`) interleaved with buffered writes.
final class AtomicFileCopyTests: XCTestCase {
    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-copy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testCopiesInterleaveWithBufferedWritesInOrder() throws {
        let folder = try temporaryFolder()
        let source = folder.appendingPathComponent("source.bin")
        let sourceBytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        try Data(sourceBytes).write(to: source)
        let output = folder.appendingPathComponent("out.bin").path
        var expected: [UInt8] = []
        for durability in [WriteDurability.atomic, .durable] {
            expected = []
            try AtomicFile.write(to: output, durability: durability) { writer in
                try writer.write([1, 2, 3])
                expected += [1, 2, 3]
                if try writer.copy(fromFile: source.path, offset: 1000, count: 70_000) {
                    expected += sourceBytes[1000..<71_000]
                }
                try writer.write([9])
                expected += [9]
                if try writer.copy(fromFile: source.path, offset: 299_990, count: 10) {
                    expected += sourceBytes[299_990..<300_000]
                }
                XCTAssertEqual(writer.bytesWritten, Int64(expected.count))
            }
            XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: output))), expected, "\(durability)")
        }
        XCTAssertGreaterThan(expected.count, 4, "the kernel copy ran (Linux ≥ 4.5)")
    }

    func testCopyPastTheEndOfTheSourceFailsAndLeavesNoFile() throws {
        let folder = try temporaryFolder()
        let source = folder.appendingPathComponent("short.bin")
        try Data(repeating: 7, count: 100).write(to: source)
        let output = folder.appendingPathComponent("out.bin").path
        XCTAssertThrowsError(try AtomicFile.write(to: output) { writer in
            _ = try writer.copy(fromFile: source.path, offset: 50, count: 100)
        }) { error in
            XCTAssertTrue("\(error)".contains("short.bin"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["short.bin"])
    }

    func testSafetensorsFromAMappedFileRoundTripsThroughTheKernelCopy() throws {
        let folder = try temporaryFolder()
        let first = folder.appendingPathComponent("a.safetensors").path
        let floats = (0..<5000).map { Float($0) * 0.25 }
        try SafetensorsWriter.write([SafetensorsWriter.Tensor(name: "w", shape: [50, 100], floats: floats),
                                     SafetensorsWriter.Tensor(name: "b", shape: [3], floats: [1, 2, 3])], to: first)
        let store = try SafetensorsReader.read(path: first)
        XCTAssertNotNil(store["w"]?.storage.owner.filePath, "mapped records know their file")
        let second = folder.appendingPathComponent("b.safetensors").path
        try WeightsConverter.write(store, to: second)
        let back = try SafetensorsReader.read(path: second)
        XCTAssertEqual(try DTypeConversion.floats(of: XCTUnwrap(back["w"])), floats)
        XCTAssertEqual(try DTypeConversion.floats(of: XCTUnwrap(back["b"])), [1, 2, 3])
    }
}
