import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// Writes a single-file SD checkpoint as a complete diffusers pipeline folder that a plain
/// `StableDiffusionPipeline.from_pretrained(OUT)` loads: `unet/`, `vae/`, `text_encoder/` (config.json +
/// safetensors), `tokenizer/`, `scheduler/`, `feature_extractor/` and `model_index.json`
/// (`DiffusersPipelineFiles`). Every component is first built as a model from its configuration (so a
/// folder is written only when it would load), then the whole folder is written under a temporary name
/// beside OUT_DIR and renamed into place.
public enum DiffusersFolderWriter {
    public struct Summary {
        public let version: StableDiffusionVersion
        /// Component → (tensor count, parameter count), in writing order.
        public let components: [(component: StableDiffusionComponent, tensors: Int, parameters: Int)]
        /// Source tensors deliberately left out (schedule buffers, EMA copies, unused text layers …).
        public let droppedCount: Int
        public let configurationSource: String
        /// Tensor count per dtype written.
        public let dtypes: [DType: Int]
        public let scheduler: String
    }

    static let weightFileNames: [StableDiffusionComponent: String] = [
        .unet: "diffusion_pytorch_model.safetensors", .vae: "diffusion_pytorch_model.safetensors", .textEncoder: "model.safetensors",
    ]

    /// `configuration`: a diffusers-layout folder whose `<component>/config.json` files describe the
    /// models (required when the sizes are not the released SD 1.x/2.x ones); its configs are copied
    /// (the text encoder's with `torch_dtype: float32`), and its scheduler config when it has one.
    /// `dtype`: the floating dtype of every weight; nil keeps each tensor's stored one (f64 becomes f32).
    /// `prediction`: the scheduler's prediction type (default: the configuration's, else epsilon).
    public static func convert(_ input: String, to output: String, configuration: String? = nil, extractEMA: Bool = false,
                               dtype: DType? = nil, prediction: PredictionType? = nil, writing: WriteOptions = WriteOptions()) throws -> Summary {
        if let dtype, ![.f32, .f16, .bf16].contains(dtype) {
            throw CheckpointError(file: output, "weights can be written as f32, f16 or bf16, not \(dtype.rawValue)")
        }
        // Checked again by the final rename, which never replaces a folder holding anything.
        try checkOutput(output)
        let source = try StableDiffusionSource(path: input)
        guard case .ldmSingleFile = source.storage else {
            throw CheckpointError(file: input, "--layout diffusers converts single-file LDM checkpoints; this is a \(describe(source.storage))")
        }
        let version = source.version
        var files: [ExportedFile] = []
        var summary: [(StableDiffusionComponent, Int, Int)] = []
        var written: [DType: Int] = [:]
        var dropped = 0
        var origins: [String] = []
        var text: CLIPTextConfiguration?
        for component in StableDiffusionComponent.allCases {
            guard !source.records(of: component).isEmpty else {
                throw CheckpointError(file: source.file, "the checkpoint holds no \(component.rawValue); a diffusers pipeline needs unet, vae and text_encoder")
            }
            let (plan, renamed) = try source.plan(for: component, extractEMA: extractEMA && component == .unet)
            dropped += plan.dropped.count
            let tensors = try CanonicalTensors.make(renamed, plan: plan, file: source.file)
            let stored = Dictionary(plan.mapped.map { ($0.target, renamed[$0.source]?.dtype ?? .f32) }, uniquingKeysWith: { first, _ in first })
            let dtypes = tensors.keys.reduce(into: [String: DType]()) { result, name in
                result[name] = dtype ?? outputDType(keeping: stored[name] ?? .f32)
            }
            let resolved = try configurationJSON(component, source: source, tensors: tensors, configuration: configuration)
            origins.append(resolved.origin)
            var configBytes = resolved.bytes
            if let textConfiguration = resolved.text {
                text = textConfiguration
                configBytes = try loadingInFloat32(configBytes, file: output)
            }
            files.append(ExportedFile("\(component.rawValue)/config.json", .bytes(configBytes)))
            let ordered = try tensors.keys.sorted().compactMap { name -> SafetensorsWriter.Tensor? in
                guard let tensor = tensors[name], let target = dtypes[name] else { return nil }
                written[target, default: 0] += 1
                return try SafetensorsWriter.Tensor(name: name, shape: tensor.shape, stacking: [tensor], as: target)
            }
            files.append(ExportedFile("\(component.rawValue)/\(weightFileNames[component] ?? "model.safetensors")",
                                      .tensors(ordered, metadata: ["format": "pt"])))
            summary.append((component, tensors.count, tensors.values.reduce(0) { $0 + $1.count }))
        }
        dropped += source.store.names.count - StableDiffusionComponent.allCases.reduce(0) { $0 + source.records(of: $1).count }
        guard let textConfiguration = text else { throw CheckpointError(file: source.file, "the text encoder's configuration was not resolved") }
        let scheduler = try DiffusersSchedulerConfig(store: source.store, configuration: configuration, prediction: prediction, file: source.file)
        files.append(ExportedFile("scheduler/scheduler_config.json", .bytes(scheduler.bytes)))
        files += try DiffusersPipelineFiles.tokenizer(textConfiguration, version: version, file: source.file)
        files.append(try DiffusersPipelineFiles.featureExtractor())
        files.append(try DiffusersPipelineFiles.modelIndex(scheduler: scheduler.className))
        var writing = writing
        writing.protected = ProtectedFiles(paths: [input])
        try writeFolder(files, to: output, options: writing)
        return Summary(version: version, components: summary.map { ($0.0, $0.1, $0.2) }, droppedCount: dropped,
                       configurationSource: Set(origins).sorted().joined(separator: "; "), dtypes: written, scheduler: scheduler.className)
    }

