import Tensors

/// diffusers `CrossAttnDownBlock2D` / `DownBlock2D`: resnets (each followed by a transformer when the
/// block attends), then an optional stride-2 downsampler. Every stage's output is kept as a skip.
struct UNetDownBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [SpatialTransformer]
    let downsampler: Conv2D?

    func callAsFunction(_ x: Tensor, activatedTime: Tensor, context: Tensor, skips: inout [Tensor]) throws -> Tensor {
        var h = x
        for (index, resnet) in resnets.enumerated() {
            h = try resnet(h, activatedTime: activatedTime)
            if !attentions.isEmpty { h = try attentions[index](h, context: context) }
            skips.append(h)
        }
        if let downsampler {
            h = try downsampler(h)
            skips.append(h)
        }
        return h
    }
}

/// diffusers `CrossAttnUpBlock2D` / `UpBlock2D`: each resnet takes `[h, skip]` (h first), then the
/// transformer; then an optional nearest ×2 + conv upsampler.
struct UNetUpBlock {
    let resnets: [ResnetBlock2D]
    let attentions: [SpatialTransformer]
    let upsampler: Conv2D?

    func callAsFunction(_ x: Tensor, activatedTime: Tensor, context: Tensor, skips: inout [Tensor]) throws -> Tensor {
        var h = x
        for (index, resnet) in resnets.enumerated() {
            guard let skip = skips.popLast() else { throw ModelError.invalidConfiguration("UNet skip stack ran empty") }
            h = try resnet(concat([h, skip], axis: 1), activatedTime: activatedTime)
            if !attentions.isEmpty { h = try attentions[index](h, context: context) }
        }
        if let upsampler { h = try upsampler(upsampleNearest2x(h)) }
        return h
    }
}

/// diffusers `UNet2DConditionModel` for SD 1.x/2.x-style configs (any block layout the config gives).
/// Module names follow diffusers, so a `ParameterScope` over canonical names binds every weight.
public final class UNet2DConditionModel {
    public let configuration: UNetConfiguration
    let timeLinear1, timeLinear2: Linear
    let convIn: Conv2D
    let downBlocks: [UNetDownBlock]
    let midResnets: [ResnetBlock2D]
    let midAttention: SpatialTransformer?
    let upBlocks: [UNetUpBlock]
    let normOut: GroupNorm
    let convOut: Conv2D
    /// The latent side must be a multiple of this (one halving per downsampler).
    public let sizeMultiple: Int
    /// Every parameter, by diffusers name and role.
    public let registry: ParameterRegistry

