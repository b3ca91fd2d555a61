import Tensors

// The layers the UNet and the VAE share, named as diffusers names them so weights bind by scope.

/// A 2-D convolution `[O, I, k, k]` with bias, same-size padding unless told otherwise.
public struct Conv2D {
    public let weight: Parameter
    public let bias: Parameter
    let stride: Int
    let padding: Padding2D

    public init(_ scope: ParameterScope, input: Int, output: Int, kernel: Int = 3, stride: Int = 1, padding: Int? = nil) throws {
        try self.init(scope, input: input, output: output, kernel: kernel, stride: stride, padding: .uniform(padding ?? (kernel - 1) / 2))
    }

    /// Any (asymmetric) zero padding, applied inside the convolution rather than as a padded copy.
    public init(_ scope: ParameterScope, input: Int, output: Int, kernel: Int = 3, stride: Int = 1, padding: Padding2D) throws {
        weight = try scope.parameter("weight", shape: [output, input, kernel, kernel])
        bias = try scope.parameter("bias", shape: [output])
        self.stride = stride
        self.padding = padding
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv2d(x, weight: weight.tensor, bias: bias.tensor, stride: (stride, stride), padding: padding)
    }
}

/// GroupNorm with affine weights; the epsilon differs by place (UNet resnets 1e-5, transformers and VAE 1e-6).
public struct GroupNorm {
    public let weight: Parameter
    public let bias: Parameter
    let groups: Int
    let epsilon: Float

    public init(_ scope: ParameterScope, channels: Int, groups: Int, epsilon: Float) throws {
        guard groups > 0, channels % groups == 0 else {
            throw ModelError.invalidConfiguration("\(scope.prefix): \(channels) channels cannot form \(groups) groups")
        }
        weight = try scope.parameter("weight", shape: [channels])
        bias = try scope.parameter("bias", shape: [channels])
        self.groups = groups
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try groupNorm(x, groups: groups, weight: weight.tensor, bias: bias.tensor, eps: epsilon)
    }
}

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
        // [B, L, H·D] ↔ [B, H, L, D]; with one head (the VAE) both layouts are the same memory, so no copy.
        func split(_ t: Tensor) throws -> Tensor {
            if heads == 1 { return try t.reshape([t.shape[0], 1, t.shape[1], headWidth]) }
            return try t.reshape([t.shape[0], t.shape[1], heads, headWidth]).permute([0, 2, 1, 3])
        }
        let q = try split(toQ(x)), k = try split(toK(source)), v = try split(toV(source))
        let attended = try attention(q, k, v, scale: 1 / Float(headWidth).squareRoot())
        let merged = heads == 1 ? attended : try attended.permute([0, 2, 1, 3])
        return try toOut(merged.reshape([x.shape[0], x.shape[1], heads * headWidth]))
    }
}
