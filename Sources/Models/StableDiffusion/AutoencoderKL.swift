import Tensors

/// The VAE mid block's single-head self-attention over all H·W positions (diffusers `Attention` with
/// `residual_connection`, LDM `AttnBlock`): GN (ε 1e-6) → q, k, v → softmax(q·kᵀ/√C)·v → to_out.0 → + x.
struct VAEAttention {
    let groupNorm: GroupNorm
    let attention: MultiHeadAttention

    init(_ scope: ParameterScope, channels: Int, groups: Int) throws {
        groupNorm = try GroupNorm(scope["group_norm"], channels: channels, groups: groups, epsilon: 1e-6)
        attention = try MultiHeadAttention(scope, queryWidth: channels, contextWidth: channels, heads: 1, headWidth: channels, projectionBias: true)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let attended = try attention(tokens(fromImage: groupNorm(x)))
        return try image(fromTokens: attended, height: x.shape[2], width: x.shape[3]) + x
    }
}

/// `UNetMidBlock2D` without time embedding: resnet → attention → resnet.
struct VAEMidBlock {
    let resnet0: ResnetBlock2D
    let attention: VAEAttention?
    let resnet1: ResnetBlock2D

    init(_ scope: ParameterScope, channels: Int, groups: Int, addAttention: Bool) throws {
        resnet0 = try ResnetBlock2D(scope["resnets"][0], input: channels, output: channels, timeWidth: nil, groups: groups, epsilon: 1e-6)
        attention = addAttention ? try VAEAttention(scope["attentions"][0], channels: channels, groups: groups) : nil
        resnet1 = try ResnetBlock2D(scope["resnets"][1], input: channels, output: channels, timeWidth: nil, groups: groups, epsilon: 1e-6)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try resnet0(x, activatedTime: nil)
        if let attention { h = try attention(h) }
        return try resnet1(h, activatedTime: nil)
    }
}

/// AutoencoderKL's encoder half, through `quant_conv`: image [B, 3, H, W] in [-1, 1] → moments.
public struct VAEEncoder {
    let convIn: Conv2D
    let blocks: [(resnets: [ResnetBlock2D], downsampler: Conv2D?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm
    let convOut: Conv2D
    let quantConv: Conv2D?
    let latentChannels: Int
    let inChannels: Int
    let sizeMultiple: Int

    init(_ root: ParameterScope, configuration c: AutoencoderConfiguration) throws {
        let scope = root["encoder"], channels = c.blockOutChannels, groups = c.normNumGroups
        convIn = try Conv2D(scope["conv_in"], input: c.inChannels, output: channels[0])
        var width = channels[0]
        var blocks: [(resnets: [ResnetBlock2D], downsampler: Conv2D?)] = []
        for (index, output) in channels.enumerated() {
            let block = scope["down_blocks"][index]
            var resnets: [ResnetBlock2D] = []
            for layer in 0..<c.layersPerBlock {
                resnets.append(try ResnetBlock2D(block["resnets"][layer], input: width, output: output, timeWidth: nil, groups: groups, epsilon: 1e-6))
                width = output
            }
            // LDM / diffusers Downsample2D(padding=0) pads right and bottom by one before the stride-2
            // conv; the conv pads asymmetrically itself, so no padded copy of the image is made.
            let downsampler = index < channels.count - 1
                ? try Conv2D(block["downsamplers"][0]["conv"], input: output, output: output, stride: 2,
                             padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)) : nil
            blocks.append((resnets, downsampler))
        }
        self.blocks = blocks
        mid = try VAEMidBlock(scope["mid_block"], channels: width, groups: groups, addAttention: c.midBlockAddAttention)
        normOut = try GroupNorm(scope["conv_norm_out"], channels: width, groups: groups, epsilon: 1e-6)
        convOut = try Conv2D(scope["conv_out"], input: width, output: 2 * c.latentChannels)
        quantConv = c.useQuantConv ? try Conv2D(root["quant_conv"], input: 2 * c.latentChannels, output: 2 * c.latentChannels, kernel: 1) : nil
        latentChannels = c.latentChannels
        inChannels = c.inChannels
        sizeMultiple = c.spatialFactor
    }

    /// `[mean | logvar]` along channels: [B, 2·latent, H/f, W/f].
    public func moments(_ pixels: Tensor) throws -> Tensor {
        guard pixels.rank == 4, pixels.shape[1] == inChannels, pixels.shape[2] > 0, pixels.shape[3] > 0,
              pixels.shape[2] % sizeMultiple == 0, pixels.shape[3] % sizeMultiple == 0 else {
            throw ModelError.invalidInput("VAE encoder input must be [B, \(inChannels), H, W] with sides a multiple of \(sizeMultiple), got \(pixels.shape)")
        }
        var h = try convIn(pixels)
        for block in blocks {
            for resnet in block.resnets { h = try resnet(h, activatedTime: nil) }
            if let downsampler = block.downsampler { h = try downsampler(h) }
        }
        h = try convOut(silu(normOut(mid(h))))
        return try quantConv?(h) ?? h
    }

    /// The posterior mean (unscaled: multiply by `scaling_factor` for SD latents).
    public func latentMean(_ pixels: Tensor) throws -> Tensor {
        try moments(pixels).narrow(axis: 1, start: 0, length: latentChannels)
    }
}

/// AutoencoderKL's decoder half, from `post_quant_conv`: unscaled latent → image (unclamped).
public struct VAEDecoder {
    let postQuantConv: Conv2D?
    let convIn: Conv2D
    let mid: VAEMidBlock
    let blocks: [(resnets: [ResnetBlock2D], upsampler: Conv2D?)]
    let normOut: GroupNorm
    let convOut: Conv2D
    let latentChannels: Int

