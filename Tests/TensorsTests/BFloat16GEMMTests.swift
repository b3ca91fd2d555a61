import CTensorKernels
import XCTest
@testable import Tensors

/// BFloat16Matrix.product on every route against fp64 references.
///
/// Tolerances (u₈ = 2⁻⁸, the bf16 unit roundoff for round-to-nearest-even; u₂₄ = 2⁻²⁴ for f32):
/// - vs the fp64 product of the bf16-rounded operands, only f32 accumulation differs: bf16·bf16 products
///   are exact in f32, and any summation order of K terms errs by at most γ_K·Σ|aᵢbᵢ| ≈ K·u₂₄·Σ|aᵢbᵢ|.
/// - vs the unrounded product (what the f32 GEMM computes, itself within γ_K·Σ|aᵢbᵢ|): each operand is
///   rounded once, |ãb̃ − ab| ≤ (2u₈ + u₈²)|ab|, so |bf16 − f32| ≤ (2u₈ + u₈² + 2K·u₂₄)·Σ|aᵢbᵢ|.
final class BFloat16GEMMTests: XCTestCase {
    /// m, n, k: single rows and columns, K odd and not a multiple of 16/32, N across a 64-column panel
    /// edge, M across the micro-tiles (6 rows for a full 64-column panel, 8 for a panel's last 33–48
    /// columns, 12 for 1–32) and the 96-row block, K past the 256-value k block, and M at the row count
    /// from which `.automatic` takes oneDNN on CPUs without AMX.
    private let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 70, 33), (7, 1, 17), (13, 65, 31), (6, 64, 32),
                                             (100, 130, 67), (203, 129, 301), (5, 3, 2), (17, 40, 9), (25, 104, 12),
                                             (BFloat16Matrix.oneDNNMinimumRows, 19, 23)]

    private func routes() -> [BFloat16Route] {
        var routes: [BFloat16Route] = [.portable, .automatic]
        if sds_cpu_has_avx512bf16() != 0 { routes += [.kernel, .oneDNN] }
        return routes
    }

    func testWithoutBFloat16UnitsTheKernelRouteIsATypedErrorAndAutomaticIsPortable() throws {
        guard sds_cpu_has_avx512bf16() == 0 else { throw XCTSkip("this CPU has AVX512-BF16: the kernel route runs above") }
        let x = Tensor.randn(shape: [3, 8], seed: 1), matrix = try BFloat16Matrix(Tensor.randn(shape: [5, 8], seed: 2))
        XCTAssertThrowsError(try matrix.product(x, route: .kernel)) { error in
            XCTAssertTrue("\(error)".contains("not available"), "\(error)")
        }
        XCTAssertEqual(try matrix.product(x, route: .automatic).scalars, try matrix.product(x, route: .portable).scalars)
    }

    private static func bf16(_ x: Float) -> Double {
        var bits: UInt16 = 0
        withUnsafePointer(to: x) { sds_f32_to_bf16($0, 1, 1, &bits, 1) }
        return Double(Float(bitPattern: UInt32(bits) << 16))
    }

    func testEveryRouteMatchesTheFP64ProductOfRoundedOperandsAndTheF32GEMM() throws {
        // The kernel and oneDNN routes run where the CPU has AVX512-BF16; elsewhere the next test checks
        // that asking for them is a typed error and that `.automatic` falls back to `.portable`.
        for (m, n, k) in shapes {
            let x = Tensor.randn(shape: [m, k], seed: UInt64(m * 1000 + k)), w = Tensor.randn(shape: [n, k], seed: UInt64(n + 7))
            let matrix = try BFloat16Matrix(w)
            let xs = x.scalars, ws = w.scalars
            let f32 = try Tensors.matmul(x, w.transpose(0, 1)).scalars
            for route in routes() {
                let out = try matrix.product(x, route: route)
                XCTAssertEqual(out.shape, [m, n])
                let c = out.scalars
                var roundingSeen = false
                for i in 0..<m {
                    for j in 0..<n {
                        var rounded = 0.0, magnitude = 0.0
                        for t in 0..<k {
                            let (a, b) = (Double(xs[i * k + t]), Double(ws[j * k + t]))
                            rounded += Self.bf16(xs[i * k + t]) * Self.bf16(ws[j * k + t])
                            magnitude += abs(a * b)
                        }
                        let got = Double(c[i * n + j])
                        let accumulation = Double(k) * 0x1p-24 * magnitude
                        XCTAssertLessThanOrEqual(abs(got - rounded), accumulation * 1.01 + 1e-30,
                                                 "\(route) \(m)×\(n)×\(k) [\(i), \(j)] vs fp64 of bf16 operands")
                        let derived = (2 * 0x1p-8 + 0x1p-16 + 2 * Double(k) * 0x1p-24) * magnitude
                        XCTAssertLessThanOrEqual(abs(got - Double(f32[i * n + j])), derived,
                                                 "\(route) \(m)×\(n)×\(k) [\(i), \(j)] vs f32 GEMM")
                        if got != Double(f32[i * n + j]) { roundingSeen = true }
                    }
                }
                XCTAssertTrue(roundingSeen, "\(route) \(m)×\(n)×\(k): bf16 result identical to f32 everywhere (no rounding?)")
            }
        }
    }

    /// g·W (a linear layer's input gradient) on the same bf16 weights: within f32 accumulation of the fp64
    /// product of the rounded operands, on every route (`.automatic`: oneDNN where the CPU has bf16 units, else widened weights).
    func testTransposedProductMatchesTheFP64ProductOfRoundedOperands() throws {
        for (m, n, k) in shapes {
            let g = Tensor.randn(shape: [m, n], seed: UInt64(m * 31 + n)), w = Tensor.randn(shape: [n, k], seed: UInt64(k + 3))
            let matrix = try BFloat16Matrix(w)
            let gs = g.scalars, ws = w.scalars
            for route in routes() {
                let out = try matrix.transposedProduct(g, route: route)
                XCTAssertEqual(out.shape, [m, k])
                let c = out.scalars
                for i in 0..<m {
                    for j in 0..<k {
                        var rounded = 0.0, magnitude = 0.0
                        for t in 0..<n {
                            rounded += Self.bf16(gs[i * n + t]) * Self.bf16(ws[t * k + j])
                            magnitude += abs(Double(gs[i * n + t]) * Double(ws[t * k + j]))
                        }
                        XCTAssertLessThanOrEqual(abs(Double(c[i * k + j]) - rounded), Double(n) * 0x1p-24 * magnitude * 1.01 + 1e-30,
                                                 "\(route) g·W \(m)×\(n)·\(n)×\(k) [\(i), \(j)]")
                    }
                }
            }
        }
    }

    func testLeadingDimensionsAreRowsAndWeightsRoundToNearestEven() throws {
        let w = try Tensor(shape: [2, 2], data: [1 + 0x1p-8, 1 + 3 * 0x1p-8, -(1 + 0x1p-9 + 0x1p-20), .nan])
        let rounded = try BFloat16Matrix(w).roundedWeights.scalars
        XCTAssertEqual(Array(rounded[0..<3]), [1, 1 + 0x1p-6, -1], "ties go to even; above-half rounds away")
        XCTAssertTrue(rounded[3].isNaN)

        let x = Tensor.randn(shape: [2, 3, 40], seed: 3), weight = try BFloat16Matrix(Tensor.randn(shape: [9, 40], seed: 4))
        for route in routes() {
            let batched = try weight.product(x, route: route)
            XCTAssertEqual(batched.shape, [2, 3, 9])
            let flat = try weight.product(x.reshape([6, 40]), route: route)
            XCTAssertEqual(batched.scalars, flat.scalars, "\(route)")
        }
    }

    /// The C rounding (16 values at a time with AVX-512, the tail scalar) gives the same bits as the Swift
    /// rounding the portable route uses: ties to even, bf16 subnormals kept, NaN quiet, ±∞ kept, and
    /// overflow to ∞; the padding past the row is zero.
    func testTheVectorRoundingEqualsTheScalarRounding() {
        let ulp: Float = 1.0 / 128
        var values: [Float] = [1, 1 + ulp / 2, 1 + 1.5 * ulp, -(1 + 0.6 * ulp), .infinity, -.infinity, .nan,
                               .greatestFiniteMagnitude, Float(bitPattern: 0x0000_8000), Float(bitPattern: 0x0001_7FFF),
                               Float(bitPattern: 0x8000_0001), 0, -0.0, Float(bitPattern: 0x7F80_0001), 3.0e-39]
        values += (0..<22).map { Float(bitPattern: 0x3F80_0000 &+ UInt32($0) &* 0x1_2345) }
        let columns = values.count, stride = columns + 3
        var bits = [UInt16](repeating: 0xFFFF, count: 2 * stride)
        let rows = values + values.map { -$0 }
        sds_f32_to_bf16(rows, 2, columns, &bits, stride)
        for (index, value) in rows.enumerated() {
            let (row, column) = (index / columns, index % columns)
            let got = bits[row * stride + column], expected = UInt16(bfloat16Rounded(value).bitPattern >> 16)
            if value.isNaN {
                XCTAssertTrue(Float(bitPattern: UInt32(got) << 16).isNaN, "NaN at \(index) stays NaN")
            } else {
                XCTAssertEqual(got, expected, "\(value) at \(index)")
            }
        }
        for row in 0..<2 { XCTAssertEqual(Array(bits[(row * stride + columns)..<((row + 1) * stride)]), [0, 0, 0]) }
    }

    /// `sds_bf16_pack_transposed` (k float32 rows of n values as the n×k weights) writes the same bits as
    /// transposing, rounding and `sds_bf16_pack_weights`, for widths on and off the 16-column vectors and
    /// the 64-column panel, odd k, and a source row stride wider than n; NaN stays NaN (its payload may
    /// differ: both roundings keep it quiet).
    func testTransposedPackingEqualsTransposeRoundAndPack() {
        for (k, n, ld) in [(1, 1, 1), (3, 16, 16), (64, 4096, 4113), (7, 70, 75), (2, 129, 129), (5, 15, 17)] {
            var source = [Float](repeating: 0, count: k * ld)
            for index in 0..<(k * ld) {
                let bits: UInt32 = 0x3F80_0000 &+ UInt32((index &* 40_503) % 0x80_0000)
                source[index] = index % 3 == 0 ? -Float(bitPattern: bits) : Float(bitPattern: bits)
            }
            source[0] = .nan
            var transposed = [Float](repeating: 0, count: n * k)
            for t in 0..<k { for j in 0..<n { transposed[j * k + t] = source[t * ld + j] } }
            var rounded = [UInt16](repeating: 0, count: n * k)
            sds_f32_to_bf16(transposed, n, k, &rounded, k)
            let count = sds_bf16_packed_count(n, k)
            var expected = [UInt16](repeating: 0xFFFF, count: count), got = [UInt16](repeating: 0xFFFF, count: count)
            sds_bf16_pack_weights(rounded, n, k, &expected)
            sds_bf16_pack_transposed(source, ld, k, n, &got)
            let nan = expected.firstIndex { Float(bitPattern: UInt32($0) << 16).isNaN }
            for index in 0..<count where index != nan {
                if got[index] != expected[index] { return XCTFail("k \(k), n \(n): element \(index) \(got[index]) != \(expected[index])") }
            }
            if let nan { XCTAssertTrue(Float(bitPattern: UInt32(got[nan]) << 16).isNaN, "k \(k), n \(n): NaN kept") }
        }
    }

    /// With `accumulate` the kernel adds its product to c (every k block, every panel edge), without it it
    /// overwrites; a product with k = 0 then leaves c alone.
    func testTheKernelAccumulatesWhenAsked() throws {
        guard sds_cpu_has_avx512bf16() != 0 else { throw XCTSkip("no AVX512-BF16: the kernel does not run") }
        let (m, n, k) = (13, 70, 300)
        let a = Tensor.randn(shape: [m, k], seed: 3).scalars, w = Tensor.randn(shape: [n, k], seed: 4).scalars
        var aBits = [UInt16](repeating: 0, count: m * k), wBits = [UInt16](repeating: 0, count: n * k)
        sds_f32_to_bf16(a, m, k, &aBits, k)
        sds_f32_to_bf16(w, n, k, &wBits, k)
        var packed = [UInt16](repeating: 0, count: sds_bf16_packed_count(n, k))
        sds_bf16_pack_weights(wBits, n, k, &packed)
        let panels = (n + Int(SDS_BF16_PANEL) - 1) / Int(SDS_BF16_PANEL)
        var product = [Float](repeating: .nan, count: m * n)
        XCTAssertEqual(sds_bf16_gemm_block(aBits, k, packed, n, k, &product, n, 0, 0, m, 0, panels), 1)
        let start = (0..<(m * n)).map { Float($0 % 17) - 8 }
        var sum = start
        XCTAssertEqual(sds_bf16_gemm_block(aBits, k, packed, n, k, &sum, n, 1, 0, m, 0, panels), 1)
        for index in 0..<(m * n) {
            XCTAssertEqual(sum[index], start[index] + product[index], accuracy: 1e-5 * (abs(product[index]) + 8), "\(index)")
        }
        XCTAssertFalse(product.contains { $0.isNaN }, "the product overwrote c")
        var untouched = start
        XCTAssertEqual(sds_bf16_gemm_block(aBits, 0, packed, n, 0, &untouched, n, 1, 0, m, 0, panels), 1)
        XCTAssertEqual(untouched, start)
    }

    func testWrongInnerDimensionIsATypedError() throws {
        let weight = try BFloat16Matrix(Tensor.randn(shape: [4, 8], seed: 1))
        XCTAssertThrowsError(try weight.product(Tensor.randn(shape: [3, 7], seed: 2))) { error in
            guard case TensorError.shapeMismatch(let op, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(op, "BFloat16Matrix.product")
        }
        XCTAssertThrowsError(try BFloat16Matrix(Tensor.randn(shape: [4], seed: 1)))
    }
}
