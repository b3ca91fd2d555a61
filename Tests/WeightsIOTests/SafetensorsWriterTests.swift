import Foundation
import XCTest
@testable import WeightsIO

final class SafetensorsWriterTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws { folder = try SafetensorsFixtures.temporaryFolder() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    private func contents(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    /// Our writer reproduces `safetensors.torch.save_file` byte for byte: ordering, escaping of
    /// awkward names (quote, backslash, tab, non-ASCII), metadata, padding, data layout.
    func testOutputIsByteIdenticalToReferenceWriter() throws {
        let referencePath = SafetensorsFixtures.path("writer_reference.safetensors")
        let reference = try SafetensorsReader.read(path: referencePath)
        let tensors = try reference.orderedRecords.reversed().map { try SafetensorsWriter.Tensor(record: $0) }
        let output = folder + "/out.safetensors"
        try SafetensorsWriter.write(tensors, metadata: reference.metadata, to: output)
        XCTAssertEqual(try contents(output), try contents(referencePath))
        XCTAssertEqual(reference.count, 11)

        let header = try SafetensorsWriter.headerBytes(for: tensors, metadata: ["format": "pt"])
        XCTAssertEqual(header, Array(try contents(referencePath).prefix(header.count)))
        XCTAssertEqual((header.count - 8) % 8, 0)
    }

    func testEveryDTypeRoundTrips() throws {
        let original = try SafetensorsReader.read(path: SafetensorsFixtures.path("all_dtypes.safetensors"))
        let output = folder + "/roundtrip.safetensors"
        try SafetensorsWriter.write(try original.orderedRecords.map { try SafetensorsWriter.Tensor(record: $0) },
                                    metadata: original.metadata, to: output)
        let copy = try SafetensorsReader.read(path: output)
        XCTAssertEqual(copy.names, original.names, "reference order is stable under rewrite")
        XCTAssertEqual(copy.metadata, original.metadata)
        for record in original.orderedRecords {
            let other = try XCTUnwrap(copy[record.name])
            XCTAssertEqual(other.dtype, record.dtype)
            XCTAssertEqual(other.shape, record.shape)
            XCTAssertEqual(Array(other.storage.buffer), Array(record.storage.buffer), record.name)
        }
        XCTAssertEqual(try contents(output), try contents(SafetensorsFixtures.path("all_dtypes.safetensors")))
    }

    /// Strided views (transpose, slice, broadcast with stride 0, negative stride) and casts on write
    /// equal torch's `.contiguous()`, `.half()`, `.bfloat16()`, `.float()` results exactly.
    func testGatherAndCastMatchTorch() throws {
        let views = try SafetensorsReader.read(path: SafetensorsFixtures.path("views.safetensors"))
        let base = try XCTUnwrap(views["base"])
        let base64 = try XCTUnwrap(views["base64"])
        func view(_ name: String, _ shape: [Int], _ strides: [Int], _ offset: Int, of source: TensorRecord) -> TensorRecord {
            TensorRecord(name: name, dtype: source.dtype, shape: shape, strides: strides, storageOffset: offset, storage: source.storage)
        }
        let cases: [(SafetensorsWriter.Tensor, String)] = [
            (try .init(record: view("transposed", [4, 3], [1, 4], 0, of: base)), "transposed"),
            (try .init(record: view("column_slice", [3, 2], [4, 2], 1, of: base)), "column_slice"),
            (try .init(record: view("broadcast_row", [3, 4], [0, 1], 4, of: base)), "broadcast_row"),
            (try .init(record: view("flipped_rows", [3, 4], [-4, 1], 8, of: base)), "flipped_rows"),
            (try .init(record: base, name: "base_f16", castTo: .f16), "base_f16"),
            (try .init(record: base, name: "base_bf16", castTo: .bf16), "base_bf16"),
            (try .init(record: view("transposed_f16", [4, 3], [1, 4], 0, of: base), castTo: .f16), "transposed_f16"),
            (try .init(record: base64, name: "base64_f32", castTo: .f32), "base64_f32"),
            (try .init(record: try XCTUnwrap(views["base_f16"]), name: "base_f16_to_f32", castTo: .f32), "base_f16_to_f32"),
        ]
        let output = folder + "/views.safetensors"
        try SafetensorsWriter.write(cases.map(\.0), to: output)
        let written = try SafetensorsReader.read(path: output)
        for (_, expectedName) in cases {
            let expected = try XCTUnwrap(views[expectedName])
            let got = try XCTUnwrap(written[expectedName])
            XCTAssertEqual(got.dtype, expected.dtype, expectedName)
            XCTAssertEqual(got.shape, expected.shape, expectedName)
            XCTAssertEqual(Array(got.storage.buffer), Array(expected.storage.buffer), expectedName)
        }
    }

    /// Tensors larger than one conversion block (512 Ki elements) and the writer's 4 MiB buffer:
    /// a transposed F32 view cast to BF16, and a producer source; progress reaches the file size.
    func testStreamsLargeTensorsAcrossBlocks() throws {
        let rows = 700, columns = 1100  // 770,000 elements
        var values = [Float](repeating: 0, count: rows * columns)
        for i in values.indices { values[i] = Float(i % 9973) * 0.731 - 3000 }
        let storage = ByteSlice(owner: ByteOwner(copying: values.withUnsafeBytes { Array($0) }), range: 0..<(values.count * 4))
        let transposed = TensorRecord(name: "big.t", dtype: .f32, shape: [columns, rows], strides: [1, columns], storage: storage)
        let producerBytes = 5 << 20 + 3
        let producer = SafetensorsWriter.Tensor(name: "made", dtype: .u8, shape: [producerBytes], source: .producer { block, offset in
            for i in 0..<block.count { block[i] = UInt8(truncatingIfNeeded: (offset + i) * 7) }
        })
        var reports: [Int64] = []
        let output = folder + "/big.safetensors"
        try SafetensorsWriter.write([try .init(record: transposed, castTo: .bf16), producer], to: output) { written, total in
            reports.append(written)
            XCTAssertLessThanOrEqual(written, total)
        }
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: output)[.size] as? Int)
        XCTAssertEqual(reports.last.map(Int.init), size)
        XCTAssertEqual(reports, reports.sorted())
        XCTAssertGreaterThan(reports.count, 3)

