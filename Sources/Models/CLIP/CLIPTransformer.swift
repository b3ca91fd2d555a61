import Tensors

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
        let heads = HeadSplit(heads: self.heads, headWidth: x.shape[2] / self.heads)
        return try outProj(heads.attend(qProj(x), kProj(x), vProj(x), mask: mask))
    }

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

}

/// A stack of encoder layers (HF `CLIPEncoder`; `scope` is its `encoder` scope).
public struct CLIPEncoder {
    let layers: [CLIPEncoderLayer]

    public init(_ scope: ParameterScope, count: Int, width: Int, heads: Int, mlpWidth: Int, activation: CLIPActivation, epsilon: Float) throws {
        layers = try (0..<count).map {
            try CLIPEncoderLayer(scope["layers"][$0], width: width, heads: heads, mlpWidth: mlpWidth,
                                 activation: activation, epsilon: epsilon)
        }
    }

    /// Runs the first `limit` layers (all when nil).
    public func callAsFunction(_ x: Tensor, mask: AttentionMask, limit: Int? = nil) throws -> Tensor {
        var h = x
        for layer in layers.prefix(limit ?? layers.count) { h = try layer(h, mask: mask) }
        return h
    }
}
