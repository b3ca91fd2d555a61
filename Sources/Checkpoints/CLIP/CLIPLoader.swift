import Foundation
import Layouts
import Models
import Tensors
import WeightsIO

/// The naming a CLIP checkpoint uses.
public enum CLIPCheckpointLayout: String, Sendable {
    /// transformers `CLIPModel`: `vision_model.*`, `text_model.*`, `visual_projection.weight`, …
    case huggingFace = "huggingface"
    /// OpenAI and OpenCLIP state dicts (`visual.*`, `transformer.resblocks.*`, fused `in_proj`).
    case openCLIP = "openai/openclip"
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
}

public enum CLIPLoader {
    public static func detectLayout(_ names: [String]) -> CLIPCheckpointLayout? {
        if names.contains(where: { $0.hasPrefix("vision_model.") || $0.hasPrefix("text_model.") }) { return .huggingFace }
        if names.contains(where: { $0.hasPrefix("visual.") || $0.hasPrefix("transformer.resblocks.") }) { return .openCLIP }
        return nil
    }

    /// Configuration files looked for beside the weights (in the folder, or the file's folder).
    static let configurationNames = ["config.json", "open_clip_config.json"]

    static func siblingConfiguration(for path: String) -> String? {
        var isDirectory: ObjCBool = false
        FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let folder = isDirectory.boolValue ? URL(fileURLWithPath: path) : URL(fileURLWithPath: path).deletingLastPathComponent()
        return configurationNames.map { folder.appendingPathComponent($0).path }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Canonical (HF) tensors from a store in either layout; `module.` (DataParallel) prefixes removed.
    public static func canonicalTensors(_ store: WeightStore, file: String) throws -> (CLIPCheckpointLayout, [String: Tensor]) {
        let allPrefixed = !store.names.isEmpty && store.names.allSatisfy { $0.hasPrefix("module.") }
        let rename: (String) -> String = { allPrefixed ? String($0.dropFirst("module.".count)) : $0 }
        let shapes = CanonicalTensors.namedShapes(store, renaming: rename)
        guard let layout = detectLayout(shapes.map(\.name)) else {
            throw CheckpointError(file: file, "not a CLIP checkpoint: no vision_model./text_model. (transformers) or visual./transformer.resblocks. (OpenAI/OpenCLIP) tensors")
        }
        var plan = LayoutPlan()
        switch layout {
        case .huggingFace:
            for shape in shapes {
                if shape.name.hasSuffix("position_ids") {
                    plan.dropped.append((shape.name, "position ids"))
                } else {
                    plan.mapped.append(MappedTensor(source: shape.name, target: shape.name))
                }
            }
        case .openCLIP:
            plan = CLIPLayout.openCLIPToHF(shapes)
        }
        // The plan speaks of renamed sources; map them back to stored names.
        var renamedStore = WeightStore(format: store.format, sources: store.sources, metadata: store.metadata)
        for record in store.orderedRecords {
            try renamedStore.add(TensorRecord(name: rename(record.name), dtype: record.dtype, shape: record.shape,
                                              strides: record.strides, storageOffset: record.storageOffset, storage: record.storage), file: file)
        }
        return (layout, try CanonicalTensors.make(renamedStore, plan: plan, file: file))
    }

    /// Loads a CLIP from a file or folder in any supported layout. The configuration comes from
    /// `configuration` (a file), else a config file beside the weights, else the table of released
    /// models (which then also chooses the activation unless `activation` is given).
    public static func load(_ path: String, configuration: String? = nil, activation: CLIPActivation? = nil,
                            requiresGrad: Bool = false) throws -> LoadedCLIP {
        let store = try WeightsReader.open(path)
        let file = store.sources.first ?? path
        let (layout, tensors) = try canonicalTensors(store, file: file)
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
        return LoadedCLIP(model: model, layout: layout, format: store.format, configurationSource: source, notes: notes)
    }
}
