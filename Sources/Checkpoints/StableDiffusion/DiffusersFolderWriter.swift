import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// Writes a single-file SD checkpoint as a diffusers pipeline folder that `from_pretrained` loads:
/// `model_index.json`, `unet/`, `vae/`, `text_encoder/` (config.json + float32 safetensors) and
/// `scheduler/scheduler_config.json`. Every component is first built as a model from its
/// configuration (so a folder is written only when it would load), then the whole folder is written
/// under a temporary name beside OUT_DIR and renamed into place.
public enum DiffusersFolderWriter {
    public struct Summary {
        public let version: StableDiffusionVersion
        /// Component → (tensor count, parameter count), in writing order.
        public let components: [(component: StableDiffusionComponent, tensors: Int, parameters: Int)]
        /// Source tensors deliberately left out (schedule buffers, EMA copies, unused text layers …).
        public let droppedCount: Int
        public let configurationSource: String
    }

    static let weightFileNames: [StableDiffusionComponent: String] = [
        .unet: "diffusion_pytorch_model.safetensors", .vae: "diffusion_pytorch_model.safetensors", .textEncoder: "model.safetensors",
    ]

    /// `configuration`: a diffusers-layout folder whose `<component>/config.json` files describe the
    /// models (required when the sizes are not the released SD 1.x/2.x ones); its configs are copied verbatim.
    public static func convert(_ input: String, to output: String, configuration: String? = nil, extractEMA: Bool = false) throws -> Summary {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: output) {
            let contents = (try? fileManager.contentsOfDirectory(atPath: output)) ?? ["?"]
            guard contents.isEmpty else {
                throw CheckpointError(file: output, "the output folder exists and is not empty; choose a new folder")
            }
        }
        let source = try StableDiffusionSource(path: input)
        guard case .ldmSingleFile = source.storage else {
            throw CheckpointError(file: input, "--layout diffusers converts single-file LDM checkpoints; this is a \(describe(source.storage))")
        }
        let version = source.version
        var files: [(relativePath: String, bytes: [UInt8]?, tensors: [SafetensorsWriter.Tensor]?)] = []
        var summary: [(StableDiffusionComponent, Int, Int)] = []
        var dropped = 0
        var origins: [String] = []
        for component in StableDiffusionComponent.allCases {
            guard !source.records(of: component).isEmpty else {
                throw CheckpointError(file: source.file, "the checkpoint holds no \(component.rawValue); a diffusers pipeline needs unet, vae and text_encoder")
            }
            let (plan, renamed) = try source.plan(for: component, extractEMA: extractEMA && component == .unet)
            dropped += plan.dropped.count
            let tensors = try CanonicalTensors.make(renamed, plan: plan, file: source.file)
            let (configBytes, origin) = try configurationJSON(component, source: source, tensors: tensors, configuration: configuration)
            origins.append(origin)
            files.append(("\(component.rawValue)/config.json", configBytes, nil))
            let ordered = tensors.keys.sorted().compactMap { name in
                tensors[name].map { SafetensorsWriter.Tensor(name: name, shape: $0.shape, floats: $0.scalars) }
            }
            files.append(("\(component.rawValue)/\(weightFileNames[component] ?? "model.safetensors")", nil, ordered))
            summary.append((component, tensors.count, tensors.values.reduce(0) { $0 + $1.count }))
        }
        dropped += source.store.names.count - StableDiffusionComponent.allCases.reduce(0) { $0 + source.records(of: $1).count }
        files.append(("scheduler/scheduler_config.json", try schedulerJSON(configuration: configuration), nil))
        files.append(("model_index.json", try json(modelIndex), nil))
        try writeFolder(files, to: output)
        return Summary(version: version, components: summary.map { ($0.0, $0.1, $0.2) }, droppedCount: dropped,
                       configurationSource: Set(origins).sorted().joined(separator: "; "))
    }

    /// The component's config.json bytes, after checking that a model built from it takes exactly `tensors`.
    static func configurationJSON(_ component: StableDiffusionComponent, source: StableDiffusionSource, tensors: [String: Tensor],
                                  configuration: String?) throws -> ([UInt8], String) {
        let explicit = source.configurationFile(for: component, configuration: configuration)
        switch component {
        case .unet:
            let (config, origin) = try StableDiffusionLoader.resolve(.unet, source: source, tensors: tensors, configuration: configuration,
                                                                     read: UNetConfiguration.read, standard: StableDiffusionStandardConfigurations.unet)
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) { try UNet2DConditionModel($0, configuration: config) }
            return (try explicit.map(readBytes) ?? encode(config, className: "UNet2DConditionModel"), origin)
        case .vae:
            let (config, origin) = try StableDiffusionLoader.resolve(.vae, source: source, tensors: tensors, configuration: configuration,
                                                                     read: AutoencoderConfiguration.read, standard: { _ in .stableDiffusion })
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) { try AutoencoderKL($0, configuration: config) }
            return (try explicit.map(readBytes) ?? encode(config, className: "AutoencoderKL"), origin)
        case .textEncoder:
            let readText: (String) throws -> CLIPTextConfiguration = { try CLIPConfigurationFile.readText($0) }
            let (config, origin) = try StableDiffusionLoader.resolve(.textEncoder, source: source, tensors: tensors, configuration: configuration,
                                                                     read: readText, standard: StableDiffusionStandardConfigurations.text)
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) {
                try CLIPTextTransformer(ParameterScope($0)["text_model"], configuration: config)
            }
            return (try explicit.map(readBytes) ?? json(textConfig(config, version: source.version)), origin)
        }
    }

    static func readBytes(_ path: String) throws -> [UInt8] {
        do { return Array(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw CheckpointError(file: path, "cannot read: \(error.localizedDescription)")
        }
    }

    static func encode<T: Encodable>(_ value: T, className: String) throws -> [UInt8] {
        let data = try JSONEncoder().encode(value)
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError(file: "", "could not encode the \(className) configuration")
        }
        object["_class_name"] = className
        object["_diffusers_version"] = "0.42.1"
        return try json(object)
    }

    static func json(_ object: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) + [10]
    }

    /// transformers `CLIPTextConfig` for SD's text encoder (released SD1/SD2 use eos 2, pad 1, bos 0).
    static func textConfig(_ c: CLIPTextConfiguration, version: StableDiffusionVersion) -> [String: Any] {
        [
            "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
            "hidden_size": c.width, "intermediate_size": c.mlpWidth, "num_attention_heads": c.heads,
            "num_hidden_layers": c.layers, "max_position_embeddings": c.contextLength, "vocab_size": c.vocabularySize,
            "hidden_act": c.activation.rawValue, "layer_norm_eps": Double(c.layerNormEpsilon),
            "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
            "projection_dim": version == .sd1 ? 768 : 512, "attention_dropout": 0.0, "initializer_factor": 1.0,
            "initializer_range": 0.02, "torch_dtype": "float32",
        ]
    }

    static var modelIndex: [String: Any] { [
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": [NSNull(), NSNull()], "image_encoder": [NSNull(), NSNull()], "safety_checker": [NSNull(), NSNull()],
        "tokenizer": [NSNull(), NSNull()], "requires_safety_checker": false,
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    ] }

    /// SD's scheduler (diffusers `SCHEDULER_DEFAULT_CONFIG`: scaled_linear 0.00085→0.012, leading, offset 1),
    /// or the configuration folder's own scheduler config.
    static func schedulerJSON(configuration: String?) throws -> [UInt8] {
        if let configuration {
            let path = URL(fileURLWithPath: configuration).appendingPathComponent("scheduler/scheduler_config.json").path
            if FileManager.default.fileExists(atPath: path) {
                // model_index.json names PNDMScheduler; keep that class whatever the source folder used.
                var object = try CLIPConfigurationFile.jsonObject(path)
                object["_class_name"] = "PNDMScheduler"
                return try json(object)
            }
        }
        return try json([
            "_class_name": "PNDMScheduler", "_diffusers_version": "0.42.1", "beta_start": 0.00085, "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,
            "steps_offset": 1, "prediction_type": "epsilon", "timestep_spacing": "leading", "clip_sample": false,
            "trained_betas": NSNull(),
        ])
    }

    /// Writes every file in a folder beside `output` and renames it into place (`AtomicFolder`; an
    /// existing `output` was checked to be empty).
    static func writeFolder(_ files: [(relativePath: String, bytes: [UInt8]?, tensors: [SafetensorsWriter.Tensor]?)], to output: String) throws {
        let exported = files.map { file in
            ExportedFile(file.relativePath, file.tensors.map { .tensors($0, metadata: ["format": "pt"]) } ?? .bytes(file.bytes ?? []))
        }
        do {
            try AtomicFolder.write(to: output, existing: .replace) { staging in
                for file in exported { try file.write(into: staging) }
            }
        } catch let error as CheckpointError {
            throw error
        } catch let error as WeightsError {
            throw error
        } catch {
            throw CheckpointError(file: output, "could not write the diffusers folder: \(error.localizedDescription)")
        }
    }
}
