import XCTest
@testable import Tensors

/// Ops composed into a model, and the optimiser, against torch.
final class CompositeAndOptimizerTests: XCTestCase {
    /// Two pre-LN transformer layers (causal attention, QuickGELU MLP) as in CLIP's text tower,
    /// forward and gradients for the input and all 32 parameters (fixtures/tensors/composite.safetensors).
    /// Tolerance 2e-5 relative to each tensor's scale (2 layers of fp32 accumulation vs a float64 reference)
    /// plus 1e-6 absolute: the key-bias gradients are exactly zero in exact arithmetic (softmax ignores a
    /// per-row constant), so fp32 leaves ~1e-7 noise there while the other gradients are of order 1.
    func testTwoLayerPreLNTransformerMatchesTorch() throws {
        let fixture = try FixtureFile(named: "composite")
        let names = fixture.entries.keys.filter { $0.hasPrefix("block.input.") }.map { String($0.dropFirst("block.input.".count)) }
        XCTAssertEqual(names.count, 33)
        try checkCase(fixture, "block", inputs: names, rtol: 2e-5, atol: 1e-6) { t in
            let (width, heads) = (8, 2)
            var x = t["x"]!
            let (batch, tokens) = (x.shape[0], x.shape[1])
            for layer in 0..<2 {
                func p(_ key: String) -> Tensor { t["l\(layer)_\(key)"]! }
                func heads4(_ y: Tensor) throws -> Tensor {
                    try y.reshape([batch, tokens, heads, width / heads]).transpose(1, 2)
                }
                let h = try layerNorm(x, weight: p("ln1_w"), bias: p("ln1_b"), eps: 1e-5)
                let q = try heads4(linear(h, weight: p("q_w"), bias: p("q_b")))
                let k = try heads4(linear(h, weight: p("k_w"), bias: p("k_b")))
                let v = try heads4(linear(h, weight: p("v_w"), bias: p("v_b")))
                let a = try attention(q, k, v, mask: .causal).transpose(1, 2).reshape([batch, tokens, width])
                x = try x + linear(a, weight: p("o_w"), bias: p("o_b"))
                let m = try layerNorm(x, weight: p("ln2_w"), bias: p("ln2_b"), eps: 1e-5)
                let hidden = quickGELU(try linear(m, weight: p("fc1_w"), bias: p("fc1_b")))
                x = try x + linear(hidden, weight: p("fc2_w"), bias: p("fc2_b"))
            }
            return x
        }
    }

