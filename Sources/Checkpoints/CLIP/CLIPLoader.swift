import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// The naming a CLIP checkpoint uses.
public enum CLIPCheckpointLayout: String, Sendable, Encodable {
    /// transformers `CLIPModel` / `CLIPTextModel[WithProjection]`: `vision_model.*`, `text_model.*`
    /// (a standalone text tower may omit the `text_model.` prefix), `visual_projection.weight`, …
    case huggingFace = "huggingface"
    /// OpenAI and OpenCLIP state dicts (`visual.*`, `transformer.resblocks.*`, fused `in_proj`).
    case openCLIP = "openai-openclip"
    /// OpenAI's released TorchScript archives: OpenCLIP names inside a `torch.jit` zip.
    case torchScriptOpenAI = "torchscript-openai"
}

/// A CLIP ready to run, with where its weights and configuration came from.
public struct LoadedCLIP {
    public let model: CLIPModel
    public let layout: CLIPCheckpointLayout
    public let format: WeightFormat
    /// The configuration file used, or the known model the shapes matched.
    public let configurationSource: String
    /// Facts worth telling the user (e.g. an activation chosen by table).
    public let notes: [String]
    /// The weight files read (several for a sharded checkpoint).
    public let weightFiles: [String]
}

/// A CLIP text tower ready to run (a standalone text encoder, or the text half of a full CLIP).
public struct LoadedCLIPText {
    public let encoder: CLIPTextEncoder
    public let layout: CLIPCheckpointLayout
    public let format: WeightFormat
    /// Whether the checkpoint holds nothing but the text tower.
    public let isTextOnly: Bool
    public let configurationSource: String
    public let notes: [String]
}

/// Either kind of CLIP checkpoint, for commands that accept both.
public enum LoadedCLIPModel {
    case full(LoadedCLIP)
    case textOnly(LoadedCLIPText)
}

/// How a store's tensors become canonical (HF) tensors: the layout, the rename plan, and whether the
/// checkpoint is a text tower alone. Names and shapes only; no tensor data is read.
public struct CLIPCheckpointPlan {
    public let layout: CLIPCheckpointLayout
    public let plan: LayoutPlan
    public let isTextOnly: Bool
}

public enum CLIPLoader {
    /// transformers ≥ 5 saves `CLIPTextModel` without its `text_model.` prefix; these are the roots then.
    static let bareTextRoots = ["embeddings.", "encoder.", "final_layer_norm."]

    public static func detectLayout(_ names: [String]) -> CLIPCheckpointLayout? {
        if names.contains(where: { $0.hasPrefix("vision_model.") || $0.hasPrefix("text_model.") }) { return .huggingFace }
        if names.contains(where: { $0.hasPrefix("visual.") || $0.hasPrefix("transformer.resblocks.") }) { return .openCLIP }
        if names.contains("embeddings.token_embedding.weight"), names.contains(where: { $0.hasPrefix("encoder.layers.") }) { return .huggingFace }
        return nil
    }

    /// Configuration files looked for beside the weights (in the folder, or the file's folder).
    static let configurationNames = ["config.json", "open_clip_config.json"]

