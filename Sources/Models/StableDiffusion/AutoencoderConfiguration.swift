import Foundation
import WeightsIO

/// `AutoencoderKL`'s config.json with diffusers' defaults (`autoencoder_kl.py __init__`); the SD
/// preset is `stable_diffusion`.
public struct AutoencoderConfiguration: Codable, Equatable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var actFn: String
    public var latentChannels: Int
    public var normNumGroups: Int
    public var sampleSize: Int?
    public var scalingFactor: Float
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", outChannels = "out_channels", downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types", blockOutChannels = "block_out_channels", layersPerBlock = "layers_per_block"
        case actFn = "act_fn", latentChannels = "latent_channels", normNumGroups = "norm_num_groups"
        case sampleSize = "sample_size", scalingFactor = "scaling_factor", useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv", midBlockAddAttention = "mid_block_add_attention"
    }

    /// diffusers' defaults: a one-block, 64-wide autoencoder.
    public init() {
        inChannels = 3
        outChannels = 3
        downBlockTypes = ["DownEncoderBlock2D"]
        upBlockTypes = ["UpDecoderBlock2D"]
        blockOutChannels = [64]
        layersPerBlock = 1
        actFn = "silu"
        latentChannels = 4
        normNumGroups = 32
        sampleSize = 32
        scalingFactor = 0.18215
        useQuantConv = true
        usePostQuantConv = true
        midBlockAddAttention = true
    }

    /// The SD 1.x/2.x VAE (`ch 128, ch_mult [1,2,4,4], num_res_blocks 2`).
    public static var stableDiffusion: AutoencoderConfiguration {
        var c = AutoencoderConfiguration()
        c.downBlockTypes = Array(repeating: "DownEncoderBlock2D", count: 4)
        c.upBlockTypes = Array(repeating: "UpDecoderBlock2D", count: 4)
        c.blockOutChannels = [128, 256, 512, 512]
        c.layersPerBlock = 2
        c.sampleSize = 512
        return c
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AutoencoderConfiguration()
        inChannels = try c.value(.inChannels, default: d.inChannels)
        outChannels = try c.value(.outChannels, default: d.outChannels)
        downBlockTypes = try c.value(.downBlockTypes, default: d.downBlockTypes)
        upBlockTypes = try c.value(.upBlockTypes, default: d.upBlockTypes)
        blockOutChannels = try c.value(.blockOutChannels, default: d.blockOutChannels)
        layersPerBlock = try c.value(.layersPerBlock, default: d.layersPerBlock)
        actFn = try c.value(.actFn, default: d.actFn)
        latentChannels = try c.value(.latentChannels, default: d.latentChannels)
        normNumGroups = try c.value(.normNumGroups, default: d.normNumGroups)
        sampleSize = try c.decodeIfPresent(Int.self, forKey: .sampleSize)
        scalingFactor = try c.value(.scalingFactor, default: d.scalingFactor)
        useQuantConv = try c.value(.useQuantConv, default: d.useQuantConv)
        usePostQuantConv = try c.value(.usePostQuantConv, default: d.usePostQuantConv)
        midBlockAddAttention = try c.value(.midBlockAddAttention, default: d.midBlockAddAttention)
    }

    public static func read(_ path: String) throws -> AutoencoderConfiguration {
        let data: Data
        // Regular files only: a FIFO in a model folder must not hang the tool.
        do { data = Data(try InputFile.readAll(path)) } catch {
            throw ModelError.invalidConfiguration("\(path): cannot read (\(error))")
        }
        let configuration = try DiffusersConfigReader.decode(AutoencoderConfiguration.self, from: data, file: path)
        try configuration.validate()
        return configuration
    }

    /// Image pixels per latent pixel along each side: 2^(blocks−1).
    public var spatialFactor: Int { 1 << max(blockOutChannels.count - 1, 0) }

    public func validate() throws {
        func fail(_ message: String) -> ModelError { .invalidConfiguration("AutoencoderKL: \(message)") }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 && $0 % max(normNumGroups, 1) == 0 }), normNumGroups > 0 else {
            throw fail("block_out_channels \(blockOutChannels) must be positive multiples of norm_num_groups \(normNumGroups)")
        }
        guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
            throw fail("\(downBlockTypes.count) down and \(upBlockTypes.count) up block types for \(blockOutChannels.count) blocks")
        }
        guard downBlockTypes.allSatisfy({ $0 == "DownEncoderBlock2D" }), upBlockTypes.allSatisfy({ $0 == "UpDecoderBlock2D" }) else {
            throw fail("only DownEncoderBlock2D/UpDecoderBlock2D blocks are supported")
        }
        guard actFn == "silu" else { throw fail("act_fn '\(actFn)' is not supported (SD uses silu)") }
        guard layersPerBlock > 0, inChannels > 0, outChannels > 0, latentChannels > 0 else {
            throw fail("layers_per_block and channel counts must be positive")
        }
    }
}
