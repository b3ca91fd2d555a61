import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// A model built from an SD checkpoint, with where its configuration came from.
public struct LoadedStableDiffusionModel<Model> {
    public let model: Model
    public let version: StableDiffusionVersion
    public let storage: StableDiffusionStorage
    /// The config.json used, or "built-in SD 1.x …" when the sizes were the standard ones.
    public let configurationSource: String
    public var notes: [String] {
        ["\(describe(storage)), \(version.rawValue), configuration from \(configurationSource)"]
    }
}

func describe(_ storage: StableDiffusionStorage) -> String {
    switch storage {
    case .diffusersPipeline: return "diffusers pipeline folder"
    case .diffusersComponent(_, let component): return "diffusers \(component.rawValue) folder"
    case .ldmSingleFile: return "single-file LDM checkpoint"
    case .standaloneFile(_, let component): return "standalone \(component.rawValue) file"
    }
}

/// The released SD 1.x / 2.x configurations, used for single files when no `--config` is given.
public enum StableDiffusionStandardConfigurations {
    public static func unet(_ version: StableDiffusionVersion) -> UNetConfiguration { version == .sd1 ? .sd1 : .sd2 }

    public static func text(_ version: StableDiffusionVersion) -> CLIPTextConfiguration {
        switch version {
        case .sd1:
            return CLIPTextConfiguration(width: 768, layers: 12, heads: 12, mlpWidth: 3072, activation: .quickGELU, pooling: .argmax)
        case .sd2:
            // OpenCLIP ViT-H text, penultimate layer: 23 of its 24 blocks (models.md §3.8).
            return CLIPTextConfiguration(width: 1024, layers: 23, heads: 16, mlpWidth: 4096, activation: .gelu, pooling: .argmax)
        }
    }

    /// Canonical weight → shape that identifies the standard size of each component.
    static func signature(_ component: StableDiffusionComponent, _ version: StableDiffusionVersion) -> (String, [Int]) {
        switch component {
        case .unet: return ("conv_in.weight", [320, 4, 3, 3])
        case .vae: return ("encoder.conv_in.weight", [128, 3, 3, 3])
        case .textEncoder: return ("text_model.embeddings.token_embedding.weight", [49408, version == .sd1 ? 768 : 1024])
        }
    }
}

/// Loads SD components (UNet, VAE, text encoder) from diffusers folders, single-file LDM checkpoints
/// (with optional EMA extraction) and standalone component files. Every loaded tensor must find its
/// place in the model, and every weight the configuration implies must be present.
public enum StableDiffusionLoader {
    public static func loadUNet(_ path: String, configuration: String? = nil, extractEMA: Bool = false,
                                variant: String? = nil) throws -> LoadedStableDiffusionModel<UNet2DConditionModel> {
        let source = try StableDiffusionSource(path: path, variant: variant)
        if extractEMA {
            guard case .ldmSingleFile = source.storage else {
                throw CheckpointError(file: source.file, "EMA extraction applies to single-file LDM checkpoints with model_ema.* weights")
            }
        }
        let tensors = try source.canonicalTensors(.unet, extractEMA: extractEMA)
        let (config, origin) = try resolve(.unet, source: source, tensors: tensors, configuration: configuration,
                                           read: UNetConfiguration.read, standard: StableDiffusionStandardConfigurations.unet)
        let model = try build(source: source, tensors: tensors, origin: origin) { try UNet2DConditionModel($0, configuration: config) }
        return LoadedStableDiffusionModel(model: model, version: source.version, storage: source.storage, configurationSource: origin)
    }

    /// `parts` limits which half is built; the other half's weights are then not required to be used.
    public static func loadVAE(_ path: String, configuration: String? = nil, parts: AutoencoderKL.Parts = .both,
                               variant: String? = nil) throws -> LoadedStableDiffusionModel<AutoencoderKL> {
        let source = try StableDiffusionSource(path: path, variant: variant)
        var tensors = try source.canonicalTensors(.vae)
        if !parts.contains(.decoder) { tensors = tensors.filter { !$0.key.hasPrefix("decoder.") && !$0.key.hasPrefix("post_quant_conv.") } }
        if !parts.contains(.encoder) { tensors = tensors.filter { !$0.key.hasPrefix("encoder.") && !$0.key.hasPrefix("quant_conv.") } }
        let (config, origin) = try resolve(.vae, source: source, tensors: tensors, configuration: configuration,
                                           read: AutoencoderConfiguration.read, standard: { _ in .stableDiffusion })
        let model = try build(source: source, tensors: tensors, origin: origin) { try AutoencoderKL($0, configuration: config, parts: parts) }
        return LoadedStableDiffusionModel(model: model, version: source.version, storage: source.storage, configurationSource: origin)
    }

    /// The text encoder as SD conditions on it: SD1 all layers, SD2 the penultimate (the LDM file's
    /// last block is dropped by the layout rules; diffusers folders already store one layer fewer).
    public static func loadTextEncoder(_ path: String, configuration: String? = nil,
                                       variant: String? = nil) throws -> LoadedStableDiffusionModel<CLIPTextTransformer> {
        let source = try StableDiffusionSource(path: path, variant: variant)
        let tensors = try source.canonicalTensors(.textEncoder)
        let readText: (String) throws -> CLIPTextConfiguration = { try CLIPConfigurationFile.readText($0) }
        let (config, origin) = try resolve(.textEncoder, source: source, tensors: tensors, configuration: configuration,
                                           read: readText, standard: StableDiffusionStandardConfigurations.text)
        let model = try build(source: source, tensors: tensors, origin: origin) {
            try CLIPTextTransformer(ParameterScope($0)["text_model"], configuration: config)
        }
        return LoadedStableDiffusionModel(model: model, version: source.version, storage: source.storage, configurationSource: origin)
    }

    /// The configuration from a config.json (the checkpoint's own or `configuration`), else the
    /// released model's when the tensors have its size; otherwise an error asking for `--config`.
    static func resolve<Config>(_ component: StableDiffusionComponent, source: StableDiffusionSource, tensors: [String: Tensor],
                                configuration: String?, read: (String) throws -> Config,
                                standard: (StableDiffusionVersion) -> Config) throws -> (Config, String) {
        if let file = source.configurationFile(for: component, configuration: configuration) {
            do { return (try read(file), file) } catch let error as ModelError {
                throw CheckpointError(file: file, "\(error)")
            }
        }
        if let configuration {
            throw CheckpointError(file: configuration, "no \(component.rawValue)/config.json or config.json here for the \(component.rawValue)")
        }
        let version = source.version
        let (name, shape) = StableDiffusionStandardConfigurations.signature(component, version)
        guard let found = tensors[name]?.shape, found == shape else {
            let found = tensors[name].map { "\($0.shape)" } ?? "absent"
            throw CheckpointError(file: source.file, "the \(component.rawValue) is not a standard \(version.rawValue) size ('\(name)' is \(found), expected \(shape)); pass --config DIR, a diffusers-layout folder with \(component.rawValue)/config.json")
        }
        return (standard(version), "built-in \(version.rawValue) \(component.rawValue) configuration")
    }

    static func build<Model>(source: StableDiffusionSource, tensors: [String: Tensor], origin: String,
                             _ make: (TensorDictionarySource) throws -> Model) throws -> Model {
        let parameters = TensorDictionarySource(tensors)
        do {
            let model = try make(parameters)
            try parameters.requireAllUsed()
            return model
        } catch let error as ModelError {
            throw CheckpointError(file: source.file, "\(error) (configuration from \(origin))")
        }
    }
}
