import XCTest
@testable import Tensors

/// Finite-difference checks, graph semantics (frozen parameters, no-grad mode, accumulation,
/// graph release) and typed errors on bad input.
final class AutogradTests: XCTestCase {
    func testFiniteDifferencesOfNormalizations() throws {
        let x = Tensor.randn(shape: [2, 4, 3], seed: 1, scale: 2)
        try checkFiniteDifferences([x, Tensor.randn(shape: [3], seed: 2), Tensor.randn(shape: [3], seed: 3)], seed: 4) {
            try layerNorm($0[0], weight: $0[1], bias: $0[2])
        }
        try checkFiniteDifferences([x, Tensor.randn(shape: [4], seed: 5), Tensor.randn(shape: [4], seed: 6)], seed: 7) {
            try groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2])
        }
    }

    func testFiniteDifferencesOfConvolutionAndAttention() throws {
        try checkFiniteDifferences([Tensor.randn(shape: [1, 2, 5, 4], seed: 8), Tensor.randn(shape: [3, 2, 3, 2], seed: 9),
                                    Tensor.randn(shape: [3], seed: 10)], seed: 11) {
            try conv2d($0[0], weight: $0[1], bias: $0[2], stride: (2, 1), padding: Padding2D(top: 1, bottom: 0, left: 0, right: 1))
        }
        let mask = Tensor.randn(shape: [1, 1, 4, 5], seed: 12)
        try checkFiniteDifferences([Tensor.randn(shape: [1, 2, 4, 3], seed: 13), Tensor.randn(shape: [1, 2, 5, 3], seed: 14),
                                    Tensor.randn(shape: [1, 2, 5, 2], seed: 15)], seed: 16) {
            try attention($0[0], $0[1], $0[2], mask: .additive(mask), queryChunk: 3)
        }
    }

    func testFiniteDifferencesOfActivationsAndLosses() throws {
        let x = Tensor.randn(shape: [3, 4], seed: 17, scale: 2)
        try checkFiniteDifferences([x], seed: 18) { try gelu($0[0]) * silu($0[0]) + quickGELU($0[0]) }
        try checkFiniteDifferences([x], seed: 19) { try $0[0].softmax(axis: 0) }
        try checkFiniteDifferences([x], seed: 20) { try l2Normalize($0[0], axis: 1) }
        try checkFiniteDifferences([x], seed: 21) { try crossEntropy($0[0], targets: [3, 0, 2]) }
        try checkFiniteDifferences([x, Tensor.randn(shape: [4, 2], seed: 22)], seed: 23) {
            try matmul(upsampleNearest2x($0[0].reshape([1, 1, 3, 4])).reshape([6, 8]).narrow(axis: 1, start: 2, length: 4), $0[1])
        }
    }

    func testFrozenParametersRecordNothing() throws {
        let frozen = Parameter(Tensor.randn(shape: [4, 3], seed: 1), requiresGrad: false)
        let input = Tensor.randn(shape: [2, 3], seed: 2)
        let output = try linear(input, weight: frozen.tensor)
        XCTAssertFalse(output.requiresGrad, "no input requires a gradient: no tape node")
        XCTAssertThrowsError(try output.sum().backward()) { error in
            guard case TensorError.noGraph = error else { return XCTFail("unexpected \(error)") }
        }
        // A trainable input through a frozen weight: only the input gets a gradient.
        let trainable = Parameter(input)
        try linear(trainable.tensor, weight: frozen.tensor).sum().backward()
        XCTAssertNil(frozen.grad)
        let expected = Tensor(shape: [2, 4], fill: 1)
        assertClose(try XCTUnwrap(trainable.grad), try matmul(expected, frozen.value), "dx = 1·W")
    }

    func testNoGradModeSkipsTheTape() throws {
        let weight = Parameter(Tensor.randn(shape: [3], seed: 3))
        let output = try withNoGrad { try weight.tensor * weight.tensor }
        XCTAssertFalse(output.requiresGrad)
        XCTAssertTrue(try (weight.tensor * weight.tensor).requiresGrad)
    }

    func testGradientsAccumulateAcrossBackwardCalls() throws {
        let weight = Parameter(Tensor.randn(shape: [5], seed: 4))
        for _ in 0..<3 { try (weight.tensor * weight.tensor).sum().backward() }
        let expected = weight.value.scalars.map { 6 * $0 }   // 3 × d(w²)/dw
        XCTAssertEqual(try XCTUnwrap(weight.grad).scalars, expected)
        weight.zeroGrad()
        XCTAssertNil(weight.grad)
    }

    func testSharedSubexpressionsSumTheirGradients() throws {
        // y = x·x + exp(x) with x used three times: dy/dx = 2x + exp(x).
        let x = Parameter(try Tensor(shape: [3], data: [0.5, -1, 2]))
        try (x.tensor * x.tensor + exp(x.tensor)).sum().backward()
        let expected = x.value.scalars.map { 2 * $0 + Foundation.exp($0) }
        assertClose(try XCTUnwrap(x.grad), try Tensor(shape: [3], data: expected), rtol: 1e-6, "shared use")
    }

    /// Saved intermediates are released during backward, not when the loss tensor goes away.
    func testBackwardFreesSavedIntermediatesWhileTheLossIsAlive() throws {
        let x = Parameter(Tensor.randn(shape: [64], seed: 30))
        weak var intermediateStorage: TensorStorage?
        let loss: Tensor = try {
            let hidden = exp(x.tensor)                 // saved by the multiplication below
            intermediateStorage = hidden.storage
            return try (hidden * hidden).sum()
        }()
        XCTAssertNotNil(intermediateStorage, "the graph keeps the intermediate before backward")
        try loss.backward()
        XCTAssertNil(intermediateStorage, "freed by backward while `loss` is still alive")
        XCTAssertEqual(loss.count, 1)
    }

    /// The SDS teacher path: gradients flow through frozen layers to their input, and those layers
    /// must not keep their inputs alive (only a weight gradient needs them).
    func testFrozenLayersDoNotKeepTheirInputsForBackward() throws {
        let latent = Parameter(Tensor.randn(shape: [1, 4, 6, 6], seed: 31))
        let convWeight = Parameter(Tensor.randn(shape: [4, 4, 3, 3], seed: 32, scale: 0.1), requiresGrad: false)
        let linearWeight = Parameter(Tensor.randn(shape: [5, 6], seed: 33, scale: 0.1), requiresGrad: false)
        weak var convInput: TensorStorage?, linearInput: TensorStorage?
        let loss: Tensor = try {
            let scaled = latent.tensor * 2                // the conv's input: an intermediate
            convInput = scaled.storage
            let convolved = try conv2d(scaled, weight: convWeight.tensor, stride: 1, padding: 1)
            let activated = silu(convolved)               // the linear's input (saved by silu itself for its own backward)
            let squared = activated * 3
            linearInput = squared.storage
            return try linear(squared, weight: linearWeight.tensor).sum()
        }()
        XCTAssertNil(convInput, "a frozen conv does not hold its input")
        XCTAssertNil(linearInput, "a frozen linear does not hold its input")
        try loss.backward()
        XCTAssertEqual(latent.grad?.shape, [1, 4, 6, 6])
        XCTAssertNil(convWeight.grad)
    }

    func testAdamWRejectsAParameterWhoseShapeChanged() throws {
        let p = Parameter(Tensor.randn(shape: [3], seed: 31), name: "p")
        let optimizer = try AdamW(parameters: [p])
        try (p.tensor * p.tensor).sum().backward()
        try optimizer.step()
        p.value = Tensor(zeros: [4])
        p.grad = Tensor(zeros: [4])
        XCTAssertThrowsError(try optimizer.step())
    }

    func testBackwardConsumesTheGraph() throws {
        let w = Parameter(Tensor.randn(shape: [2], seed: 5))
        let loss = try (w.tensor * 3).sum()
        try loss.backward()
        XCTAssertThrowsError(try loss.backward()) { error in
            guard case TensorError.noGraph = error else { return XCTFail("unexpected \(error)") }
        }
    }

    func testNonScalarBackwardNeedsAGradient() throws {
        let w = Parameter(Tensor.randn(shape: [2], seed: 6))
        XCTAssertThrowsError(try (w.tensor * 2).backward())
        XCTAssertThrowsError(try (w.tensor * 2).backward(gradient: Tensor(zeros: [3])))
    }

    func testChunkedAttentionEqualsSingleChunkOnLongSequences() throws {
        let q = Tensor.randn(shape: [1, 2, 600, 8], seed: 7)
        let k = Tensor.randn(shape: [1, 2, 700, 8], seed: 8)
        let v = Tensor.randn(shape: [1, 2, 700, 4], seed: 9)
        let whole = try withNoGrad { try attention(q, k, v, queryChunk: 600) }
        let chunked = try withNoGrad { try attention(q, k, v, queryChunk: 64) }
        XCTAssertEqual(whole.shape, [1, 2, 600, 4])
        XCTAssertLessThanOrEqual(maxAbsDifference(whole, chunked), 1e-6)
    }

    func testThreadCountDoesNotChangeResults() throws {
        let x = Tensor.randn(shape: [2, 8, 16, 16], seed: 10)
        let w = Tensor.randn(shape: [8], seed: 11)
        let original = Threading.threadCount
        defer { Threading.setThreadCount(original) }
        Threading.setThreadCount(1)
        XCTAssertEqual(Threading.threadCount, 1)
        let single = try groupNorm(x, groups: 4, weight: w, bias: w)
        Threading.setThreadCount(2)
        let double = try groupNorm(x, groups: 4, weight: w, bias: w)
        XCTAssertEqual(single.scalars, double.scalars)
    }

    /// randn fills ranges on the workers from jumped-ahead generators: the values are those of one
    /// sequential SplitMix64 stream, whatever the thread count (odd counts end with a lone cosine).
    func testRandnIsOneSequentialStream() throws {
        let original = Threading.threadCount
        defer { Threading.setThreadCount(original) }
        let count = 300_001
        var generator = SplitMix64(seed: 42)
        var expected: [Float] = []
        while expected.count < count {
            let u1 = max(generator.nextUnitDouble(), Double.leastNonzeroMagnitude), u2 = generator.nextUnitDouble()
            let radius = (-2 * Foundation.log(u1)).squareRoot()
            expected.append(Float(radius * Foundation.cos(2 * Double.pi * u2)) * 3)
            expected.append(Float(radius * Foundation.sin(2 * Double.pi * u2)) * 3)
        }
        for threads in [1, 2, 3] {
            Threading.setThreadCount(threads)
            XCTAssertEqual(Tensor.randn(shape: [count], seed: 42, scale: 3).scalars, Array(expected.prefix(count)), "\(threads) threads")
        }
    }

    func testInitializingWithWritesStorageDirectly() throws {
        let t = try Tensor(shape: [2, 3]) { buffer in for i in buffer.indices { buffer[i] = Float(i) * 0.5 } }
        XCTAssertEqual(t.scalars, [0, 0.5, 1, 1.5, 2, 2.5])
        XCTAssertThrowsError(try Tensor(shape: [-1]) { _ in })
    }

    func testBadInputsThrowTypedErrors() throws {
        let a = Tensor(zeros: [2, 3]), b = Tensor(zeros: [4, 5])
        XCTAssertThrowsError(try matmul(a, b)) { error in
            guard case TensorError.shapeMismatch(op: "matmul", _) = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try a + b)
        XCTAssertThrowsError(try a.reshape([4, 2]))
        XCTAssertThrowsError(try a.permute([0, 0]))
        XCTAssertThrowsError(try a.sum(axes: [2]))
        XCTAssertThrowsError(try Tensor(shape: [2, 2], data: [1, 2, 3]))
        XCTAssertThrowsError(try embedding(ids: [0, 7], idsShape: [2], table: Tensor(zeros: [7, 2]))) { error in
            XCTAssertEqual(error as? TensorError, .indexOutOfRange(op: "embedding", index: 7, bound: 7, position: 1))
        }
        XCTAssertThrowsError(try crossEntropy(Tensor(zeros: [2, 3]), targets: [0, -1]))
        XCTAssertThrowsError(try conv2d(Tensor(zeros: [1, 2, 2, 2]), weight: Tensor(zeros: [1, 2, 3, 3])))
        XCTAssertThrowsError(try groupNorm(Tensor(zeros: [1, 6, 2]), groups: 4, weight: nil, bias: nil))
        XCTAssertThrowsError(try attention(Tensor(zeros: [1, 1, 2, 3]), Tensor(zeros: [1, 1, 2, 4]), Tensor(zeros: [1, 1, 2, 4])))
        XCTAssertThrowsError(try attention(Tensor(zeros: [1, 1, 2, 3]), Tensor(zeros: [1, 1, 2, 3]), Tensor(zeros: [1, 1, 2, 3]),
                                           mask: .additive(Tensor(zeros: [3, 2]))))
        XCTAssertThrowsError(try pad2d(a, top: -1, bottom: 0, left: 0, right: 0))
    }
}
