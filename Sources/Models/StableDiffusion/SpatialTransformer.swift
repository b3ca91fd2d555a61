import Tensors

/// diffusers `BasicTransformerBlock` as SD uses it: pre-LayerNorm self-attention, cross-attention on
/// the text states, GEGLU feed-forward, each added back to the residual stream.
struct BasicTransformerBlock {
    let norm1, norm2, norm3: LayerNorm
    let selfAttention: MultiHeadAttention
    let crossAttention: MultiHeadAttention
    let feedForwardIn: Linear
    let feedForwardOut: Linear

    init(_ scope: ParameterScope, width: Int, heads: Int, headWidth: Int, contextWidth: Int) throws {
        norm1 = try LayerNorm(scope["norm1"], width: width, epsilon: 1e-5)
        selfAttention = try MultiHeadAttention(scope["attn1"], queryWidth: width, contextWidth: width, heads: heads,
                                               headWidth: headWidth, projectionBias: false)
        norm2 = try LayerNorm(scope["norm2"], width: width, epsilon: 1e-5)
        crossAttention = try MultiHeadAttention(scope["attn2"], queryWidth: width, contextWidth: contextWidth, heads: heads,
                                                headWidth: headWidth, projectionBias: false)
        norm3 = try LayerNorm(scope["norm3"], width: width, epsilon: 1e-5)
        // GEGLU: one projection to 2·4C; the first half is the value, the second the gate.
        feedForwardIn = try Linear(scope["ff"]["net"][0]["proj"], input: width, output: 8 * width)
        feedForwardOut = try Linear(scope["ff"]["net"][2], input: 4 * width, output: width)
    }

    func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {
        var h = try selfAttention(norm1(x)) + x
        h = try crossAttention(norm2(h), context: context) + h
        return try feedForwardOut(geglu(feedForwardIn(norm3(h)))) + h
    }
}

/// diffusers `Transformer2DModel` (LDM `SpatialTransformer`) on continuous inputs: GroupNorm (ε 1e-6),
/// project in, transformer blocks over the H·W tokens, project out, add the input. SD1 projects with
/// 1×1 convolutions before flattening; SD2 (`use_linear_projection`) with linears after.
struct SpatialTransformer {
    enum Projection {
        case convolution(Conv2D)
        case linear(Linear)
    }

    let norm: GroupNorm
    let projectIn: Projection
    let blocks: [BasicTransformerBlock]
    let projectOut: Projection

    init(_ scope: ParameterScope, channels: Int, heads: Int, depth: Int, contextWidth: Int, groups: Int, linearProjection: Bool) throws {
        let headWidth = channels / heads
        let inner = heads * headWidth
        norm = try GroupNorm(scope["norm"], channels: channels, groups: groups, epsilon: 1e-6)
        if linearProjection {
            projectIn = .linear(try Linear(scope["proj_in"], input: channels, output: inner))
            projectOut = .linear(try Linear(scope["proj_out"], input: inner, output: channels))
        } else {
            projectIn = .convolution(try Conv2D(scope["proj_in"], input: channels, output: inner, kernel: 1))
            projectOut = .convolution(try Conv2D(scope["proj_out"], input: inner, output: channels, kernel: 1))
        }
        blocks = try (0..<depth).map {
            try BasicTransformerBlock(scope["transformer_blocks"][$0], width: inner, heads: heads, headWidth: headWidth, contextWidth: contextWidth)
        }
    }

    func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {
        let (height, width) = (x.shape[2], x.shape[3])
        let normed = try norm(x)
        var h: Tensor
        switch projectIn {
        case .convolution(let conv): h = try tokens(fromImage: conv(normed))
        case .linear(let linear): h = try linear(tokens(fromImage: normed))
        }
        for block in blocks { h = try block(h, context: context) }
        let out: Tensor
        switch projectOut {
        case .convolution(let conv): out = try conv(image(fromTokens: h, height: height, width: width))
        case .linear(let linear): out = try image(fromTokens: linear(h), height: height, width: width)
        }
        return try out + x
    }
}
