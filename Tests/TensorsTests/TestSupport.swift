import XCTest
@testable import Tensors

/// Element-wise closeness with a stated tolerance: |actual − expected| ≤ rtol·(|expected| + max|expected|) + atol.
/// The max term keeps near-zero elements of a tensor from demanding more than fp32 can give relative
/// to the tensor's own scale; atol (default 0) covers tensors that are zero in exact arithmetic.
func assertClose(_ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 0, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(label): shape", file: file, line: line)
    guard actual.shape == expected.shape else { return }
    let a = actual.scalars, e = expected.scalars
    let scale = e.reduce(Float(0)) { max($0, abs($1)) }
    var worst = -Float.infinity, worstIndex = 0
    for i in e.indices {
        let excess = abs(a[i] - e[i]) - rtol * (abs(e[i]) + scale) - atol
        if excess > worst || excess.isNaN { worst = excess; worstIndex = i }
    }
    if worst > 0 || worst.isNaN {
        XCTFail("\(label): element \(worstIndex) is \(a[worstIndex]), expected \(e[worstIndex]) (rtol \(rtol), scale \(scale))",
                file: file, line: line)
    }
}

func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Runs one fixture case: its float inputs become trainable parameters, `body` computes the output,
/// which is compared with `<case>.output`; then `<case>.upstream` is back-propagated and every
/// `<case>.grad.<input>` is compared with the parameter's gradient.
func checkCase(_ fixture: FixtureFile, _ name: String, inputs: [String], rtol: Float = 1e-5, atol: Float = 0,
               file: StaticString = #filePath, line: UInt = #line,
               _ body: ([String: Tensor]) throws -> Tensor) throws {
    var parameters: [String: Parameter] = [:]
    for input in inputs {
        parameters[input] = Parameter(try fixture.tensor("\(name).input.\(input)"), name: input)
    }
    let output = try body(parameters.mapValues { $0.tensor })
    assertClose(output, try fixture.tensor("\(name).output"), rtol: rtol, atol: atol, "\(name) output", file: file, line: line)
    guard fixture.has("\(name).upstream") else { return }
    try output.backward(gradient: try fixture.tensor("\(name).upstream"))
    for input in inputs {
        guard let grad = parameters[input]?.grad else {
            XCTFail("\(name): no gradient reached \(input)", file: file, line: line)
            continue
        }
        assertClose(grad, try fixture.tensor("\(name).grad.\(input)"), rtol: rtol, atol: atol, "\(name) grad \(input)", file: file, line: line)
    }
}

/// Central finite differences of L = Σ f(x)·w against the autodiff gradient, for every element of
/// every input. fp32 limits this to about 1e-3 relative agreement (step 1e-2, smooth functions).
func checkFiniteDifferences(_ inputs: [Tensor], seed: UInt64, step: Float = 1e-2, tolerance: Float = 3e-3,
                            file: StaticString = #filePath, line: UInt = #line,
                            _ f: ([Tensor]) throws -> Tensor) throws {
    let parameters = inputs.map { Parameter($0) }
    let output = try f(parameters.map(\.tensor))
    let weights = Tensor.randn(shape: output.shape, seed: seed)
    try output.backward(gradient: weights)
    func loss(_ values: [Tensor]) throws -> Double {
        let out = try withNoGrad { try f(values) }
        return zip(out.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    for (index, parameter) in parameters.enumerated() {
        guard let analytic = parameter.grad else {
            XCTFail("input \(index): no gradient", file: file, line: line)
            continue
        }
        let scale = max(1, analytic.scalars.reduce(Float(0)) { max($0, abs($1)) })
        for element in 0..<parameter.value.count {
            var values = parameters.map(\.value)
            var plus = values[index], minus = values[index]
            plus.withUnsafeMutableBufferPointer { $0[element] += step }
            minus.withUnsafeMutableBufferPointer { $0[element] -= step }
            values[index] = plus
            let up = try loss(values)
            values[index] = minus
            let down = try loss(values)
            let numeric = Float((up - down) / Double(2 * step))
            let exact = analytic.scalars[element]
            if abs(numeric - exact) > tolerance * scale {
                XCTFail("input \(index) element \(element): finite difference \(numeric) vs autodiff \(exact)", file: file, line: line)
                return
            }
        }
    }
}
