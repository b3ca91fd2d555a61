import Foundation
import WeightsIO

/// `UNet2DConditionModel`'s config.json: the fields SD 1.x/2.x use, with diffusers' defaults
/// (`unet_2d_condition.py __init__`). Features beyond SD 1/2 (class/addition embeddings, other block
/// types, time-scale-shift resnets) are rejected by `validate()` rather than silently ignored.
public struct UNetConfiguration: Codable, Equatable, Sendable {
    public var sampleSize: Int?
    public var inChannels: Int
    public var outChannels: Int
    public var centerInputSample: Bool
    public var flipSinToCos: Bool
    public var freqShift: Int
    public var downBlockTypes: [String]
    public var midBlockType: String?
    public var upBlockTypes: [String]
    public var onlyCrossAttention: Bool
    public var blockOutChannels: [Int]
    public var layersPerBlock: PerBlockValue
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var actFn: String
    public var normNumGroups: Int
    public var normEps: Float
    public var crossAttentionDim: PerBlockValue
    public var transformerLayersPerBlock: PerBlockValue
    public var reverseTransformerLayersPerBlock: [Int]?
    /// diffusers' historic misnomer: for SD1/SD2 configs this is the head *count* per block.
    public var attentionHeadDim: PerBlockValue
    public var numAttentionHeads: PerBlockValue?
    public var useLinearProjection: Bool
    public var upcastAttention: Bool
    public var resnetTimeScaleShift: String
    public var resnetOutScaleFactor: Float
    public var timeEmbeddingType: String
    public var convInKernel: Int
    public var convOutKernel: Int
    public var classEmbedType: String?
    public var additionEmbedType: String?
    public var timeCondProjDim: Int?
    public var encoderHidDim: Int?
    public var dualCrossAttention: Bool
    public var attentionType: String

    enum CodingKeys: String, CodingKey {
        case sampleSize = "sample_size", inChannels = "in_channels", outChannels = "out_channels"
        case centerInputSample = "center_input_sample", flipSinToCos = "flip_sin_to_cos", freqShift = "freq_shift"
        case downBlockTypes = "down_block_types", midBlockType = "mid_block_type", upBlockTypes = "up_block_types"
        case onlyCrossAttention = "only_cross_attention", blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block", downsamplePadding = "downsample_padding"
        case midBlockScaleFactor = "mid_block_scale_factor", actFn = "act_fn", normNumGroups = "norm_num_groups"
        case normEps = "norm_eps", crossAttentionDim = "cross_attention_dim"
        case transformerLayersPerBlock = "transformer_layers_per_block"
        case reverseTransformerLayersPerBlock = "reverse_transformer_layers_per_block"
        case attentionHeadDim = "attention_head_dim", numAttentionHeads = "num_attention_heads"
        case useLinearProjection = "use_linear_projection", upcastAttention = "upcast_attention"
        case resnetTimeScaleShift = "resnet_time_scale_shift", resnetOutScaleFactor = "resnet_out_scale_factor"
        case timeEmbeddingType = "time_embedding_type", convInKernel = "conv_in_kernel", convOutKernel = "conv_out_kernel"
        case classEmbedType = "class_embed_type", additionEmbedType = "addition_embed_type"
        case timeCondProjDim = "time_cond_proj_dim", encoderHidDim = "encoder_hid_dim"
        case dualCrossAttention = "dual_cross_attention", attentionType = "attention_type"
    }

    /// The SD 1.x UNet (diffusers' defaults, except the 768-wide text context; diffusers defaults to 1280).
    public static let sd1 = UNetConfiguration()

    /// The SD 2.x UNet: 64-wide heads (5/10/20/20), linear projections, 1024-wide context.
    public static var sd2: UNetConfiguration {
        var c = UNetConfiguration()
        c.attentionHeadDim = .perBlock([5, 10, 20, 20])
        c.crossAttentionDim = .shared(1024)
        c.useLinearProjection = true
        c.sampleSize = 96
        return c
    }

