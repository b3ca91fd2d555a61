import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// One model of a Stable Diffusion checkpoint, named as its diffusers subfolder.
public enum StableDiffusionComponent: String, CaseIterable, Sendable {
    case unet
    case vae
    case textEncoder = "text_encoder"
}

/// The SD generation a single-file checkpoint belongs to (weights alone cannot say more, models.md §3.1).
public enum StableDiffusionVersion: String, Sendable {
    case sd1 = "SD 1.x"
    case sd2 = "SD 2.x"
}

/// How a Stable Diffusion checkpoint is stored on disk.
public enum StableDiffusionStorage: Equatable, Sendable {
    /// A diffusers pipeline folder (`model_index.json` + component subfolders).
    case diffusersPipeline(folder: String)
    /// One diffusers component folder (`config.json` + weights), e.g. `…/unet`.
    case diffusersComponent(folder: String, component: StableDiffusionComponent)
    /// A single-file LDM checkpoint (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`).
    case ldmSingleFile(path: String)
    /// A file holding one component alone (a standalone VAE in LDM or diffusers names, a bare UNet, …).
    case standaloneFile(path: String, component: StableDiffusionComponent)
}

/// An opened SD checkpoint: where it lives, its tensors, and canonical (diffusers) tensors per component.
public struct StableDiffusionSource {
    public let path: String
    public let storage: StableDiffusionStorage
    public let store: WeightStore
    /// The first file read, for messages.
    public let file: String

