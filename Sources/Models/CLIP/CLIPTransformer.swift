import Tensors

/// A linear layer's weights, `[out, in]` plus an optional bias, named as in PyTorch.
public struct Linear {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ scope: ParameterScope, input: Int, output: Int, bias hasBias: Bool = true) throws {
        weight = try scope.parameter("weight", shape: [output, input])
        bias = hasBias ? try scope.parameter("bias", shape: [output]) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try linear(x, weight: weight.tensor, bias: bias?.tensor)
    }

    public var parameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }
}

/// LayerNorm over the last axis with affine weights.
public struct LayerNorm {
    public let weight: Parameter
    public let bias: Parameter
    public let epsilon: Float

    public init(_ scope: ParameterScope, width: Int, epsilon: Float) throws {
        weight = try scope.parameter("weight", shape: [width])
        bias = try scope.parameter("bias", shape: [width])
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layerNorm(x, weight: weight.tensor, bias: bias.tensor, eps: epsilon)
    }

    public var parameters: [Parameter] { [weight, bias] }
}

/// Multi-head self-attention with separate q/k/v projections (HF `CLIPAttention`).
struct CLIPAttention {
    let qProj, kProj, vProj, outProj: Linear
    let heads: Int

    init(_ scope: ParameterScope, width: Int, heads: Int) throws {
        qProj = try Linear(scope["q_proj"], input: width, output: width)
        kProj = try Linear(scope["k_proj"], input: width, output: width)
        vProj = try Linear(scope["v_proj"], input: width, output: width)
        outProj = try Linear(scope["out_proj"], input: width, output: width)
        self.heads = heads
    }

    /// x: [B, L, W] → [B, L, W].
    func callAsFunction(_ x: Tensor, mask: AttentionMask) throws -> Tensor {
        let (batch, length, width) = (x.shape[0], x.shape[1], x.shape[2])
        let headDim = width / heads
        func split(_ t: Tensor) throws -> Tensor {
            try t.reshape([batch, length, heads, headDim]).permute([0, 2, 1, 3])
        }
        let q = try split(qProj(x)), k = try split(kProj(x)), v = try split(vProj(x))
        let attended = try attention(q, k, v, mask: mask, scale: 1 / Float(headDim).squareRoot())
        return try outProj(attended.permute([0, 2, 1, 3]).reshape([batch, length, width]))
    }

    var parameters: [Parameter] { [qProj, kProj, vProj, outProj].flatMap(\.parameters) }
}

/// One pre-LN residual block (HF `CLIPEncoderLayer`, OpenAI `ResidualAttentionBlock`).
struct CLIPEncoderLayer {
    let layerNorm1: LayerNorm
    let selfAttention: CLIPAttention
    let layerNorm2: LayerNorm
    let fc1, fc2: Linear
    let activation: CLIPActivation

    init(_ scope: ParameterScope, width: Int, heads: Int, mlpWidth: Int, activation: CLIPActivation, epsilon: Float) throws {
        layerNorm1 = try LayerNorm(scope["layer_norm1"], width: width, epsilon: epsilon)
        selfAttention = try CLIPAttention(scope["self_attn"], width: width, heads: heads)
        layerNorm2 = try LayerNorm(scope["layer_norm2"], width: width, epsilon: epsilon)
        fc1 = try Linear(scope["mlp"]["fc1"], input: width, output: mlpWidth)
        fc2 = try Linear(scope["mlp"]["fc2"], input: mlpWidth, output: width)
        self.activation = activation
    }

    func callAsFunction(_ x: Tensor, mask: AttentionMask) throws -> Tensor {
        let h = try x + selfAttention(layerNorm1(x), mask: mask)
        let hidden = try fc1(layerNorm2(h))
        let activated = activation == .quickGELU ? quickGELU(hidden) : gelu(hidden)
        return try h + fc2(activated)
    }

    var parameters: [Parameter] { layerNorm1.parameters + selfAttention.parameters + layerNorm2.parameters + fc1.parameters + fc2.parameters }
    var layerNormParameters: [Parameter] { layerNorm1.parameters + layerNorm2.parameters }
}

/// A stack of encoder layers.
struct CLIPEncoder {
    let layers: [CLIPEncoderLayer]

    init(_ scope: ParameterScope, count: Int, width: Int, heads: Int, mlpWidth: Int, activation: CLIPActivation, epsilon: Float) throws {
        layers = try (0..<count).map {
            try CLIPEncoderLayer(scope["layers"][$0], width: width, heads: heads, mlpWidth: mlpWidth,
                                 activation: activation, epsilon: epsilon)
        }
    }

    /// Runs the first `limit` layers (all when nil).
    func callAsFunction(_ x: Tensor, mask: AttentionMask, limit: Int? = nil) throws -> Tensor {
        var h = x
        for layer in layers.prefix(limit ?? layers.count) { h = try layer(h, mask: mask) }
        return h
    }
}
