import Tensors
import XCTest

/// bf16 compute for frozen weights: the rounding, the precision choice, and the bf16 linear and
/// convolution against float32 ops on explicitly rounded operands.
final class BFloat16ComputeTests: XCTestCase {
    func testRoundingIsToNearestEvenAndKeepsSpecialValues() throws {
        let ulp: Float = 1.0 / 128   // bf16 keeps 7 stored mantissa bits: spacing 2⁻⁷ at 1
        let x = try Tensor(shape: [8], data: [1, 1 + ulp / 2, 1 + 1.5 * ulp, 1 + 0.6 * ulp, -3.0e-3, .infinity, .nan, .greatestFiniteMagnitude])
        let r = x.roundedToBFloat16().scalars
        XCTAssertEqual(r[0], 1)
        XCTAssertEqual(r[1], 1, "a tie goes to the even mantissa")
        XCTAssertEqual(r[2], 1 + 2 * ulp, "a tie goes to the even mantissa")
        XCTAssertEqual(r[3], 1 + ulp)
        XCTAssertEqual(r[4], Float(bitPattern: (Float(-3.0e-3).bitPattern &+ 0x8000) & 0xFFFF_0000))
        XCTAssertEqual(r[5], .infinity)
        XCTAssertTrue(r[6].isNaN)
        XCTAssertEqual(r[7], .infinity, "above bf16's largest finite value rounds to infinity, as torch")
        for value in r where value.isFinite { XCTAssertEqual(value.bitPattern & 0xFFFF, 0) }
    }

    func testThePrecisionChoiceFollowsTheCPU() {
        XCTAssertFalse(Precision.auto.resolved(hasBFloat16Units: false).usesBFloat16, "auto is fp32 without AVX512-BF16")
        XCTAssertTrue(Precision.auto.resolved(hasBFloat16Units: true, speedup: 1.8).usesBFloat16)
        let slow = Precision.auto.resolved(hasBFloat16Units: true, speedup: 0.47)
        XCTAssertFalse(slow.usesBFloat16, "units slower than float32 (as measured on an Emerald Rapids VM) do not pay")
        XCTAssertEqual(slow.summary, "precision auto: fp32 (bf16 GEMM measured 0.47× float32's speed here, below the 1.25× it needs)")
        if !BFloat16Hardware.isPresent { XCTAssertNil(BFloat16Hardware.measuredSpeedup, "no probe without bf16 units") }
        let forced = Precision.bf16.resolved(hasBFloat16Units: false)
        XCTAssertTrue(forced.usesBFloat16)
        XCTAssertTrue(forced.emulated)
        XCTAssertTrue(forced.summary.contains("emulated"), forced.summary)
        XCTAssertFalse(Precision.fp32.resolved(hasBFloat16Units: true).usesBFloat16)
        XCTAssertEqual(Precision.auto.resolved(hasBFloat16Units: false).summary, "precision auto: fp32 (this CPU has no AVX512-BF16)")
    }

    /// The bf16 linear is x̃·W̃ᵀ + b with x̃, W̃ the bf16-rounded operands (products exact in float32, sums
    /// in float32), and its input gradient g̃·W̃.
    func testLinearMatchesFloat32OnRoundedOperands() throws {
        let x = Parameter(Tensor.randn(shape: [2, 5, 96], seed: 1))
        let w = Tensor.randn(shape: [40, 96], seed: 2, scale: 0.1), b = Tensor.randn(shape: [40], seed: 3)
        let reduced = try BFloat16Weight(w, route: .automatic)
        let y = try linear(x.tensor, bfloat16: reduced, bias: b)
        let expected = try linear(x.value.roundedToBFloat16(), weight: w.roundedToBFloat16(), bias: b)
        try assertClose(y, expected, relative: 1e-5)
        XCTAssertGreaterThan(try maxDifference(y, linear(x.value, weight: w, bias: b)), 1e-4, "the rounding must show")

        let g = Tensor.randn(shape: [2, 5, 40], seed: 4)
        try (y * g).sum().backward()
        let expectedGradient = try matmul(g.roundedToBFloat16().reshape([10, 40]), w.roundedToBFloat16()).reshape([2, 5, 96])
        try assertClose(try XCTUnwrap(x.grad), expectedGradient, relative: 1e-5)
    }

    func testConvolutionMatchesFloat32OnRoundedOperands() throws {
        let x = Parameter(Tensor.randn(shape: [1, 6, 9, 9], seed: 5))
        let w = Tensor.randn(shape: [8, 6, 3, 3], seed: 6, scale: 0.2), b = Tensor.randn(shape: [8], seed: 7)
        let reduced = try BFloat16Weight(w, route: .automatic)
        XCTAssertEqual(reduced.widened.shape, w.shape)
        let y = try conv2d(x.tensor, bfloat16: reduced, bias: b, stride: (1, 1), padding: .uniform(1))
        let expected = try conv2d(x.value.roundedToBFloat16(), weight: w.roundedToBFloat16(), bias: b, stride: 1, padding: 1)
        try assertClose(y, expected, relative: 1e-6)
        try y.sum().backward()
        XCTAssertNotNil(x.grad, "the input gradient passes through the rounding")
    }

    /// A weight made trainable computes in float32 again: its bf16 copy goes.
    func testTrainingAParameterDropsItsCopy() throws {
        let p = Parameter(Tensor.randn(shape: [4, 4], seed: 8), requiresGrad: false, name: "w")
        p.bfloat16 = try BFloat16Weight(p.value, route: .automatic)
        XCTAssertNotNil(p.bfloat16)
        p.requiresGrad = true
        XCTAssertNil(p.bfloat16)
        p.bfloat16 = try BFloat16Weight(p.value, route: .automatic)
        XCTAssertNil(p.bfloat16, "a trainable parameter never holds one")
    }

    private func maxDifference(_ a: Tensor, _ b: Tensor) throws -> Float {
        zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
    }

    private func assertClose(_ a: Tensor, _ b: Tensor, relative: Float, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.shape, b.shape, file: file, line: line)
        let scale = b.scalars.map(abs).max() ?? 0
        XCTAssertLessThanOrEqual(try maxDifference(a, b), relative * scale, file: file, line: line)
    }
}
