import Foundation
import XCTest
@testable import Tensors

/// The vectorised approximations against libm in Double over their whole useful range.
final class KernelAccuracyTests: XCTestCase {
    func testFastExpIsWithinTwoUlpOfLibm() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(fastExp(x)) - exact) / exact)
            let lanes = fastExp(SIMD8<Float>(repeating: x))
            worst = max(worst, abs(Double(lanes[3]) - exact) / exact)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 2.5e-7, "relative error (2 ulp of fp32 ≈ 2.4e-7)")
        XCTAssertEqual(fastExp(-.infinity), 0)
        XCTAssertEqual(fastExp(SIMD8<Float>(repeating: -.infinity))[0], 0)
        XCTAssertEqual(fastExp(0), 1)
    }

    func testVectorErfIsWithinAbramowitzStegunBound() {
        var worst = 0.0
        var x: Float = -6
        while x <= 6 {
            worst = max(worst, abs(Double(erf8(SIMD8<Float>(repeating: x))[0]) - Foundation.erf(Double(x))))
            x += 0.00731
        }
        XCTAssertLessThan(worst, 4e-7, "absolute error (A&S 7.1.26 bound 1.5e-7 plus fp32 rounding of 1 − p·e^(−x²))")
    }

    func testSoftmaxRowHandlesRaggedLengthsAndMaskedEntries() {
        for n in [2, 7, 8, 9, 33] {
            var row = (0..<n).map { Float($0 % 5) * 0.7 - 1 }
            row[0] = -.infinity   // a masked key gets exactly zero weight
            let maximum = row.map(Double.init).max() ?? 0
            let exponentials = row.map { Foundation.exp(Double($0) - maximum) }
            let total = exponentials.reduce(0, +)
            let lse = row.withUnsafeMutableBufferPointer { softmaxRow(from: $0.baseAddress!, to: $0.baseAddress!, n) }
            for (value, e) in zip(row, exponentials) { XCTAssertEqual(Double(value), e / total, accuracy: 1e-6) }
            XCTAssertEqual(row[0], 0)
            XCTAssertEqual(Double(lse), maximum + Foundation.log(total), accuracy: 1e-5)
        }
        // Every key masked: NaN probabilities, as torch produces.
        var masked = [Float](repeating: -.infinity, count: 3)
        _ = masked.withUnsafeMutableBufferPointer { softmaxRow(from: $0.baseAddress!, to: $0.baseAddress!, 3) }
        XCTAssertTrue(masked.allSatisfy(\.isNaN))
    }

    /// Large products are split into row or column blocks across workers; every transpose combination
    /// and both split directions must agree with a Double reference.
    func testBlockedGemmMatchesDoubleReference() throws {
        let original = Threading.threadCount
        defer { Threading.setThreadCount(original) }
        for threads in [1, 2, 3] {
            Threading.setThreadCount(threads)
            for (m, n, k) in [(150, 90, 120), (70, 190, 100)] {
                for transA in [false, true] {
                    for transB in [false, true] {
                        let a = Tensor.randn(shape: transA ? [k, m] : [m, k], seed: 40)
                        let b = Tensor.randn(shape: transB ? [n, k] : [k, n], seed: 41)
                        var c = Tensor(shape: [m, n], fill: 0.5)
                        let pc = c.storage.pointer
                        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75,
                             a: a.storage.pointer, lda: transA ? m : k, b: b.storage.pointer, ldb: transB ? k : n,
                             beta: 2, c: pc, ldc: n)
                        let pa = a.scalars, pb = b.scalars
                        var worst = 0.0
                        for i in 0..<m {
                            for j in 0..<n {
                                var sum = 0.0
                                for p in 0..<k {
                                    let av = Double(transA ? pa[p * m + i] : pa[i * k + p])
                                    let bv = Double(transB ? pb[j * k + p] : pb[p * n + j])
                                    sum += av * bv
                                }
                                worst = max(worst, abs(Double(pc[i * n + j]) - (0.75 * sum + 1)))
                            }
                        }
                        XCTAssertLessThan(worst, 1e-4, "threads \(threads) m \(m) n \(n) transA \(transA) transB \(transB)")
                        c.node = nil
                    }
                }
            }
        }
    }

    func testStackMatchesReshapeAndConcat() throws {
        let a = try Tensor(shape: [2], data: [1, 2]), b = try Tensor(shape: [2], data: [3, 4])
        XCTAssertEqual(try stack([a, b], axis: 0).scalars, [1, 2, 3, 4])
        let columns = try stack([a, b], axis: -1)
        XCTAssertEqual(columns.shape, [2, 2])
        XCTAssertEqual(columns.scalars, [1, 3, 2, 4])
    }
}
