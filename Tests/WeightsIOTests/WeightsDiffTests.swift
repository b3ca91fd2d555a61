import Foundation
import WeightsIO
import XCTest

final class WeightsDiffTests: XCTestCase {
    private func record(_ name: String, _ values: [Float], shape: [Int], strides: [Int]? = nil) -> TensorRecord {
        let bytes = values.withUnsafeBytes { Array($0) }
        let owner = ByteOwner(copying: bytes)
        return TensorRecord(name: name, dtype: .f32, shape: shape, strides: strides,
                            storage: ByteSlice(owner: owner, range: 0..<bytes.count))
    }

    private func halfRecord(_ name: String, _ values: [Float], shape: [Int]) -> TensorRecord {
        var bytes: [UInt8] = []
        for value in values {
            let bits = DTypeConversion.floatToFloat16(value)
            bytes += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
        return TensorRecord(name: name, dtype: .f16, shape: shape, storage: ByteSlice(owner: ByteOwner(copying: bytes), range: 0..<bytes.count))
    }

    func testReportsOnlyInEachSideChangesAndExactValueStatistics() throws {
        let a = try WeightStore(format: .safetensors, sources: ["a"], records: [
            record("same", [1, 2, 3], shape: [3]),
            record("moved", [1, -4, 2, 0], shape: [2, 2]),
            record("reshaped", [1, 2, 3, 4], shape: [4]),
            record("zeros", [0, 0], shape: [2]),
            record("nan", [.nan, 1, .nan], shape: [3]),
            record("gone", [5], shape: [1]),
            halfRecord("half", [0.5, 1.5], shape: [2]),
        ])
        let b = try WeightStore(format: .torchZip, sources: ["b"], records: [
            record("same", [1, 2, 3], shape: [3]),
            record("moved", [1, -3.5, 2.25, 0], shape: [2, 2]),
            record("reshaped", [1, 2, 3, 4], shape: [2, 2]),
            record("zeros", [0, 0.5], shape: [2]),
            record("nan", [.nan, .nan, 2], shape: [3]),
            record("new", [6], shape: [1]),
            record("half", [0.5, 1.5], shape: [2]),
        ])
        var options = WeightsDiff.Options()
        options.chunkElements = 2  // several chunks per tensor
        let diff = try WeightsDiff.compare(a, b, options: options)
        XCTAssertEqual(diff.onlyInA.map(\.name), ["gone"])
        XCTAssertEqual(diff.onlyInB.map(\.name), ["new"])
        XCTAssertEqual(diff.inBoth.map(\.name), ["same", "moved", "reshaped", "zeros", "nan", "half"])
        let byName = Dictionary(uniqueKeysWithValues: diff.inBoth.map { ($0.name, $0) })

        XCTAssertTrue(try XCTUnwrap(byName["same"]).isIdentical)
        let moved = try XCTUnwrap(byName["moved"]?.values)
        XCTAssertEqual(moved.changedElements, 2)
        XCTAssertEqual(moved.maxAbs, 0.5)
        XCTAssertEqual(moved.maxAbsA, 4)
        XCTAssertEqual(try XCTUnwrap(moved.relative), 0.125, accuracy: 1e-12)

        let reshaped = try XCTUnwrap(byName["reshaped"])
        XCTAssertTrue(reshaped.shapeChanged)
        XCTAssertNil(reshaped.values)
        XCTAssertEqual(reshaped.notCompared, "the shapes differ")

        let zeros = try XCTUnwrap(byName["zeros"]?.values)
        XCTAssertEqual(zeros.changedElements, 1)
        XCTAssertNil(zeros.relative, "A is all zeros: no scale to measure against")

        // NaN against NaN is equal; NaN against a number changes without raising max-abs.
        let nan = try XCTUnwrap(byName["nan"]?.values)
        XCTAssertEqual(nan.changedElements, 2)
        XCTAssertEqual(nan.maxAbs, 0)

        // A dtype change with equal values is a change of dtype only.
        let half = try XCTUnwrap(byName["half"])
        XCTAssertTrue(half.dtypeChanged)
        XCTAssertFalse(half.isIdentical)
        XCTAssertEqual(half.values?.changedElements, 0)

        XCTAssertEqual(diff.changed.count, 5)
        XCTAssertEqual(diff.identicalCount, 1)
        XCTAssertTrue(diff.hasDifferences)
    }

    func testStridedViewsCompareInRowMajorOrderAndFilterSelectsNames() throws {
        // A: [[1, 2], [3, 4]] stored transposed (column-major storage 1, 3, 2, 4 with strides [1, 2]).
        let a = try WeightStore(format: .torchZip, sources: ["a"], records: [
            record("t.weight", [1, 3, 2, 4], shape: [2, 2], strides: [1, 2]),
            record("other", [1], shape: [1]),
        ])
        let b = try WeightStore(format: .safetensors, sources: ["b"], records: [
            record("t.weight", [1, 2, 3, 5], shape: [2, 2]),
            record("other", [2], shape: [1]),
        ])
        var options = WeightsDiff.Options()
        options.include = { $0.hasPrefix("t.") }
        let diff = try WeightsDiff.compare(a, b, options: options)
        XCTAssertEqual(diff.inBoth.map(\.name), ["t.weight"])
        let values = try XCTUnwrap(diff.inBoth.first?.values)
        XCTAssertEqual(values.changedElements, 1, "only the last element (4 → 5) differs")
        XCTAssertEqual(values.maxAbs, 1)
    }

    func testAViewOutsideItsStorageIsAnErrorNamingTheTensor() throws {
        let bad = record("broken", [1, 2], shape: [4])
        let a = try WeightStore(format: .torchZip, sources: ["a.pt"], records: [bad])
        XCTAssertThrowsError(try WeightsDiff.compare(a, a)) { error in
            XCTAssertTrue(String(describing: error).contains("broken"), "\(error)")
        }
    }
}
