import Tensors

// The layers every model shares, named as PyTorch names them so weights bind by scope. Each declares
// the role of the parameters it asks for; the registry records them.

/// A linear layer's weights, `[out, in]` plus an optional bias.
public struct Linear {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ scope: ParameterScope, input: Int, output: Int, bias hasBias: Bool = true) throws {
        weight = try scope.parameter("weight", shape: [output, input], role: .linearWeight)
        bias = hasBias ? try scope.parameter("bias", shape: [output], role: .linearBias) : nil
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if let reduced = weight.bfloat16 { return try linear(x, bfloat16: reduced, bias: bias?.tensor) }
        return try linear(x, weight: weight.tensor, bias: bias?.tensor)
    }
}

/// LayerNorm over the last axis with affine weights.
public struct LayerNorm {
    public let weight: Parameter
    public let bias: Parameter
    public let epsilon: Float

    public init(_ scope: ParameterScope, width: Int, epsilon: Float) throws {
        weight = try scope.parameter("weight", shape: [width], role: .layerNormWeight)
        bias = try scope.parameter("bias", shape: [width], role: .layerNormBias)
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layerNorm(x, weight: weight.tensor, bias: bias.tensor, eps: epsilon)
    }
}

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
        weight = try scope.parameter("weight", shape: [output, input, kernel, kernel], role: .convWeight)
        bias = try scope.parameter("bias", shape: [output], role: .convBias)
        self.stride = stride
        self.padding = padding
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if let reduced = weight.bfloat16 {
            return try conv2d(x, bfloat16: reduced, bias: bias.tensor, stride: (stride, stride), padding: padding)
        }
        return try conv2d(x, weight: weight.tensor, bias: bias.tensor, stride: (stride, stride), padding: padding)
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
        weight = try scope.parameter("weight", shape: [channels], role: .groupNormWeight)
        bias = try scope.parameter("bias", shape: [channels], role: .groupNormBias)
        self.groups = groups
        self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try groupNorm(x, groups: groups, weight: weight.tensor, bias: bias.tensor, eps: epsilon)
    }
}

/// The multi-head view of attention inputs: [B, L, H·D] ↔ [B, H, L, D].
public struct HeadSplit {
    public let heads: Int
    public let headWidth: Int

    public init(heads: Int, headWidth: Int) {
        self.heads = heads
        self.headWidth = headWidth
    }

    /// [B, L, H·D] → [B, H, L, D]; with one head both layouts are the same memory, so no copy.
    public func split(_ t: Tensor) throws -> Tensor {
        if heads == 1 { return try t.reshape([t.shape[0], 1, t.shape[1], headWidth]) }
        return try t.reshape([t.shape[0], t.shape[1], heads, headWidth]).permute([0, 2, 1, 3])
    }

    /// [B, H, L, D] → [B, L, H·D].
    public func merge(_ t: Tensor) throws -> Tensor {
        let (batch, length) = (t.shape[0], t.shape[2])
        let merged = heads == 1 ? t : try t.permute([0, 2, 1, 3])
        return try merged.reshape([batch, length, heads * headWidth])
    }

    /// Scaled dot-product attention over split heads of q [B, Lq, H·D], k and v [B, Lk, H·D]; with
    /// `bfloat16Products` its forward products in bf16 (`attention`'s option).
    public func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: AttentionMask = .none, bfloat16Products: Bool = false) throws -> Tensor {
        try merge(attention(split(q), split(k), split(v), mask: mask, scale: 1 / Float(headWidth).squareRoot(),
                            bfloat16Products: bfloat16Products))
    }
}