    /// A diffusers-style ResnetBlock2D with time embedding, then ×2 nearest upsampling and the VAE's
    /// (0, 1, 0, 1)-padded stride-2 conv: forward and all 16 gradients vs torch
    /// (fixtures/tensors/composite.safetensors). Tolerance 2e-5 relative to each tensor's scale.
    func testResnetBlockWithUpAndDownsamplingMatchesTorch() throws {
        let fixture = try FixtureFile(named: "composite")
        let names = fixture.entries.keys.filter { $0.hasPrefix("resblock.input.") }.map { String($0.dropFirst("resblock.input.".count)) }
        XCTAssertEqual(names.count, 16)
        try checkCase(fixture, "resblock", inputs: names, rtol: 2e-5) { t in
            let x = t["x"]!, out = t["c1_w"]!.shape[0]
            var h = silu(try groupNorm(x, groups: 8, weight: t["n1_w"]!, bias: t["n1_b"]!, eps: 1e-5))
            h = try conv2d(h, weight: t["c1_w"]!, bias: t["c1_b"]!, stride: 1, padding: 1)
            let timeProjection = try linear(silu(t["temb"]!), weight: t["t_w"]!, bias: t["t_b"]!)
            h = try h + timeProjection.reshape([-1, out, 1, 1])
            h = silu(try groupNorm(h, groups: 8, weight: t["n2_w"]!, bias: t["n2_b"]!, eps: 1e-5))
            h = try conv2d(h, weight: t["c2_w"]!, bias: t["c2_b"]!, stride: 1, padding: 1)
            let y = try upsampleNearest2x(try conv2d(x, weight: t["s_w"]!, bias: t["s_b"]!) + h)
            return try conv2d(y, weight: t["d_w"]!, bias: t["d_b"]!, stride: (2, 2),
                              padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        }
    }

    /// Five AdamW steps (lr 0.05, betas (0.9, 0.999), eps 1e-8, weight decay 0.1) on
    /// loss = mean((p1·X + p2 − T)²): loss, gradients and parameters after every step, and the final
    /// moments, against torch.optim.AdamW in float32. Tolerance 1e-5 relative to each tensor's scale.
    func testAdamWMatchesTorchStepByStep() throws {
        let fixture = try FixtureFile(named: "adamw")
        let p1 = Parameter(try fixture.tensor("adamw.p1.initial"), name: "p1")
        let p2 = Parameter(try fixture.tensor("adamw.p2.initial"), name: "p2")
        let x = try fixture.tensor("adamw.X"), target = try fixture.tensor("adamw.T")
        let optimizer = try AdamW(parameters: [p1, p2], learningRate: 0.05, betas: (0.9, 0.999), epsilon: 1e-8, weightDecay: 0.1)
        for step in 1...5 {
            optimizer.zeroGrad()
            let prediction = try matmul(p1.tensor, x) + p2.tensor
            let loss = try mseLoss(prediction, target)
            assertClose(try loss.reshape([1]), try fixture.tensor("adamw.step\(step).loss"), "step \(step) loss")
            try loss.backward()
            assertClose(try XCTUnwrap(p1.grad), try fixture.tensor("adamw.step\(step).grad.p1"), "step \(step) grad p1")
            assertClose(try XCTUnwrap(p2.grad), try fixture.tensor("adamw.step\(step).grad.p2"), "step \(step) grad p2")
            try optimizer.step()
            assertClose(p1.value, try fixture.tensor("adamw.step\(step).p1"), "step \(step) p1")
            assertClose(p2.value, try fixture.tensor("adamw.step\(step).p2"), "step \(step) p2")
        }
        let state = try XCTUnwrap(optimizer.states["p1"])
        XCTAssertEqual(state.step, 5)
        assertClose(state.firstMoment, try fixture.tensor("adamw.final.exp_avg.p1"), "exp_avg p1")
        assertClose(state.secondMoment, try fixture.tensor("adamw.final.exp_avg_sq.p1"), "exp_avg_sq p1")
    }

    /// Resuming from saved optimiser state reproduces an uninterrupted run exactly.
    func testAdamWResumesFromSavedState() throws {
        func run(steps: Int, optimizer: AdamW, parameter: Parameter) throws {
            for _ in 0..<steps {
                optimizer.zeroGrad()
                try (parameter.tensor * parameter.tensor).sum().backward()
                try optimizer.step()
            }
        }
        let initial = Tensor.randn(shape: [6], seed: 3)
        let straight = Parameter(initial, name: "w")
        let straightOptimizer = try AdamW(parameters: [straight], learningRate: 0.1)
        try run(steps: 4, optimizer: straightOptimizer, parameter: straight)

        let first = Parameter(initial, name: "w")
        let firstOptimizer = try AdamW(parameters: [first], learningRate: 0.1)
        try run(steps: 2, optimizer: firstOptimizer, parameter: first)
        // The resumed optimiser lists its parameters in another order: state follows names, not positions.
        let resumed = Parameter(first.value, name: "w")
        let other = Parameter(Tensor(zeros: [2]), requiresGrad: false, name: "other")
        let resumedOptimizer = try AdamW(parameters: [other, resumed], learningRate: 0.1)
        try resumedOptimizer.loadStates(firstOptimizer.states)
        try run(steps: 2, optimizer: resumedOptimizer, parameter: resumed)
        XCTAssertEqual(resumed.value.scalars, straight.value.scalars)
        XCTAssertThrowsError(try resumedOptimizer.loadStates(["missing": firstOptimizer.states["w"]!]))
        XCTAssertThrowsError(try resumedOptimizer.loadStates(["other": firstOptimizer.states["w"]!]), "shape differs")
        XCTAssertThrowsError(try AdamW(parameters: [Parameter(initial), Parameter(initial)]), "unnamed parameters")
    }
}
