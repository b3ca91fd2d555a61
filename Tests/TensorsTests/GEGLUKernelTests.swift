import XCTest
@testable import Tensors

/// The fused GEGLU kernels (CTensorKernels: AVX-512, AVX2 and baseline builds) against GEGLU composed
/// from the separately tested ops (chunk, gelu, ×), values and gradients, on rows wide enough for the
/// vector loops and their tails (41 = 2·16 + 9 = 5·8 + 1). The torch fixture (OpParityTests) is 4 wide.
final class GEGLUKernelTests: XCTestCase {
    func composed(_ x: Tensor) throws -> Tensor {
        let parts = try x.chunk(2, axis: -1)
        return try parts[0] * gelu(parts[1])
    }

    func check(level: Int) throws {
        let x = Tensor.randn(shape: [3, 37, 82], seed: 7, scale: 2), upstream = Tensor.randn(shape: [3, 37, 41], seed: 8)
        func run(_ f: (Tensor) throws -> Tensor) throws -> (Tensor, Tensor) {
            let input = Parameter(x, name: "x")
            let y = try f(input.tensor)
            try y.backward(gradient: upstream)
            return (y, try XCTUnwrap(input.grad))
        }
        let (fused, fusedGrad) = try withKernelLevel(level) { try run(geglu) }
        let (reference, referenceGrad) = try run(composed)
        XCTAssertEqual(fused.shape, [3, 37, 41])
        XCTAssertLessThanOrEqual(maxAbsDifference(fused, reference), 2e-6, "level \(level)")
        XCTAssertLessThanOrEqual(maxAbsDifference(fusedGrad, referenceGrad), 2e-6, "level \(level)")
    }

    func testEveryKernelBuildMatchesTheComposedOps() throws {
        for level in 0...kernelLevel { try check(level: level) }
    }

    func testOddLastAxisIsRejected() {
        XCTAssertThrowsError(try geglu(Tensor(zeros: [2, 5])))
    }
}
