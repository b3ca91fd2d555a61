import XCTest
@testable import Tensors

/// Forward values and gradients of every op against torch (fixtures/tensors/ops.safetensors, made by
/// tools/make_tensor_fixtures.py; torch computed them in float64 from float32 inputs).
/// Tolerance unless stated: |Δ| ≤ 1e-5·(|ref| + max|ref|) per element.
final class OpParityTests: XCTestCase {
    var ops: FixtureFile!

    override func setUpWithError() throws { ops = try FixtureFile(named: "ops") }

    func testBroadcastingArithmetic() throws {
        try checkCase(ops, "add", inputs: ["a", "b"]) { try $0["a"]! + $0["b"]! }
        try checkCase(ops, "sub", inputs: ["a", "b"]) { try $0["a"]! - $0["b"]! }
        try checkCase(ops, "mul", inputs: ["a", "b"]) { try $0["a"]! * $0["b"]! }
        try checkCase(ops, "div", inputs: ["a", "b"]) { try $0["a"]! / $0["b"]! }
        try checkCase(ops, "scalar_chain", inputs: ["x"]) { ($0["x"]! * 2.5 + 1.5) / 3.0 - 0.25 }
    }

    func testUnaryFunctions() throws {
        try checkCase(ops, "exp", inputs: ["x"]) { exp($0["x"]!) }
        try checkCase(ops, "log", inputs: ["x"]) { log($0["x"]!) }
        try checkCase(ops, "sqrt", inputs: ["x"]) { sqrt($0["x"]!) }
        try checkCase(ops, "pow", inputs: ["x"]) { pow($0["x"]!, 1.7) }
        try checkCase(ops, "gelu", inputs: ["x"]) { gelu($0["x"]!) }
        try checkCase(ops, "quick_gelu", inputs: ["x"]) { quickGELU($0["x"]!) }
        try checkCase(ops, "silu", inputs: ["x"]) { silu($0["x"]!) }
        try checkCase(ops, "sigmoid", inputs: ["x"]) { sigmoid($0["x"]!) }
        try checkCase(ops, "sin", inputs: ["x"]) { sin($0["x"]!) }
        try checkCase(ops, "cos", inputs: ["x"]) { cos($0["x"]!) }
        try checkCase(ops, "tanh", inputs: ["x"]) { tanh($0["x"]!) }
        try checkCase(ops, "geglu", inputs: ["x"]) { try geglu($0["x"]!) }
    }

    func testMatrixProducts() throws {
        try checkCase(ops, "matmul_2d", inputs: ["a", "b"]) { try matmul($0["a"]!, $0["b"]!) }
        try checkCase(ops, "matmul_batched", inputs: ["a", "b"]) { try matmul($0["a"]!, $0["b"]!) }
        try checkCase(ops, "matmul_bcast", inputs: ["a", "b"]) { try matmul($0["a"]!, $0["b"]!) }
        try checkCase(ops, "matmul_shared_rhs", inputs: ["a", "b"]) { try matmul($0["a"]!, $0["b"]!) }
        try checkCase(ops, "linear", inputs: ["x", "w", "b"]) { try linear($0["x"]!, weight: $0["w"]!, bias: $0["b"]!) }
        try checkCase(ops, "linear_nobias", inputs: ["x", "w"]) { try linear($0["x"]!, weight: $0["w"]!) }
    }

    func testConvolutions() throws {
        try checkCase(ops, "conv2d_s2p1", inputs: ["x", "w", "b"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: 2, padding: 1)
        }
        try checkCase(ops, "conv2d_s1p1", inputs: ["x", "w", "b"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: 1, padding: 1)
        }
        try checkCase(ops, "conv2d_asym", inputs: ["x", "w", "b"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: (2, 2),
                       padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        }
        try checkCase(ops, "conv2d_1x1", inputs: ["x", "w", "b"]) { try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!) }
        try checkCase(ops, "conv2d_rect", inputs: ["x", "w"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, stride: (1, 2), padding: Padding2D(top: 2, bottom: 2, left: 0, right: 0))
        }
        // Row-tiled im2col (a budget of one output row per tile) against the same torch references.
        try checkCase(ops, "conv2d_s2p1", inputs: ["x", "w", "b"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, stride: (2, 2), padding: .uniform(1), columnBudget: 1)
        }
        try checkCase(ops, "conv2d_rect", inputs: ["x", "w"]) {
            try conv2d($0["x"]!, weight: $0["w"]!, bias: nil, stride: (1, 2),
                       padding: Padding2D(top: 2, bottom: 2, left: 0, right: 0), columnBudget: 30)
        }
        try checkCase(ops, "pad", inputs: ["x"]) { try pad2d($0["x"]!, top: 0, bottom: 1, left: 0, right: 1) }
        // The explicit pad followed by an unpadded conv must agree with the padded conv.
        try checkCase(ops, "conv2d_asym", inputs: ["x", "w", "b"]) {
            try conv2d(pad2d($0["x"]!, top: 0, bottom: 1, left: 0, right: 1), weight: $0["w"]!, bias: $0["b"]!, stride: 2)
        }
    }