    /// `keep`: f16 and bf16 stay, anything else (f32, f64) is written as f32.
    static func outputDType(keeping stored: DType) -> DType {
        [.f16, .bf16].contains(stored) ? stored : .f32
    }

    /// OUT_DIR may be missing or an empty folder; anything else is refused before any work.
    static func checkOutput(_ output: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory) else { return }
        let contents = isDirectory.boolValue ? (try? FileManager.default.contentsOfDirectory(atPath: output)) : nil
        guard contents?.isEmpty == true else {
            throw CheckpointError(file: output, "the output exists and is not an empty folder; choose a new folder")
        }
    }

    /// The text encoder's config.json with `torch_dtype: float32` whatever its weights are stored in, numbers
    /// as written. diffusers loads the UNet and VAE in float32 unless `torch_dtype` is passed, and
    /// transformers 5 loads in the config's dtype, so this keeps a plain `from_pretrained` in one dtype;
    /// `torch_dtype=torch.float16` loads every model in f16.
    static func loadingInFloat32(_ bytes: [UInt8], file: String) throws -> [UInt8] {
        let object = try LiteralJSON.object(bytes, file: file)
        return LiteralJSON.bytes(.object(LiteralJSON.setting(object, "torch_dtype", .string("float32"), removing: ["dtype"])))
    }

    struct ResolvedConfiguration {
        let bytes: [UInt8]
        let origin: String
        /// The text encoder's configuration (tokenizer size and context length).
        let text: CLIPTextConfiguration?
    }

    /// The component's config.json, after checking that a model built from it takes exactly `tensors`.
    static func configurationJSON(_ component: StableDiffusionComponent, source: StableDiffusionSource, tensors: [String: Tensor],
                                  configuration: String?) throws -> ResolvedConfiguration {
        let explicit = source.configurationFile(for: component, configuration: configuration)
        switch component {
        case .unet:
            let (config, origin) = try StableDiffusionLoader.resolve(.unet, source: source, tensors: tensors, configuration: configuration,
                                                                     read: UNetConfiguration.read, standard: StableDiffusionStandardConfigurations.unet)
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) { try UNet2DConditionModel($0, configuration: config) }
            return ResolvedConfiguration(bytes: try explicit.map(readBytes) ?? encode(config, className: "UNet2DConditionModel"), origin: origin, text: nil)
        case .vae:
            let (config, origin) = try StableDiffusionLoader.resolve(.vae, source: source, tensors: tensors, configuration: configuration,
                                                                     read: AutoencoderConfiguration.read, standard: { _ in .stableDiffusion })
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) { try AutoencoderKL($0, configuration: config) }
            return ResolvedConfiguration(bytes: try explicit.map(readBytes) ?? encode(config, className: "AutoencoderKL"), origin: origin, text: nil)
        case .textEncoder:
            let readText: (String) throws -> CLIPTextConfiguration = { try CLIPConfigurationFile.readText($0) }
            let (config, origin) = try StableDiffusionLoader.resolve(.textEncoder, source: source, tensors: tensors, configuration: configuration,
                                                                     read: readText, standard: StableDiffusionStandardConfigurations.text)
            _ = try StableDiffusionLoader.build(source: source, tensors: tensors, origin: origin) {
                try CLIPTextTransformer(ParameterScope($0)["text_model"], configuration: config)
            }
            return ResolvedConfiguration(bytes: try explicit.map(readBytes) ?? LiteralJSON.bytes(LiteralJSON.value(textConfig(config, version: source.version))),
                                         origin: origin, text: config)
        }
    }

    static func readBytes(_ path: String) throws -> [UInt8] {
        do { return try InputFile.readAll(path) } catch {
            throw CheckpointError(file: path, "cannot read: \((error as? WeightsError)?.message ?? "\(error)")")
        }
    }

    static func encode<T: Encodable>(_ value: T, className: String) throws -> [UInt8] {
        let data = try JSONEncoder().encode(value)
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CheckpointError(file: "", "could not encode the \(className) configuration")
        }
        object["_class_name"] = className
        object["_diffusers_version"] = DiffusersPipelineFiles.diffusersVersion
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
            "hidden_act": c.activation.rawValue, "layer_norm_eps": CLIPConfigurationFile.decimal(c.layerNormEpsilon),
            "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
            "projection_dim": version == .sd1 ? 768 : 512, "attention_dropout": 0.0, "initializer_factor": 1.0,
            "initializer_range": 0.02, "torch_dtype": "float32",
        ]
    }

    /// Writes every file in a folder beside `output` and renames it into place (`AtomicFolder`; an
    /// existing `output` must be an empty folder, and rename(2) refuses it if it gained files meanwhile).
    static func writeFolder(_ exported: [ExportedFile], to output: String, options: WriteOptions = WriteOptions()) throws {
        do {
            try AtomicFolder.write(to: output, existing: .replaceIfEmpty, options: options) { staging in
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
