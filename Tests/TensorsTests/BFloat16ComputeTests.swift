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

    /// Strided, unevenly padded, with a random output gradient: where oneDNN runs the convolution (CPUs
    /// with bf16 units) its input gradient is the float32 one of g̃ (g rounded to bf16, as autocast's
    /// backward) through W̃; on the float32 routes it is g's through W̃. Either way to float32 sums.
    func testConvolutionGradientMatchesItsRoute() throws {
        let x = Parameter(Tensor.randn(shape: [2, 5, 11, 10], seed: 9))
        let w = Tensor.randn(shape: [7, 5, 3, 3], seed: 10, scale: 0.2), b = Tensor.randn(shape: [7], seed: 11)
        let reduced = try BFloat16Weight(w, route: .automatic)
        XCTAssertEqual(reduced.convolvesWithOneDNN, BFloat16Hardware.isPresent)
        let padding = Padding2D(top: 0, bottom: 1, left: 1, right: 0)
        let y = try conv2d(x.tensor, bfloat16: reduced, bias: b, stride: (2, 2), padding: padding)
        let rounded = Parameter(x.value.roundedToBFloat16())
        let expected = try conv2d(rounded.tensor, weight: w.roundedToBFloat16(), bias: b, stride: (2, 2), padding: padding)
        try assertClose(y, expected, relative: 1e-5)

        let g = Tensor.randn(shape: y.shape, seed: 12)
        try (y * g).sum().backward()
        try (expected * (reduced.convolvesWithOneDNN ? g.roundedToBFloat16() : g)).sum().backward()
        try assertClose(try XCTUnwrap(x.grad), try XCTUnwrap(rounded.grad), relative: 1e-5)
        // A second call with another batch size gets its own primitive and the same numbers.
        let single = try conv2d(x.value.narrow(axis: 0, start: 0, length: 1), bfloat16: reduced, bias: b, stride: (2, 2), padding: padding)
        try assertClose(single, expected.detached.narrow(axis: 0, start: 0, length: 1), relative: 1e-5)
    }

    /// Where oneDNN convolves, its reordered copy becomes the only one after the first call: the OIHW
    /// array is freed, `widened` reads the values back from oneDNN's layout, and a new input shape is
    /// built from that copy.
    func testOneDNNConvolutionKeepsOneCopyOfTheWeights() throws {
        let w = Tensor.randn(shape: [32, 16, 3, 3], seed: 15, scale: 0.2)
        let reduced = try BFloat16Weight(w, route: .automatic)
        try XCTSkipUnless(reduced.convolvesWithOneDNN, "needs a CPU with bf16 units (oneDNN's convolutions)")
        let oihwBytes = w.count * 2
        XCTAssertEqual(reduced.byteCount, oihwBytes, "before first use: the OIHW bf16 array only")
        let x = Tensor.randn(shape: [1, 16, 12, 12], seed: 16)
        let y = try conv2d(x, bfloat16: reduced, stride: (1, 1), padding: .uniform(1))
        let resident = reduced.byteCount
        XCTAssertGreaterThanOrEqual(resident, oihwBytes)
        XCTAssertLessThan(resident, 2 * oihwBytes, "the OIHW array is freed once oneDNN holds its copy")
        XCTAssertEqual(reduced.widened.scalars, w.roundedToBFloat16().scalars, "read back from oneDNN's layout")
        let wider = try conv2d(try concat([x, x], axis: 0), bfloat16: reduced, stride: (1, 1), padding: .uniform(1))
        try assertClose(wider.narrow(axis: 0, start: 1, length: 1), y, relative: 1e-6)
        XCTAssertGreaterThan(reduced.byteCount, resident, "the second shape's primitive holds its own copy")
    }

    /// A frozen teacher's float32 values can go once bf16 copies exist: reads widen the bf16 copy, and
    /// unfreezing brings a float32 value back (the bf16 values: the float32 ones are gone).
    func testReleasingTheFloat32Value() throws {
        let w = Tensor.randn(shape: [6, 4], seed: 13)
        let p = Parameter(w, requiresGrad: false, name: "w")
        XCTAssertEqual(p.releaseFloat32(), 0, "nothing to release without a bf16 copy")
        p.bfloat16 = try BFloat16Weight(p.value, route: .automatic)
        XCTAssertEqual(p.releaseFloat32(), 6 * 4 * 4)
        XCTAssertFalse(p.holdsFloat32)
        XCTAssertEqual(p.shape, [6, 4])
        XCTAssertEqual(p.value.scalars, w.roundedToBFloat16().scalars)
        let x = Tensor.randn(shape: [3, 4], seed: 14)
        try assertClose(try linear(x, bfloat16: try XCTUnwrap(p.bfloat16)), try linear(x.roundedToBFloat16(), weight: w.roundedToBFloat16()), relative: 1e-5)
        p.requiresGrad = true
        XCTAssertNil(p.bfloat16)
        XCTAssertTrue(p.holdsFloat32)
        XCTAssertEqual(p.value.scalars, w.roundedToBFloat16().scalars)
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
