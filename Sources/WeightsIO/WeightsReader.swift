import Foundation

/// Options for opening weights.
public struct ReadOptions: Sendable {
    /// A weight-file variant to prefer in folders (`fp16` picks `model.fp16.safetensors`).
    public var variant: String?
    public var pickleLimits: PickleLimits
    /// Refuse pickles with unknown globals too (`--strict`), not only dangerous ones: only files whose
    /// every global is on the allowlist of inert data constructors are read.
    public var strictGlobals: Bool

    public init(variant: String? = nil, pickleLimits: PickleLimits = PickleLimits(), strictGlobals: Bool = false) {
        self.variant = variant
        self.pickleLimits = pickleLimits
        self.strictGlobals = strictGlobals
    }
}

/// The one entry point for reading weights: a file of any supported format (detected by content),
/// a sharded index (`*.safetensors.index.json`), a model folder, or a diffusers pipeline folder.
public enum WeightsReader {
    public static func open(_ path: String, options: ReadOptions = ReadOptions()) throws -> WeightStore {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw WeightsError(.io, file: path, PathDiagnosis.whyMissing(path))
        }
        if isDirectory.boolValue { return try openFolder(path, options: options) }
        return try openFile(path, options: options)
    }

    /// A single file, classified by its bytes. JSON files are read as shard indexes.
    public static func openFile(_ path: String, options: ReadOptions = ReadOptions()) throws -> WeightStore {
        let faultsBefore = TruncationGuard.faultCount
        let store = try openDetected(path, options: options)
        try TruncationGuard.check(since: faultsBefore, inputs: store.orderedRecords.map(\.storage.owner))
        return store
    }

    private static func openDetected(_ path: String, options: ReadOptions) throws -> WeightStore {
        switch try FormatDetection.detect(path: path) {
        case .safetensors:
            return try SafetensorsReader.read(path: path)
        case .zip, .torchLegacy:
            let store = try TorchCheckpointReader.read(path: path, limits: options.pickleLimits)
            if options.strictGlobals, let globals = store.pickleGlobals, !globals.isSafe {
                throw WeightsError(.unsafe, file: path, "strict: the pickle uses globals outside the allowlist of inert data constructors, which torch.load(weights_only=False) would import: "
                                   + globals.summary)
            }
            return store
        case .tar:
            throw WeightsError(.unsupported, file: path,
                               "the tar-based torch format (torch < 0.4) is not supported; re-save it with a current torch")
        case .unknown:
            if path.hasSuffix(".json") { return try ShardedSafetensors.read(indexPath: path) }
            throw WeightsError(.format, file: path,
                               "not a recognised weights file (expected safetensors, a torch zip or TorchScript archive, or a legacy torch file)")
        }
    }

    /// A folder: a diffusers pipeline (`model_index.json`, names prefixed by component), or one
    /// model's folder, where the weight file is chosen as `from_pretrained` would.
    public static func openFolder(_ path: String, options: ReadOptions = ReadOptions()) throws -> WeightStore {
        let folder = URL(fileURLWithPath: path)
        let indexURL = folder.appendingPathComponent("model_index.json")
        if FileManager.default.fileExists(atPath: indexURL.path) {
            return try openPipeline(folder, options: options)
        }
        let file = try weightFile(in: path, variant: options.variant)
        return try openFile(file, options: options)
    }

    /// The component folders of a diffusers pipeline that hold weights, in `model_index.json` order.
    public static func pipelineComponents(_ folder: String) throws -> [String] {
        let indexPath = URL(fileURLWithPath: folder).appendingPathComponent("model_index.json").path
        let data = try InputFile.readAll(indexPath)
        let json: JSONValue
        do { json = try JSONParser.parse(data) } catch {
            throw WeightsError(.format, file: indexPath, "not valid JSON: \(error)")
        }
        guard let members = json.objectValue else {
            throw WeightsError(.format, file: indexPath, "expected a JSON object naming the pipeline's components")
        }
        return members.members.compactMap { key, value -> String? in
            guard !key.hasPrefix("_"), let pair = value.arrayValue, pair.count == 2 else { return nil }
            var isDirectory: ObjCBool = false
            let sub = URL(fileURLWithPath: folder).appendingPathComponent(key).path
            guard FileManager.default.fileExists(atPath: sub, isDirectory: &isDirectory), isDirectory.boolValue,
                  (try? weightFile(in: sub, variant: nil)) != nil else { return nil }
            return key
        }
    }

    static func openPipeline(_ folder: URL, options: ReadOptions) throws -> WeightStore {
        let components = try pipelineComponents(folder.path)
        guard !components.isEmpty else {
            throw WeightsError(.format, file: folder.path, "the pipeline's model_index.json names no component folder with weights")
        }
        var sources: [String] = []
        var parts: [(String, WeightStore)] = []
        for component in components {
            let store = try openFolder(folder.appendingPathComponent(component).path, options: options)
            sources += store.sources
            parts.append((component, store))
        }
        var merged = WeightStore(format: .folder, sources: sources, metadata: ["pipeline": folder.path])
        merged.pickleGlobals = PickleGlobalsReport.merging(parts.map(\.1.pickleGlobals))
        for (component, store) in parts {
            for record in store.orderedRecords {
                let renamed = TensorRecord(name: "\(component).\(record.name)", dtype: record.dtype, shape: record.shape,
                                           strides: record.strides, storageOffset: record.storageOffset, storage: record.storage)
                try merged.add(renamed, file: folder.path)
            }
        }
        return merged
    }

    /// Picks the weight file of a model folder: a sharded index first, then a single safetensors
    /// file, then a torch file; `variant` files (`x.fp16.safetensors`) only when asked for, or when
    /// they are all there is. Two equally good candidates are an error, never a guess.
    public static func weightFile(in folder: String, variant: String?) throws -> String {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted() } catch {
            throw WeightsError(.io, file: folder, "cannot list the folder: \(error.localizedDescription)")
        }
        let tiers: [(String) -> Bool] = [
            { $0.hasSuffix(".safetensors.index.json") },
            { $0.hasSuffix(".safetensors") },
            { [".bin", ".pt", ".pth", ".ckpt"].contains(where: $0.hasSuffix) },
        ]
        func variantOf(_ name: String) -> String? {
            let stem = name.replacingOccurrences(of: ".index.json", with: "")
            let parts = stem.split(separator: ".")
            return parts.count >= 3 ? String(parts[parts.count - 2]) : nil
        }
        for wanted in [variant, nil] {
            for tier in tiers {
                let candidates = names.filter { tier($0) && variantOf($0) == wanted }
                if candidates.count == 1 { return URL(fileURLWithPath: folder).appendingPathComponent(candidates[0]).path }
                if candidates.count > 1 {
                    throw WeightsError(.format, file: folder,
                                       "several weight files could be meant (\(candidates.joined(separator: ", "))); name one file")
                }
            }
        }
        // Only variant files present: accept them when exactly one variant exists.
        for tier in tiers {
            let candidates = names.filter(tier)
            if candidates.count == 1 { return URL(fileURLWithPath: folder).appendingPathComponent(candidates[0]).path }
        }
        throw WeightsError(.io, file: folder, "no weight file (*.safetensors, *.safetensors.index.json, *.bin, *.pt, *.pth, *.ckpt) in the folder")
    }
}