    init(_ root: ParameterScope, configuration c: AutoencoderConfiguration) throws {
        let scope = root["decoder"], groups = c.normNumGroups
        let reversed = Array(c.blockOutChannels.reversed())
        postQuantConv = c.usePostQuantConv ? try Conv2D(root["post_quant_conv"], input: c.latentChannels, output: c.latentChannels, kernel: 1) : nil
        convIn = try Conv2D(scope["conv_in"], input: c.latentChannels, output: reversed[0])
        mid = try VAEMidBlock(scope["mid_block"], channels: reversed[0], groups: groups, addAttention: c.midBlockAddAttention)
        var width = reversed[0]
        var blocks: [(resnets: [ResnetBlock2D], upsampler: Conv2D?)] = []
        for (index, output) in reversed.enumerated() {
            let block = scope["up_blocks"][index]
            var resnets: [ResnetBlock2D] = []
            for layer in 0..<(c.layersPerBlock + 1) {
                resnets.append(try ResnetBlock2D(block["resnets"][layer], input: width, output: output, timeWidth: nil, groups: groups, epsilon: 1e-6))
                width = output
            }
            let upsampler = index < reversed.count - 1 ? try Conv2D(block["upsamplers"][0]["conv"], input: output, output: output) : nil
            blocks.append((resnets, upsampler))
        }
        self.blocks = blocks
        normOut = try GroupNorm(scope["conv_norm_out"], channels: width, groups: groups, epsilon: 1e-6)
        convOut = try Conv2D(scope["conv_out"], input: width, output: c.outChannels)
        latentChannels = c.latentChannels
    }

    public func callAsFunction(_ latent: Tensor) throws -> Tensor {
        guard latent.rank == 4, latent.shape[1] == latentChannels, latent.shape[2] > 0, latent.shape[3] > 0 else {
            throw ModelError.invalidInput("VAE decoder input must be [B, \(latentChannels), h, w], got \(latent.shape)")
        }
        var h = try convIn(postQuantConv?(latent) ?? latent)
        h = try mid(h)
        for block in blocks {
            for resnet in block.resnets { h = try resnet(h, activatedTime: nil) }
            if let upsampler = block.upsampler { h = try upsampler(upsampleNearest2x(h)) }
        }
        return try convOut(silu(normOut(h)))
    }
}

/// diffusers `AutoencoderKL`. Either half may be built alone (`parts`), so an encoder-only use does
/// not need decoder weights and the loader can still insist that every loaded tensor was used.
public final class AutoencoderKL {
    public struct Parts: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let encoder = Parts(rawValue: 1)
        public static let decoder = Parts(rawValue: 2)
        public static let both: Parts = [.encoder, .decoder]
    }

    public let configuration: AutoencoderConfiguration
    public let encoder: VAEEncoder?
    public let decoder: VAEDecoder?
    /// Every parameter, by diffusers name and role.
    public let registry: ParameterRegistry

    public init(_ source: any ParameterSource, configuration c: AutoencoderConfiguration, parts: Parts = .both) throws {
        try c.validate()
        configuration = c
        registry = source.registry
        let root = ParameterScope(source)
        encoder = parts.contains(.encoder) ? try VAEEncoder(root, configuration: c) : nil
        decoder = parts.contains(.decoder) ? try VAEDecoder(root, configuration: c) : nil
    }

    public func latentMean(_ pixels: Tensor) throws -> Tensor {
        guard let encoder else { throw ModelError.invalidConfiguration("this AutoencoderKL was built without its encoder") }
        return try encoder.latentMean(pixels)
    }

    public func decode(_ latent: Tensor) throws -> Tensor {
        guard let decoder else { throw ModelError.invalidConfiguration("this AutoencoderKL was built without its decoder") }
        return try decoder(latent)
    }
}
