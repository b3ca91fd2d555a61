import Foundation
import XCTest
@testable import WeightsIO

/// StridedGather's tiled path for transposed views, and the convert path's memory/preallocation
/// behaviour, against torch's own `.contiguous()` (fixtures/gather, tools/make_gather_fixtures.py).
final class StridedGatherTilingTests: XCTestCase {
    private static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/gather").path

    private func load() throws -> (views: WeightStore, expected: WeightStore) {
        let views = try WeightsReader.open(Self.folder + "/transposed_views.pt")
        let expected = try WeightsReader.open(Self.folder + "/transposed_views.expected.safetensors")
        XCTAssertEqual(Set(views.names), Set(expected.names))
        XCTAssertEqual(views.count, 8)
        return (views, expected)
    }

    private func packed(_ record: TensorRecord) -> [UInt8] {
        let start = record.storageOffset * record.dtype.byteSize
        return Array(UnsafeRawBufferPointer(rebasing: record.storage.buffer[start..<(start + record.byteCount)]))
    }

    /// Whole tensors: bit-exact with torch, for 1-, 2-, 4- and 8-byte elements, batched and sliced views.
    func testTransposedViewsPackLikeTorch() throws {
        let (views, expected) = try load()
        for name in views.names {
            let view = try XCTUnwrap(views[name]), want = try XCTUnwrap(expected[name])
            XCTAssertEqual(view.shape, want.shape, name)
            XCTAssertEqual(try StridedGather.packedBytes(of: view), packed(want), name)
        }
        XCTAssertFalse(try XCTUnwrap(views["f32_t"]).isContiguous, "the fixture must hold real views")
    }

    /// Arbitrary element ranges (the writer gathers in blocks): ranges starting and ending mid-row,
    /// mid-band and across matrices must give the same bytes as slicing torch's packed tensor.
    func testEveryBlockSplitMatchesTorch() throws {
        let (views, expected) = try load()
        for name in ["f32_t", "f16_t", "u8_t", "i64_t", "f32_t_slice", "batch_t"] {
            let view = try XCTUnwrap(views[name]), want = packed(try XCTUnwrap(expected[name]))
            let size = view.dtype.byteSize, count = view.elementCount
            for block in [1, 7, 37, 100, 1001, 2500] {
                var got = [UInt8](repeating: 0xAA, count: count * size)
                var start = 0
                while start < count {
                    let end = min(count, start + block)
                    got.withUnsafeMutableBytes { raw in
                        if let base = raw.baseAddress { StridedGather.gather(view, elements: start..<end, into: base + start * size) }
                    }
                    start = end
                }
                XCTAssertEqual(got, want, "\(name) in blocks of \(block)")
            }
        }
    }

    /// Converting the views file writes exactly torch's packed tensors (the writer's general path).
    func testConvertPacksViews() throws {
        let folder = try SafetensorsFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let output = folder + "/views.safetensors"
        let summary = try WeightsConverter.convert(input: Self.folder + "/transposed_views.pt", output: output)
        XCTAssertEqual(summary.format, .torchZip)
        XCTAssertEqual(summary.tensorCount, 8)
        let converted = try SafetensorsReader.read(path: output)
        let (_, expected) = try load()
        for name in expected.names {
            XCTAssertEqual(packed(try XCTUnwrap(converted[name])), packed(try XCTUnwrap(expected[name])), name)
        }
        XCTAssertEqual(converted.metadata["format"], "pt")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["views.safetensors"])
    }

    /// Dropping consumed pages of a file mapping keeps its data readable; heap bytes are never dropped.
    func testReleasingResidentPagesKeepsData() throws {
        let mapped = try MappedFile.map(Self.folder + "/transposed_views.expected.safetensors")
        XCTAssertTrue(mapped.isFileMapping)
        let before = Array(mapped.bytes)
        MappedFile.releaseResidentPages(of: mapped, range: 0..<mapped.bytes.count)
        XCTAssertEqual(Array(mapped.bytes), before)

        let heap = ByteOwner(copying: [UInt8](repeating: 7, count: 3 * 4096))
        XCTAssertFalse(heap.isFileMapping)
        MappedFile.releaseResidentPages(of: heap, range: 0..<heap.bytes.count)
        XCTAssertEqual(Array(heap.bytes), [UInt8](repeating: 7, count: 3 * 4096))
    }

    /// A preallocated file that receives fewer bytes than announced ends at what was written.
    func testPreallocatedFileEndsAtWrittenBytes() throws {
        let folder = try SafetensorsFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/out.bin"
        try AtomicFile.write(to: path, expectedSize: 1 << 20) { try $0.write([1, 2, 3, 4, 5]) }
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), [1, 2, 3, 4, 5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["out.bin"])
    }
}