    public init() {
        sampleSize = 64
        inChannels = 4
        outChannels = 4
        centerInputSample = false
        flipSinToCos = true
        freqShift = 0
        downBlockTypes = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
        midBlockType = "UNetMidBlock2DCrossAttn"
        upBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        onlyCrossAttention = false
        blockOutChannels = [320, 640, 1280, 1280]
        layersPerBlock = .shared(2)
        downsamplePadding = 1
        midBlockScaleFactor = 1
        actFn = "silu"
        normNumGroups = 32
        normEps = 1e-5
        crossAttentionDim = .shared(768)
        transformerLayersPerBlock = .shared(1)
        reverseTransformerLayersPerBlock = nil
        attentionHeadDim = .shared(8)
        numAttentionHeads = nil
        useLinearProjection = false
        upcastAttention = false
        resnetTimeScaleShift = "default"
        resnetOutScaleFactor = 1
        timeEmbeddingType = "positional"
        convInKernel = 3
        convOutKernel = 3
        classEmbedType = nil
        additionEmbedType = nil
        timeCondProjDim = nil
        encoderHidDim = nil
        dualCrossAttention = false
        attentionType = "default"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = UNetConfiguration()
        sampleSize = try c.decodeIfPresent(Int.self, forKey: .sampleSize)
        inChannels = try c.value(.inChannels, default: d.inChannels)
        outChannels = try c.value(.outChannels, default: d.outChannels)
        centerInputSample = try c.value(.centerInputSample, default: d.centerInputSample)
        flipSinToCos = try c.value(.flipSinToCos, default: d.flipSinToCos)
        freqShift = try c.value(.freqShift, default: d.freqShift)
        downBlockTypes = try c.value(.downBlockTypes, default: d.downBlockTypes)
        midBlockType = c.contains(.midBlockType) ? try c.decodeIfPresent(String.self, forKey: .midBlockType) : d.midBlockType
        upBlockTypes = try c.value(.upBlockTypes, default: d.upBlockTypes)
        onlyCrossAttention = (try? c.value(.onlyCrossAttention, default: false)) ?? true
        blockOutChannels = try c.value(.blockOutChannels, default: d.blockOutChannels)
        layersPerBlock = try c.value(.layersPerBlock, default: d.layersPerBlock)
        downsamplePadding = try c.value(.downsamplePadding, default: d.downsamplePadding)
        midBlockScaleFactor = try c.value(.midBlockScaleFactor, default: d.midBlockScaleFactor)
        actFn = try c.value(.actFn, default: d.actFn)
        normNumGroups = try c.value(.normNumGroups, default: d.normNumGroups)
        normEps = try c.value(.normEps, default: d.normEps)
        // diffusers' own default is 1280 (not SD1's 768): a config.json without the key means 1280.
        crossAttentionDim = try c.value(.crossAttentionDim, default: .shared(1280))
        transformerLayersPerBlock = try c.value(.transformerLayersPerBlock, default: d.transformerLayersPerBlock)
        reverseTransformerLayersPerBlock = try c.decodeIfPresent([Int].self, forKey: .reverseTransformerLayersPerBlock)
        attentionHeadDim = try c.value(.attentionHeadDim, default: d.attentionHeadDim)
        numAttentionHeads = try c.decodeIfPresent(PerBlockValue.self, forKey: .numAttentionHeads)
        useLinearProjection = try c.value(.useLinearProjection, default: d.useLinearProjection)
        upcastAttention = try c.value(.upcastAttention, default: d.upcastAttention)
        resnetTimeScaleShift = try c.value(.resnetTimeScaleShift, default: d.resnetTimeScaleShift)
        resnetOutScaleFactor = try c.value(.resnetOutScaleFactor, default: d.resnetOutScaleFactor)
        timeEmbeddingType = try c.value(.timeEmbeddingType, default: d.timeEmbeddingType)
        convInKernel = try c.value(.convInKernel, default: d.convInKernel)
        convOutKernel = try c.value(.convOutKernel, default: d.convOutKernel)
        classEmbedType = try c.decodeIfPresent(String.self, forKey: .classEmbedType)
        additionEmbedType = try c.decodeIfPresent(String.self, forKey: .additionEmbedType)
        timeCondProjDim = try c.decodeIfPresent(Int.self, forKey: .timeCondProjDim)
        encoderHidDim = try c.decodeIfPresent(Int.self, forKey: .encoderHidDim)
        dualCrossAttention = try c.value(.dualCrossAttention, default: d.dualCrossAttention)
        attentionType = try c.value(.attentionType, default: d.attentionType)
    }

    public static func read(_ path: String) throws -> UNetConfiguration {
        let data: Data
        // Regular files only: a FIFO in a model folder must not hang the tool.
        do { data = Data(try InputFile.readAll(path)) } catch {
            throw ModelError.invalidConfiguration("\(path): cannot read (\(error))")
        }
        let configuration = try DiffusersConfigReader.decode(UNetConfiguration.self, from: data, file: path)
        try configuration.validate()
        return configuration
    }

    // MARK: Derived per-block values