    public init(path: String, variant: String? = nil) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointError(file: path, PathDiagnosis.whyMissing(path))
        }
        let options = ReadOptions(variant: variant)
        if isDirectory.boolValue {
            let folder = URL(fileURLWithPath: path)
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("model_index.json").path) {
                storage = .diffusersPipeline(folder: path)
            } else {
                let config = folder.appendingPathComponent("config.json").path
                guard FileManager.default.fileExists(atPath: config) else {
                    throw CheckpointError(file: path, "a folder needs model_index.json (a diffusers pipeline) or config.json (one component)")
                }
                storage = .diffusersComponent(folder: path, component: try Self.componentOfConfig(config))
            }
            store = try WeightsReader.open(path, options: options)
        } else {
            store = try WeightsReader.open(path, options: options)
            let names = store.names
            if names.contains(where: { Self.ldmPrefixes.contains(where: $0.hasPrefix) }) {
                storage = .ldmSingleFile(path: path)
            } else if let component = Self.standaloneComponent(names) {
                storage = .standaloneFile(path: path, component: component)
            } else {
                throw CheckpointError(file: path, "not a Stable Diffusion checkpoint: no model.diffusion_model./first_stage_model./cond_stage_model. (LDM) tensors, and not a UNet, VAE or text encoder on its own")
            }
        }
        file = store.sources.first ?? path
    }

    static let ldmPrefixes = [StableDiffusionLayout.unetPrefix, StableDiffusionLayout.vaePrefix, "cond_stage_model."]

    static func standaloneComponent(_ names: [String]) -> StableDiffusionComponent? {
        if names.contains(where: { $0.hasPrefix("encoder.down") || $0.hasPrefix("decoder.up") || $0.hasPrefix("vae.encoder.") }) { return .vae }
        if names.contains(where: { $0.hasPrefix("down_blocks.") || $0.hasPrefix("time_embedding.") || $0.hasPrefix("input_blocks.") }) { return .unet }
        if names.contains(where: { $0.hasPrefix("text_model.") || $0.hasPrefix("embeddings.token_embedding.") }) { return .textEncoder }
        return nil
    }

    /// The component a diffusers/transformers `config.json` describes.
    static func componentOfConfig(_ path: String) throws -> StableDiffusionComponent {
        let object = try CLIPConfigurationFile.jsonObject(path)
        switch object["_class_name"] as? String {
        case "UNet2DConditionModel": return .unet
        case "AutoencoderKL": return .vae
        default: break
        }
        if object["model_type"] as? String == "clip_text_model" || (object["architectures"] as? [String])?.first?.hasPrefix("CLIPText") == true {
            return .textEncoder
        }
        throw CheckpointError(file: path, "config.json describes neither a UNet2DConditionModel, an AutoencoderKL nor a CLIPTextModel")
    }

    /// The components this checkpoint holds.
    public var components: [StableDiffusionComponent] {
        switch storage {
        case .diffusersComponent(_, let component), .standaloneFile(_, let component): return [component]
        case .diffusersPipeline, .ldmSingleFile:
            return StableDiffusionComponent.allCases.filter { !records(of: $0).isEmpty }
        }
    }

    /// The stored records of one component, by stored name.
    public func records(of component: StableDiffusionComponent) -> [TensorRecord] {
        switch storage {
        case .diffusersPipeline:
            return store.orderedRecords.filter { $0.name.hasPrefix(component.rawValue + ".") }
        case .diffusersComponent(_, let held), .standaloneFile(_, let held):
            return held == component ? store.orderedRecords : []
        case .ldmSingleFile:
            let prefixes: [String]
            switch component {
            case .unet: prefixes = [StableDiffusionLayout.unetPrefix]
            case .vae: prefixes = [StableDiffusionLayout.vaePrefix]
            case .textEncoder: prefixes = [StableDiffusionLayout.sd1TextPrefix, StableDiffusionLayout.sd2TextPrefix]
            }
            return store.orderedRecords.filter { record in prefixes.contains(where: record.name.hasPrefix) }
        }
    }

    /// SD1 or SD2, from the text encoder's layout, the cross-attention width (DF `infer_diffusers_model_type`)
    /// or the UNet's projections (SD2's `proj_in` is a linear `[C, C]`, SD1's a 1×1 conv).
    public var version: StableDiffusionVersion {
        if store.names.contains(where: { $0.hasPrefix(StableDiffusionLayout.sd2TextPrefix) }) { return .sd2 }
        if let contextWidth = crossAttentionWidth, contextWidth == 1024 { return .sd2 }
        if let projection = records(of: .unet).first(where: { $0.name.hasSuffix(".proj_in.weight") }), projection.shape.count == 2 { return .sd2 }
        return .sd1
    }

    /// The UNet's context width, read from the first cross-attention key projection.
    var crossAttentionWidth: Int? {
        records(of: .unet).first { $0.name.hasSuffix("attn2.to_k.weight") }?.shape.last
    }

    /// Whether the file holds a `model_ema.*` copy of the UNet (more than 100 such keys, as diffusers decides).
    public var hasEMA: Bool {
        store.names.lazy.filter { $0.hasPrefix("model_ema.") }.prefix(101).count > 100
    }

    /// diffusers' EMA key of an LDM UNet key: `model_ema.` + the key without `model.` and without dots.
    static func emaKey(_ name: String) -> String {
        "model_ema." + name.split(separator: ".").dropFirst().joined()
    }

    /// The name/shape plan that turns the component's stored tensors into diffusers names.
    public func plan(for component: StableDiffusionComponent, extractEMA: Bool = false) throws -> (plan: LayoutPlan, store: WeightStore) {
        let records = records(of: component)
        guard !records.isEmpty else {
            throw CheckpointError(file: file, "the checkpoint holds no \(component.rawValue) (components present: \(components.map(\.rawValue).joined(separator: ", ")))")
        }
        var source = WeightStore(format: store.format, sources: store.sources, metadata: store.metadata)
        var plan = LayoutPlan()
        func add(_ record: TensorRecord, as name: String) throws {
            try source.add(TensorRecord(name: name, dtype: record.dtype, shape: record.shape, strides: record.strides,
                                        storageOffset: record.storageOffset, storage: record.storage), file: file)
        }
        switch storage {
        case .diffusersPipeline, .diffusersComponent:
            let prefix: String
            if case .diffusersPipeline = storage { prefix = component.rawValue + "." } else { prefix = "" }
            for record in records {
                let name = String(record.name.dropFirst(prefix.count))
                try add(record, as: name)
                plan.merge(Self.diffusersPlan(component, name: name))
            }
        case .standaloneFile:
            for record in records { try add(record, as: record.name) }
            let shapes = records.map { NamedShape($0.name, $0.shape) }
            let isLDM = component == .vae && shapes.contains { $0.name.hasPrefix("encoder.down.") || $0.name.hasPrefix("decoder.up.") || $0.name.hasPrefix("vae.") }
            if isLDM {
                let prefix = shapes.contains { $0.name.hasPrefix("vae.") } ? "vae." : ""
                plan = StableDiffusionLayout.vaeToDiffusers(shapes, prefix: prefix)
            } else if component == .unet && shapes.contains(where: { $0.name.hasPrefix("input_blocks.") }) {
                plan = StableDiffusionLayout.unetToDiffusers(shapes, prefix: "")
            } else {
                for shape in shapes { plan.merge(Self.diffusersPlan(component, name: shape.name)) }
            }
        case .ldmSingleFile:
            var shapes: [NamedShape] = []
            for record in records {
                if component == .unet && extractEMA {
                    guard let ema = store[Self.emaKey(record.name)] else {
                        throw CheckpointError(file: file, "EMA extraction: '\(record.name)' has no EMA copy '\(Self.emaKey(record.name))'\(hasEMA ? "" : " (the file holds no model_ema.* weights)")")
                    }
                    guard ema.shape == record.shape else {
                        throw CheckpointError(file: file, "EMA extraction: '\(Self.emaKey(record.name))' has shape \(ema.shape), the UNet weight \(record.shape)")
                    }
                    try add(ema, as: record.name)
                } else {
                    try add(record, as: record.name)
                }
                shapes.append(NamedShape(record.name, record.shape))
            }
            switch component {
            case .unet: plan = StableDiffusionLayout.unetToDiffusers(shapes)
            case .vae: plan = StableDiffusionLayout.vaeToDiffusers(shapes)
            case .textEncoder:
                if shapes.contains(where: { $0.name.hasPrefix(StableDiffusionLayout.sd2TextPrefix) }) {
                    plan = StableDiffusionLayout.sd2TextToHF(shapes)
                } else {
                    plan = StableDiffusionLayout.sd1TextToHF(shapes)
                }
            }
        }
        return (plan, source)
    }

    /// A diffusers-named tensor: older VAE attention names modernised, transformers' flattened text
    /// names given back their `text_model.` prefix, position-id buffers dropped.
    static func diffusersPlan(_ component: StableDiffusionComponent, name: String) -> LayoutPlan {
        var plan = LayoutPlan()
        switch component {
        case .unet:
            plan.mapped.append(MappedTensor(source: name, target: name))
        case .vae:
            plan.mapped.append(MappedTensor(source: name, target: StableDiffusionLayout.modernizeDiffusersVAEName(name)))
        case .textEncoder:
            if name.hasSuffix("position_ids") {
                plan.dropped.append((name, "position ids (regenerated as arange)"))
            } else {
                plan.mapped.append(MappedTensor(source: name, target: name.hasPrefix("text_model.") ? name : "text_model." + name))
            }
        }
        return plan
    }

    /// Float32 tensors of one component under diffusers / transformers names.
    public func canonicalTensors(_ component: StableDiffusionComponent, extractEMA: Bool = false) throws -> [String: Tensor] {
        let (plan, source) = try plan(for: component, extractEMA: extractEMA)
        return try CanonicalTensors.make(source, plan: plan, file: file)
    }

    /// The `config.json` that describes `component`: inside the pipeline/component folder, else in
    /// `configuration` (a diffusers-layout folder of component configs, or a config file itself).
    public func configurationFile(for component: StableDiffusionComponent, configuration: String?) -> String? {
        func existing(_ candidates: [String]) -> String? { candidates.first { FileManager.default.fileExists(atPath: $0) } }
        if let configuration {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: configuration, isDirectory: &isDirectory), !isDirectory.boolValue { return configuration }
            let folder = URL(fileURLWithPath: configuration)
            return existing([folder.appendingPathComponent(component.rawValue).appendingPathComponent("config.json").path,
                             folder.appendingPathComponent("config.json").path])
        }
        switch storage {
        case .diffusersPipeline(let folder):
            return existing([URL(fileURLWithPath: folder).appendingPathComponent(component.rawValue).appendingPathComponent("config.json").path])
        case .diffusersComponent(let folder, _):
            return existing([URL(fileURLWithPath: folder).appendingPathComponent("config.json").path])
        case .ldmSingleFile, .standaloneFile:
            return nil
        }
    }
}

/// One component's size after conversion to diffusers names (models.md §4.5 counts).
public struct StableDiffusionComponentSummary: Sendable {
    public let component: StableDiffusionComponent
    public let tensors: Int
    public let parameters: Int
    /// Source tensors left out on purpose (position ids, the SD2 tower's last block, …).
    public let dropped: Int
    /// Source tensors no known layout maps (e.g. a UNet whose block numbering is impossible).
    public var unmapped = 0
}

extension StableDiffusionSource {
    /// Tensor and parameter totals per component, computed from names and shapes only (no data read).
    public func componentSummaries() throws -> [StableDiffusionComponentSummary] {
        try components.map { component in
            let (plan, renamed) = try plan(for: component)
            let shapes = Dictionary(renamed.orderedRecords.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
            let targets = plan.targetShapes(sourceShapes: shapes)
            let parameters = targets.values.reduce(0) { TensorShape.saturatingSum($0, $1.map { TensorShape.elementCount($0) ?? Int.max } ?? 0) }
            return StableDiffusionComponentSummary(component: component, tensors: targets.count, parameters: parameters,
                                                   dropped: plan.dropped.count, unmapped: plan.unknown.count)
        }
    }
}