    public init(_ source: any ParameterSource, configuration c: UNetConfiguration) throws {
        try c.validate()
        configuration = c
        registry = source.registry
        let root = ParameterScope(source)
        let channels = c.blockOutChannels, timeWidth = c.timeEmbeddingWidth
        let (groups, eps) = (c.normNumGroups, c.normEps)
        let layers = try c.layers(), heads = try c.heads(), contexts = try c.crossAttentionDims()
        let depths = try c.transformerDepths(), upDepths = try c.upTransformerDepths()
        let last = channels.count - 1

        timeLinear1 = try Linear(root["time_embedding"]["linear_1"], input: channels[0], output: timeWidth)
        timeLinear2 = try Linear(root["time_embedding"]["linear_2"], input: timeWidth, output: timeWidth)
        convIn = try Conv2D(root["conv_in"], input: c.inChannels, output: channels[0], kernel: c.convInKernel)

        // The widths pushed on the skip stack, so the up blocks' concatenated inputs follow the data flow.
        var skipWidths = [channels[0]]
        var width = channels[0]
        var down: [UNetDownBlock] = []
        for (index, type) in c.downBlockTypes.enumerated() {
            let scope = root["down_blocks"][index], output = channels[index]
            var resnets: [ResnetBlock2D] = [], attentions: [SpatialTransformer] = []
            for layer in 0..<layers[index] {
                resnets.append(try ResnetBlock2D(scope["resnets"][layer], input: width, output: output, timeWidth: timeWidth, groups: groups, epsilon: eps))
                width = output
                if type == "CrossAttnDownBlock2D" {
                    attentions.append(try SpatialTransformer(scope["attentions"][layer], channels: output, heads: heads[index], depth: depths[index],
                                                             contextWidth: contexts[index], groups: groups, linearProjection: c.useLinearProjection))
                }
                skipWidths.append(output)
            }
            var downsampler: Conv2D?
            if index < last {
                downsampler = try Conv2D(scope["downsamplers"][0]["conv"], input: output, output: output, stride: 2, padding: c.downsamplePadding)
                skipWidths.append(output)
            }
            down.append(UNetDownBlock(resnets: resnets, attentions: attentions, downsampler: downsampler))
        }
        downBlocks = down
        sizeMultiple = 1 << last

        let midWidth = channels[last]
        if c.midBlockType != nil {
            let mid = root["mid_block"]
            midResnets = try (0..<2).map {
                try ResnetBlock2D(mid["resnets"][$0], input: midWidth, output: midWidth, timeWidth: timeWidth, groups: groups, epsilon: eps)
            }
            midAttention = try SpatialTransformer(mid["attentions"][0], channels: midWidth, heads: heads[last], depth: depths[last],
                                                  contextWidth: contexts[last], groups: groups, linearProjection: c.useLinearProjection)
        } else {
            midResnets = []
            midAttention = nil
        }

        var up: [UNetUpBlock] = []
        let reversedChannels = Array(channels.reversed()), reversedHeads = Array(heads.reversed())
        let reversedLayers = Array(layers.reversed()), reversedContexts = Array(contexts.reversed())
        for (index, type) in c.upBlockTypes.enumerated() {
            let scope = root["up_blocks"][index], output = reversedChannels[index]
            var resnets: [ResnetBlock2D] = [], attentions: [SpatialTransformer] = []
            for layer in 0..<(reversedLayers[index] + 1) {
                guard let skip = skipWidths.popLast() else {
                    throw ModelError.invalidConfiguration("UNet: the up blocks take more skips than the down blocks make")
                }
                resnets.append(try ResnetBlock2D(scope["resnets"][layer], input: width + skip, output: output, timeWidth: timeWidth, groups: groups, epsilon: eps))
                width = output
                if type == "CrossAttnUpBlock2D" {
                    attentions.append(try SpatialTransformer(scope["attentions"][layer], channels: output, heads: reversedHeads[index], depth: upDepths[index],
                                                             contextWidth: reversedContexts[index], groups: groups, linearProjection: c.useLinearProjection))
                }
            }
            let upsampler = index < last ? try Conv2D(scope["upsamplers"][0]["conv"], input: output, output: output) : nil
            up.append(UNetUpBlock(resnets: resnets, attentions: attentions, upsampler: upsampler))
        }
        guard skipWidths.isEmpty else {
            throw ModelError.invalidConfiguration("UNet: \(skipWidths.count) skip connection(s) left unused by the up blocks")
        }
        upBlocks = up
        normOut = try GroupNorm(root["conv_norm_out"], channels: channels[0], groups: groups, epsilon: eps)
        convOut = try Conv2D(root["conv_out"], input: channels[0], output: c.outChannels, kernel: c.convOutKernel)
    }

    /// The predicted noise (or v) for `sample` [B, C, h, w] at `timesteps` (B values, or one for all)
    /// conditioned on `context` [B, L, D].
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor) throws -> Tensor {
        let c = configuration
        guard sample.rank == 4, sample.shape[1] == c.inChannels else {
            throw ModelError.invalidInput("UNet sample must be [B, \(c.inChannels), h, w], got \(sample.shape)")
        }
        let batch = sample.shape[0]
        guard sample.shape[2] % sizeMultiple == 0, sample.shape[3] % sizeMultiple == 0, sample.shape[2] > 0, sample.shape[3] > 0 else {
            throw ModelError.invalidInput("UNet sample sides \(sample.shape[2])×\(sample.shape[3]) must be positive multiples of \(sizeMultiple)")
        }
        guard context.rank == 3, context.shape[0] == batch else {
            throw ModelError.invalidInput("encoder_hidden_states must be [\(batch), L, D], got \(context.shape)")
        }
        let contextWidth = try c.crossAttentionDims().first ?? 0
        guard context.shape[2] == contextWidth else {
            throw ModelError.invalidInput("encoder_hidden_states width \(context.shape[2]) differs from cross_attention_dim \(contextWidth)")
        }
        let steps: [Float]
        if timesteps.count == batch { steps = timesteps }
        else if timesteps.count == 1 { steps = Array(repeating: timesteps[0], count: batch) }
        else { throw ModelError.invalidInput("\(timesteps.count) timesteps for a batch of \(batch)") }

        let features = try TimestepEmbedding.features(steps, width: c.blockOutChannels[0], flipSinToCos: c.flipSinToCos, freqShift: c.freqShift)
        let time = try timeLinear2(silu(timeLinear1(features)))
        // Every resnet applies SiLU to the same embedding before its own projection: do it once.
        let activatedTime = silu(time)

        var h = try convIn(sample)
        var skips = [h]
        for block in downBlocks { h = try block(h, activatedTime: activatedTime, context: context, skips: &skips) }
        if let midAttention, midResnets.count == 2 {
            h = try midResnets[0](h, activatedTime: activatedTime)
            h = try midAttention(h, context: context)
            h = try midResnets[1](h, activatedTime: activatedTime)
        }
        for block in upBlocks { h = try block(h, activatedTime: activatedTime, context: context, skips: &skips) }
        return try convOut(silu(normOut(h)))
    }
}