    public var blockCount: Int { blockOutChannels.count }
    public var timeEmbeddingWidth: Int { (blockOutChannels.first ?? 0) * 4 }

    /// Resnets per down block (up blocks have one more).
    public func layers() throws -> [Int] { try layersPerBlock.expanded(blockCount, key: "layers_per_block") }

    /// Attention heads per down block (num_attention_heads, else attention_head_dim, as diffusers reads it).
    public func heads() throws -> [Int] {
        try (numAttentionHeads ?? attentionHeadDim).expanded(blockCount, key: "attention_head_dim")
    }

    public func crossAttentionDims() throws -> [Int] { try crossAttentionDim.expanded(blockCount, key: "cross_attention_dim") }
    public func transformerDepths() throws -> [Int] { try transformerLayersPerBlock.expanded(blockCount, key: "transformer_layers_per_block") }

    /// Transformer depth per up block: `reverse_transformer_layers_per_block` when given, else the reversed list.
    public func upTransformerDepths() throws -> [Int] {
        if let explicit = reverseTransformerLayersPerBlock {
            guard explicit.count == blockCount else {
                throw ModelError.invalidConfiguration("reverse_transformer_layers_per_block lists \(explicit.count) values for \(blockCount) blocks")
            }
            return explicit
        }
        return try transformerDepths().reversed()
    }

    public static let downBlockKinds: Set<String> = ["CrossAttnDownBlock2D", "DownBlock2D"]
    public static let upBlockKinds: Set<String> = ["CrossAttnUpBlock2D", "UpBlock2D"]

    public func validate() throws {
        func fail(_ message: String) -> ModelError { .invalidConfiguration("UNet: \(message)") }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels must be non-empty and positive") }
        guard downBlockTypes.count == blockCount, upBlockTypes.count == blockCount else {
            throw fail("\(downBlockTypes.count) down and \(upBlockTypes.count) up block types for \(blockCount) block_out_channels")
        }
        for type in downBlockTypes where !Self.downBlockKinds.contains(type) { throw fail("down block type '\(type)' is not supported (SD 1/2 use CrossAttnDownBlock2D, DownBlock2D)") }
        for type in upBlockTypes where !Self.upBlockKinds.contains(type) { throw fail("up block type '\(type)' is not supported (SD 1/2 use CrossAttnUpBlock2D, UpBlock2D)") }
        if let mid = midBlockType, mid != "UNetMidBlock2DCrossAttn" { throw fail("mid_block_type '\(mid)' is not supported") }
        guard inChannels > 0, outChannels > 0, normNumGroups > 0 else { throw fail("channel and group counts must be positive") }
        for channels in blockOutChannels where channels % normNumGroups != 0 {
            throw fail("block width \(channels) is not divisible by norm_num_groups \(normNumGroups)")
        }
        guard actFn == "silu" else { throw fail("act_fn '\(actFn)' is not supported (SD uses silu)") }
        guard resnetTimeScaleShift == "default" else { throw fail("resnet_time_scale_shift '\(resnetTimeScaleShift)' is not supported") }
        guard timeEmbeddingType == "positional" else { throw fail("time_embedding_type '\(timeEmbeddingType)' is not supported") }
        guard classEmbedType == nil, additionEmbedType == nil, timeCondProjDim == nil, encoderHidDim == nil else {
            throw fail("class/addition embeddings, time_cond_proj_dim and encoder_hid_dim are not supported (SD 1/2 have none)")
        }
        guard !dualCrossAttention, !onlyCrossAttention, attentionType == "default", !centerInputSample else {
            throw fail("dual/only cross-attention, gated attention and center_input_sample are not supported")
        }
        guard convInKernel % 2 == 1, convOutKernel % 2 == 1 else { throw fail("conv_in/conv_out kernels must be odd") }
        guard resnetOutScaleFactor == 1, midBlockScaleFactor == 1 else { throw fail("output scale factors other than 1 are not supported") }
        let heads = try heads(), layers = try layers()
        _ = try crossAttentionDims()
        _ = try transformerDepths()
        _ = try upTransformerDepths()
        guard layers.allSatisfy({ $0 > 0 }) else { throw fail("layers_per_block must be positive") }
        for (index, type) in downBlockTypes.enumerated() where type.hasPrefix("CrossAttn") {
            guard heads[index] > 0, blockOutChannels[index] % heads[index] == 0 else {
                throw fail("block \(index) width \(blockOutChannels[index]) is not divisible by its \(heads[index]) heads")
            }
        }
    }
}