        let store = try SafetensorsReader.read(path: output)
        let big = SafetensorsFixtures.values(try XCTUnwrap(store["big.t"]), as: UInt16.self)
        XCTAssertEqual(big.count, rows * columns)
        var mismatches = 0
        for c in 0..<columns {
            for r in 0..<rows where big[c * rows + r] != DTypeConversion.floatToBFloat16(values[r * columns + c]) { mismatches += 1 }
        }
        XCTAssertEqual(mismatches, 0)
        let made = SafetensorsFixtures.values(try XCTUnwrap(store["made"]), as: UInt8.self)
        XCTAssertEqual(made.count, producerBytes)
        XCTAssertTrue(made.enumerated().allSatisfy { $0.element == UInt8(truncatingIfNeeded: $0.offset * 7) })
    }

    func testFailedWriteLeavesDestinationUntouchedAndNoTempFile() throws {
        let output = folder + "/keep.safetensors"
        try Data("old content".utf8).write(to: URL(fileURLWithPath: output))
        struct Boom: Error {}
        let failing = SafetensorsWriter.Tensor(name: "x", dtype: .u8, shape: [9 << 20], source: .producer { _, offset in
            if offset > 0 { throw Boom() }
        })
        XCTAssertThrowsError(try SafetensorsWriter.write([failing], to: output)) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(String(decoding: try contents(output), as: UTF8.self), "old content")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["keep.safetensors"])
    }

    func testRejectsInvalidRequestsBeforeWriting() throws {
        let output = folder + "/bad.safetensors"
        let ints = TensorRecord(name: "i", dtype: .i32, shape: [1], storage: ByteSlice(owner: ByteOwner(copying: [0, 0, 0, 0]), range: 0..<4))
        assertSafetensorsError(.unsupported, "cannot cast I32 to F16") { try SafetensorsWriter.Tensor(record: ints, castTo: .f16) }
        assertSafetensorsError(.unsupported, "cannot cast I32 to F16") {
            try SafetensorsWriter.write([.init(name: "i", dtype: .f16, shape: [1], source: .record(ints))], to: output)
        }
        let outside = TensorRecord(name: "v", dtype: .i32, shape: [2], strides: [1], storage: ints.storage)
        assertSafetensorsError(.corrupt, "reaches elements 0...1 of a storage holding 1") { try SafetensorsWriter.write([try .init(record: outside)], to: output) }
        let a = SafetensorsWriter.Tensor(name: "a", shape: [1], floats: [1])
        assertSafetensorsError(.format, "the name occurs twice") { try SafetensorsWriter.write([a, a], to: output) }
        assertSafetensorsError(.format, "4 bytes given") { try SafetensorsWriter.write([.init(name: "a", shape: [2], floats: [1])], to: output) }
        assertSafetensorsError(.format, "reserved") { try SafetensorsWriter.write([.init(name: "__metadata__", shape: [1], floats: [1])], to: output) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }
}
