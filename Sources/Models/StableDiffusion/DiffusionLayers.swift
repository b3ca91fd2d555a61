import Tensors

// The layers the UNet and the VAE share, named as diffusers names them so weights bind by scope.

/// diffusers `ResnetBlock2D`: GN → SiLU → conv1 (+ time projection) → GN → SiLU → conv2, plus the
/// (1×1 conv when the width changes) shortcut. The VAE's resnets have no time projection.
struct ResnetBlock2D {
    let norm1: GroupNorm
    let conv1: Conv2D
    let timeProjection: Linear?
    let norm2: GroupNorm
    let conv2: Conv2D
    let shortcut: Conv2D?

    init(_ scope: ParameterScope, input: Int, output: Int, timeWidth: Int?, groups: Int, epsilon: Float) throws {
        norm1 = try GroupNorm(scope["norm1"], channels: input, groups: groups, epsilon: epsilon)
        conv1 = try Conv2D(scope["conv1"], input: input, output: output)
        timeProjection = try timeWidth.map { try Linear(scope["time_emb_proj"], input: $0, output: output) }
        norm2 = try GroupNorm(scope["norm2"], channels: output, groups: groups, epsilon: epsilon)
        conv2 = try Conv2D(scope["conv2"], input: output, output: output)
        shortcut = input == output ? nil : try Conv2D(scope["conv_shortcut"], input: input, output: output, kernel: 1)
    }

    /// `activatedTime` is SiLU(time embedding) [B, T], shared by every resnet of a forward pass.
    func callAsFunction(_ x: Tensor, activatedTime: Tensor?) throws -> Tensor {
        var h = try conv1(silu(norm1(x)))
        if let timeProjection, let activatedTime {
            let t = try timeProjection(activatedTime)
            h = try h + t.reshape([t.shape[0], t.shape[1], 1, 1])
        }
        h = try conv2(silu(norm2(h)))
        return try (shortcut?(x) ?? x) + h
    }
}

/// [B, C, H, W] → [B, H·W, C].
func tokens(fromImage x: Tensor) throws -> Tensor {
    try x.reshape([x.shape[0], x.shape[1], x.shape[2] * x.shape[3]]).permute([0, 2, 1])
}

/// [B, H·W, C] → [B, C, H, W].
func image(fromTokens x: Tensor, height: Int, width: Int) throws -> Tensor {
    try x.permute([0, 2, 1]).reshape([x.shape[0], x.shape[2], height, width])
}

/// Multi-head attention with diffusers names (`to_q`, `to_k`, `to_v`, `to_out.0`). K and V come from
/// `context` when given (cross-attention), else from the queries' own tokens.
struct MultiHeadAttention {
    let toQ, toK, toV, toOut: Linear
    let heads: Int
    let headWidth: Int

    init(_ scope: ParameterScope, queryWidth: Int, contextWidth: Int, heads: Int, headWidth: Int, projectionBias: Bool) throws {
        let inner = heads * headWidth
        toQ = try Linear(scope["to_q"], input: queryWidth, output: inner, bias: projectionBias)
        toK = try Linear(scope["to_k"], input: contextWidth, output: inner, bias: projectionBias)
        toV = try Linear(scope["to_v"], input: contextWidth, output: inner, bias: projectionBias)
        toOut = try Linear(scope["to_out"][0], input: inner, output: queryWidth)
        self.heads = heads
        self.headWidth = headWidth
    }

    /// x [B, Lq, C], context [B, Lk, D] → [B, Lq, C].
    func callAsFunction(_ x: Tensor, context: Tensor? = nil) throws -> Tensor {
        let source = context ?? x
        guard source.shape[0] == x.shape[0] else {
            throw ModelError.invalidInput("attention context batch \(source.shape[0]) differs from the sample batch \(x.shape[0])")
        }
        let split = HeadSplit(heads: heads, headWidth: headWidth)
        // A teacher switched to bf16 (its projections hold bf16 copies) attends with bf16 products too.
        return try toOut(split.attend(toQ(x), toK(source), toV(source), bfloat16Products: toQ.weight.bfloat16 != nil))
    }
}
