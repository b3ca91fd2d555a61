import Foundation
import XCTest
@testable import WeightsIO

/// The atomic writer's two write paths (small pieces gathered in its buffer, large pieces written
/// straight through) and the converter's chunked writes from a file mapping.
final class AtomicFileWriteTests: XCTestCase {
    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-write-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Bytes that differ at every offset, so a misplaced or repeated piece cannot go unnoticed.
    func pattern(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &+ seed) &* 2654435761 >> 13) }
    }

    func testBufferedAndDirectWritesLandInOrder() throws {
        let output = try temporaryFolder().appendingPathComponent("out.bin").path
        let direct = AtomicFileWriter.directWriteMinimum
        // Sizes around the direct-write threshold and the buffer size, interleaved with tiny pieces.
        let sizes = [3, direct - 1, 1, direct, 7, direct + 1, AtomicFileWriter.blockSize - 5, 2,
                     AtomicFileWriter.blockSize + 3, 1]
        for durability in [WriteDurability.atomic, .durable] {
            var expected: [UInt8] = []
            try AtomicFile.write(to: output, durability: durability) { writer in
                for (index, size) in sizes.enumerated() {
                    let piece = pattern(size, seed: index * 1000)
                    try writer.write(piece)
                    expected += piece
                    XCTAssertEqual(writer.bytesWritten, Int64(expected.count))
                }
            }
            let written = try Data(contentsOf: URL(fileURLWithPath: output))
            XCTAssertEqual(written.count, expected.count, "\(durability)")
            XCTAssertTrue(written.elementsEqual(expected), "\(durability): content differs")
        }
    }

    /// A converted file holds the same bytes whatever a tensor's offset within a page, for tensors
    /// smaller than a page, around the direct-write threshold and spanning several write chunks.
    func testConvertingAMappedFileCopiesEveryTensorExactly() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors").path
        let chunk = AtomicFileWriter.blockSize / 4  // elements of F32 per write chunk
        let counts = [1, 3, 1023, AtomicFileWriter.directWriteMinimum / 4 + 1, 2 * chunk + 17, 5]
        var tensors: [SafetensorsWriter.Tensor] = []
        var expected: [String: [UInt8]] = [:]
        for (index, count) in counts.enumerated() {
            let name = "t\(index)"
            let bytes = pattern(count * 4, seed: index)
            expected[name] = bytes
            tensors.append(SafetensorsWriter.Tensor(name: name, dtype: .u8, shape: [count * 4], source: .bytes(bytes)))
        }
        try SafetensorsWriter.write(tensors, metadata: ["source": "test"], to: input)
        let store = try SafetensorsReader.read(path: input)
        XCTAssertEqual(store["t0"]?.storage.owner.isFileMapping, true, "the input is mapped, not read")
        // Other metadata than the input's: every output offset differs from the input's.
        for (index, metadata) in [["format": "pt"], ["a": String(repeating: "x", count: 4093)]].enumerated() {
            let output = folder.appendingPathComponent("out\(index).safetensors").path
            try SafetensorsWriter.write(store.orderedRecords.map { try SafetensorsWriter.Tensor(record: $0) },
                                        metadata: metadata, to: output)
            let back = try SafetensorsReader.read(path: output)
            XCTAssertEqual(back.count, counts.count)
            for (name, bytes) in expected {
                let record = try XCTUnwrap(back[name], name)
                XCTAssertTrue(record.storage.buffer.elementsEqual(bytes), "\(name) differs after conversion \(index)")
            }
        }
    }

    /// An input truncated after it was opened (its mapping no longer backed by the file) gives a clear
    /// error, not a crash or a short file, and leaves no output behind.
    func testAnInputTruncatedWhileConvertingIsReportedAndLeavesNoOutput() throws {
        let folder = try temporaryFolder()
        let input = folder.appendingPathComponent("in.safetensors").path
        let floats = (0..<(1 << 20)).map { Float($0) }
        try SafetensorsWriter.write([SafetensorsWriter.Tensor(name: "w", shape: [1 << 20], floats: floats)],
                                    metadata: ["source": "test"], to: input)
        let store = try SafetensorsReader.read(path: input)
        XCTAssertEqual(truncate(input, 4096), 0)
        let output = folder.appendingPathComponent("out.safetensors").path
        XCTAssertThrowsError(try WeightsConverter.write(store, to: output)) { error in
            XCTAssertTrue("\(error)".contains("truncated or replaced"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["in.safetensors"])
    }
}