    func testNormalizations() throws {
        try checkCase(ops, "group_norm", inputs: ["x", "w", "b"]) {
            try groupNorm($0["x"]!, groups: 3, weight: $0["w"]!, bias: $0["b"]!, eps: 1e-5)
        }
        try checkCase(ops, "group_norm_eps6", inputs: ["x", "w", "b"]) {
            try groupNorm($0["x"]!, groups: 2, weight: $0["w"]!, bias: $0["b"]!, eps: 1e-6)
        }
        try checkCase(ops, "layer_norm", inputs: ["x", "w", "b"]) {
            try layerNorm($0["x"]!, weight: $0["w"]!, bias: $0["b"]!, eps: 1e-5)
        }
    }

    func testSoftmaxFamily() throws {
        try checkCase(ops, "softmax_last", inputs: ["x"]) { try $0["x"]!.softmax(axis: -1) }
        try checkCase(ops, "softmax_axis1", inputs: ["x"]) { try $0["x"]!.softmax(axis: 1) }
        try checkCase(ops, "log_softmax", inputs: ["x"]) { try $0["x"]!.logSoftmax(axis: -1) }
        let targets = try ops.integers("cross_entropy.input.targets").values
        try checkCase(ops, "cross_entropy", inputs: ["logits"]) { try crossEntropy($0["logits"]!, targets: targets) }
        try checkCase(ops, "mse", inputs: ["a", "b"]) { try mseLoss($0["a"]!, $0["b"]!) }
    }

    func testAttention() throws {
        try checkCase(ops, "attention", inputs: ["q", "k", "v"]) { try attention($0["q"]!, $0["k"]!, $0["v"]!, scale: 0.5) }
        try checkCase(ops, "attention_causal", inputs: ["q", "k", "v"]) {
            try attention($0["q"]!, $0["k"]!, $0["v"]!, mask: .causal)
        }
        let mask = try ops.tensor("attention_mask.input.mask")
        try checkCase(ops, "attention_mask", inputs: ["q", "k", "v"]) {
            try attention($0["q"]!, $0["k"]!, $0["v"]!, mask: .additive(mask))
        }
        // Chunked queries (5 rows per chunk, 37 queries: a ragged last chunk) must equal the full computation.
        for chunk in [nil, 5, 1] {
            try checkCase(ops, "attention_long", inputs: ["q", "k", "v"]) {
                try attention($0["q"]!, $0["k"]!, $0["v"]!, queryChunk: chunk)
            }
        }
    }

    func testShapeOps() throws {
        try checkCase(ops, "upsample", inputs: ["x"]) { try upsampleNearest2x($0["x"]!) }
        try checkCase(ops, "concat", inputs: ["a", "b"]) { try concat([$0["a"]!, $0["b"]!], axis: 1) }
        try checkCase(ops, "chunk", inputs: ["x"]) {
            let parts = try $0["x"]!.chunk(3, axis: 1)
            return try parts[0] * parts[1] + parts[2]
        }
        try checkCase(ops, "permute_reshape", inputs: ["x"]) { try $0["x"]!.permute([2, 0, 1]).reshape([4, -1]) }
        try checkCase(ops, "transpose", inputs: ["x"]) { try $0["x"]!.transpose(1, 2) }
        try checkCase(ops, "sum_keep", inputs: ["x"]) { try $0["x"]!.sum(axes: [1], keepDims: true) }
        try checkCase(ops, "mean_02", inputs: ["x"]) { try $0["x"]!.mean(axes: [0, 2]) }
        try checkCase(ops, "sum_all", inputs: ["x"]) { try $0["x"]!.sum() }
        try checkCase(ops, "l2_normalize", inputs: ["x"]) { try l2Normalize($0["x"]!, axis: -1) }
    }

    func testIndexOps() throws {
        let x = try ops.tensor("argmax.input.x")
        let expected = try ops.integers("argmax.output")
        XCTAssertEqual(try x.argmax(axis: 1), expected.values, "first occurrence wins on ties")
        let index = try ops.integers("index_select.input.index").values
        try checkCase(ops, "index_select", inputs: ["x"]) { try $0["x"]!.indexSelect(axis: 1, indices: index) }
        XCTAssertThrowsError(try Tensor(zeros: [2, 3]).indexSelect(axis: 1, indices: [3]))
        try checkCase(ops, "expand", inputs: ["x"]) { try $0["x"]!.broadcast(to: [2, 3, 4]) }
        let ids = try ops.integers("embedding.input.ids")
        try checkCase(ops, "embedding", inputs: ["table"]) { try embedding(ids: ids.values, idsShape: ids.shape, table: $0["table"]!) }
    }
}