    static func siblingConfiguration(for path: String) -> String? {
        let folder = URL(fileURLWithPath: folder(of: path))
        return configurationNames.map { folder.appendingPathComponent($0).path }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// The folder a model path stands for: the path itself when it is a folder, else the file's folder.
    static func folder(of path: String) -> String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        return isDirectory.boolValue ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    /// The plan from stored names and shapes. A `module.` (DataParallel) prefix on every name is removed;
    /// derived buffers (position ids, OpenAI's integer scalars, the causal mask) are dropped.
    public static func plan(_ shapes: [NamedShape], format: WeightFormat, file: String) throws -> CLIPCheckpointPlan {
        let prefix = !shapes.isEmpty && shapes.allSatisfy({ $0.name.hasPrefix("module.") }) ? "module." : ""
        let names = shapes.map { String($0.name.dropFirst(prefix.count)) }
        guard let family = detectLayout(names) else {
            throw CheckpointError(file: file, "not a CLIP checkpoint: no vision_model./text_model. (transformers) or visual./transformer.resblocks. (OpenAI/OpenCLIP) tensors")
        }
        var plan = LayoutPlan()
        switch family {
        case .huggingFace:
            let hasVision = names.contains { $0.hasPrefix("vision_model.") }
            for (shape, name) in zip(shapes, names) {
                if name.hasSuffix("position_ids") {
                    plan.dropped.append((shape.name, "position ids (regenerated as arange)"))
                } else if !hasVision, bareTextRoots.contains(where: name.hasPrefix) {
                    plan.mapped.append(MappedTensor(source: shape.name, target: "text_model." + name))
                } else {
                    plan.mapped.append(MappedTensor(source: shape.name, target: name))
                }
            }
        case .openCLIP, .torchScriptOpenAI:
            plan = CLIPLayout.openCLIPToHF(shapes, prefix: prefix)
        }
        let isTextOnly = !plan.mapped.contains { $0.target.hasPrefix("vision_model.") }
        let layout: CLIPCheckpointLayout = family == .openCLIP && format == .torchScript ? .torchScriptOpenAI : family
        return CLIPCheckpointPlan(layout: layout, plan: plan, isTextOnly: isTextOnly)
    }

    /// Canonical (HF) tensors from a store in any CLIP layout.
    public static func canonicalTensors(_ store: WeightStore, file: String) throws -> (CLIPCheckpointLayout, [String: Tensor]) {
        let planned = try plan(CanonicalTensors.namedShapes(store), format: store.format, file: file)
        return (planned.layout, try CanonicalTensors.make(store, plan: planned.plan, file: file))
    }

    /// Loads a full CLIP from a file or folder in any supported layout. The configuration comes from
    /// `configuration` (a file), else a config file beside the weights, else the table of released
    /// models (which then also chooses the activation unless `activation` is given).
    public static func load(_ path: String, configuration: String? = nil, activation: CLIPActivation? = nil,
                            requiresGrad: Bool = false) throws -> LoadedCLIP {
        let store = try WeightsReader.open(path)
        let file = store.sources.first ?? path
        let planned = try plan(CanonicalTensors.namedShapes(store), format: store.format, file: file)
        if planned.isTextOnly {
            throw CheckpointError(file: file, "this CLIP checkpoint holds only a text tower (no vision_model.*/visual.* tensors); it can embed texts, not images")
        }
        let tensors = try CanonicalTensors.make(store, plan: planned.plan, file: file)
        var notes: [String] = []
        let config: CLIPConfiguration
        let source: String
        if let explicit = configuration ?? siblingConfiguration(for: path) {
            var parsed = try CLIPConfigurationFile.read(explicit)
            if let activation {
                parsed.text.activation = activation
                parsed.vision.activation = activation
            }
            config = parsed
            source = explicit
        } else {
            let (inferred, known) = try CLIPArchitecture.infer(tensors.mapValues(\.shape), activation: activation, file: file)
            config = inferred
            source = "known model \(known.name)"
            if activation == nil {
                notes.append("activation \(known.activation.rawValue) chosen for \(known.name) (\(known.note)); pass --activation to override")
            }
        }
        let parameters = TensorDictionarySource(tensors, requiresGrad: requiresGrad)
        let model: CLIPModel
        do {
            model = try CLIPModel(parameters, configuration: config)
            try parameters.requireAllUsed()
        } catch let error as ModelError {
            throw CheckpointError(file: file, "\(error) (configuration from \(source))")
        }
        return LoadedCLIP(model: model, layout: planned.layout, format: store.format, configurationSource: source, notes: notes,
                          weightFiles: store.sources)
    }

    /// Loads a CLIP text tower: a standalone `CLIPTextModel` / `CLIPTextModelWithProjection` (keys with
    /// or without `text_model.`), or the text half of a full CLIP (its vision weights are skipped). The
    /// projection is used when the checkpoint has `text_projection`. Configuration as in `load`; without
    /// a file, the text sizes of the released models give the heads and activation.
    public static func loadText(_ path: String, configuration: String? = nil, activation: CLIPActivation? = nil,
                                requiresGrad: Bool = false) throws -> LoadedCLIPText {
        let store = try WeightsReader.open(path)
        let file = store.sources.first ?? path
        var planned = try plan(CanonicalTensors.namedShapes(store), format: store.format, file: file)
        var textPlan = planned.plan
        textPlan.mapped = planned.plan.mapped.filter { isTextTensor($0.target) }
        planned = CLIPCheckpointPlan(layout: planned.layout, plan: textPlan, isTextOnly: planned.isTextOnly)
        let tensors = try CanonicalTensors.make(store, plan: planned.plan, file: file)
        var notes: [String] = []
        var config: CLIPTextConfiguration
        let source: String
        if let explicit = configuration ?? siblingConfiguration(for: path) {
            config = try CLIPConfigurationFile.readText(explicit)
            source = explicit
        } else {
            let (inferred, known) = try CLIPArchitecture.inferText(tensors.mapValues(\.shape), activation: activation, file: file)
            config = inferred
            source = "known text tower of \(known.map(\.name).joined(separator: " / "))"
            if activation == nil, let first = known.first {
                notes.append("activation \(first.activation.rawValue) chosen by table (\(first.note)); pass --activation to override")
            }
        }
        if let activation { config.activation = activation }
        let parameters = TensorDictionarySource(tensors, requiresGrad: requiresGrad)
        let encoder: CLIPTextEncoder
        do {
            let projection = tensors["text_projection.weight"].flatMap { $0.rank == 2 ? $0.shape[0] : nil }
            encoder = try CLIPTextEncoder(parameters, configuration: config, projectionDimension: projection)
            try parameters.requireAllUsed()
        } catch let error as ModelError {
            throw CheckpointError(file: file, "\(error) (configuration from \(source))")
        }
        if !planned.isTextOnly { notes.append("the checkpoint is a full CLIP; only its text tower was loaded") }
        return LoadedCLIPText(encoder: encoder, layout: planned.layout, format: store.format, isTextOnly: planned.isTextOnly,
                              configurationSource: source, notes: notes)
    }

    /// A full CLIP when the checkpoint has both towers, else its text tower.
    public static func loadAny(_ path: String, configuration: String? = nil, activation: CLIPActivation? = nil) throws -> LoadedCLIPModel {
        let store = try WeightsReader.open(path)
        let planned = try plan(CanonicalTensors.namedShapes(store), format: store.format, file: store.sources.first ?? path)
        if planned.isTextOnly {
            return .textOnly(try loadText(path, configuration: configuration, activation: activation))
        }
        return .full(try load(path, configuration: configuration, activation: activation))
    }

    static func isTextTensor(_ canonicalName: String) -> Bool {
        canonicalName.hasPrefix("text_model.") || canonicalName == "text_projection.weight"
    }
}
