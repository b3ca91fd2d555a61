import Foundation
import Models
import WeightsIO

/// The folder layouts `CLIPExporter` writes.
public enum CLIPExportLayout: String, CaseIterable, Sendable {
    /// transformers: `config.json`, `model.safetensors`, `preprocessor_config.json` and CLIPTokenizer files.
    case huggingFace = "hf"
    /// open_clip (`local-dir:`): `open_clip_config.json`, `open_clip_model.safetensors` in OpenAI/OpenCLIP names.
    case openCLIP = "openclip"
}

/// Where an exported model came from, recorded in the weight file's `__metadata__`.
public struct CLIPExportProvenance: Sendable {
    /// The weight files read, each with its SHA-256 (hex).
    public var sources: [(path: String, sha256: String)] = []
    /// The layout the source was in (`CLIPCheckpointLayout` raw value), when loaded from a file.
    public var sourceLayout: String?
    /// For a fine-tune's output: the optimiser step and the settings (compact JSON, keys sorted).
    public var step: Int?
    public var trainingSettings: String?

    public init(sources: [(path: String, sha256: String)] = [], sourceLayout: String? = nil, step: Int? = nil,
                trainingSettings: String? = nil) {
        (self.sources, self.sourceLayout, self.step, self.trainingSettings) = (sources, sourceLayout, step, trainingSettings)
    }

    /// The metadata entries; several source files (shards) are listed in order, one per line.
    public var metadata: [String: String] {
        var result = ["format": "pt"]
        if !sources.isEmpty {
            result["sdsclip_source_file"] = sources.map(\.path).joined(separator: "\n")
            result["sdsclip_source_sha256"] = sources.map(\.sha256).joined(separator: "\n")
        }
        if let sourceLayout { result["sdsclip_source_layout"] = sourceLayout }
        if let step { result["sdsclip_step"] = String(step) }
        if let trainingSettings { result["sdsclip_training"] = trainingSettings }
        return result
    }
}

/// Writes a loaded CLIP as a folder another library loads (`CLIPExportLayout`). Tensors come from the
/// model's parameter registry (canonical names) and go through the inverse layout rules; the folder is
/// built beside `output` and renamed into place only when complete (`AtomicFolder`).
public enum CLIPExporter {
    public struct Options: Sendable {
        public var layout: CLIPExportLayout
        /// The floating dtype of the weights: F32, F16 or BF16.
        public var dtype: DType
        public var existing: AtomicFolder.ExistingDestination
        /// Inputs the export must not replace and where its temp folder is booked (`AtomicFolder`).
        public var writing: WriteOptions

        public init(layout: CLIPExportLayout, dtype: DType = .f32, existing: AtomicFolder.ExistingDestination = .refuse,
                    writing: WriteOptions = WriteOptions()) {
            (self.layout, self.dtype, self.existing, self.writing) = (layout, dtype, existing, writing)
        }
    }

    public struct Summary {
        public let folder: String
        public let layout: CLIPExportLayout
        public let tensorCount: Int
        public let parameterCount: Int
        /// Paths of the files written, inside the folder, sorted.
        public let files: [String]
        /// Facts worth telling the user (how the source was configured, a tokenizer that does not fit).
        public var notes: [String]
    }

    static let dtypes: [DType] = [.f32, .f16, .bf16]

    /// Writes `model` to the folder `output`, with `extraFiles` (e.g. a fine-tune's latent map) in the
    /// same atomic swap. `tokenizer` is the model's own (from `ModelTokenizer`; nil: the built-in one).
    @discardableResult
    public static func export(_ model: CLIPModel, to output: String, options: Options, provenance: CLIPExportProvenance = .init(),
                              extraFiles: [ExportedFile] = [], tokenizer: CLIPTokenizer? = nil) throws -> Summary {
        guard dtypes.contains(options.dtype) else {
            throw CheckpointError(file: output, "export writes F32, F16 or BF16 weights, not \(options.dtype.rawValue)")
        }
        let vocabulary = try (tokenizer ?? CLIPTokenizer()).vocabulary
        let (files, tensorCount) = try layoutFiles(model, output: output, options: options, metadata: provenance.metadata, vocabulary: vocabulary)
        var notes: [String] = []
        if model.configuration.text.vocabularySize != vocabulary.tokenCount {
            notes.append("the tokenizer has \(vocabulary.tokenCount) tokens; this model's text tower has \(model.configuration.text.vocabularySize), so its ids must come from its own tokenizer")
        }
        if options.layout == .openCLIP, vocabulary.tokenCount != BPEVocabulary.size {
            notes.append("this model has its own \(vocabulary.tokenCount)-token vocabulary: its tokenizer files (vocab.json, merges.txt) are written beside the weights; open_clip's default tokenizer does not fit it")
        }
        let all = files + extraFiles
        try AtomicFolder.write(to: output, existing: options.existing, options: options.writing) { staging in
            for file in all { try file.write(into: staging) }
        }
        return Summary(folder: output, layout: options.layout, tensorCount: tensorCount,
                       parameterCount: model.registry.elementCount(), files: all.map(\.path).sorted(), notes: notes)
    }

    static func layoutFiles(_ model: CLIPModel, output: String, options: Options, metadata: [String: String],
                            vocabulary: BPEVocabulary) throws -> (files: [ExportedFile], tensors: Int) {
        switch options.layout {
        case .huggingFace:
            let tensors = try HuggingFaceCLIPFolder.tensors(model, dtype: options.dtype)
            return (try HuggingFaceCLIPFolder.files(model, tensors: tensors, dtype: options.dtype, metadata: metadata,
                                                    vocabulary: vocabulary), tensors.count)
        case .openCLIP:
            let tensors = try OpenCLIPFolder.tensors(model, dtype: options.dtype, output: output)
            let own = vocabulary.tokenCount == BPEVocabulary.size ? nil : vocabulary
            return (try OpenCLIPFolder.files(model, tensors: tensors, metadata: metadata, output: output, ownVocabulary: own), tensors.count)
        }
    }

    /// Loads the CLIP at `path` as `CLIPLoader.load` does and exports it, recording the weight files
    /// and their SHA-256; for a fine-tune's output folder (one with `training.json`) also its step and
    /// settings, and its latent map (`latent_map/`) is copied beside the exported CLIP.
    @discardableResult
    public static func export(modelAt path: String, configuration: String? = nil, to output: String,
                              options: Options) throws -> Summary {
        var options = options
        options.writing.protected = ProtectedFiles(paths: [path])
        let loaded = try CLIPLoader.load(path, configuration: configuration)
        let source = try CLIPExportSource(path: path, loaded: loaded)
        var summary = try export(loaded.model, to: output, options: options, provenance: source.provenance, extraFiles: source.extraFiles,
                                 tokenizer: ModelTokenizer.forCLIP(at: path))
        summary.notes = loaded.notes + summary.notes
        return summary
    }
}

/// What a model folder holds besides the CLIP: provenance, and a fine-tune's latent map.
struct CLIPExportSource {
    static let trainingFile = "training.json"
    static let latentMapFile = "latent_map/latent_map.safetensors"

    let provenance: CLIPExportProvenance
    let extraFiles: [ExportedFile]

    init(path: String, loaded: LoadedCLIP) throws {
        var provenance = CLIPExportProvenance(sourceLayout: loaded.layout.rawValue)
        for file in loaded.weightFiles {
            let absolute = URL(fileURLWithPath: file).standardizedFileURL.path
            provenance.sources.append((absolute, try SHA256.fileDigest(file)))
        }
        var extraFiles: [ExportedFile] = []
        let folder = CLIPLoader.folder(of: path)
        let training = (folder as NSString).appendingPathComponent(Self.trainingFile)
        if FileManager.default.fileExists(atPath: training) {
            let object = FileManager.default.contents(atPath: training).flatMap { try? JSONSerialization.jsonObject(with: $0) } as? [String: Any]
            guard let object, let step = (object["step"] as? NSNumber)?.intValue, let settings = object["configuration"] as? [String: Any] else {
                throw CheckpointError(file: training, "not a fine-tune's training.json (a JSON object with 'step' and 'configuration' was expected)")
            }
            provenance.step = step
            let data = try JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys, .withoutEscapingSlashes])
            provenance.trainingSettings = String(decoding: data, as: UTF8.self)
        }
        let latentMapFolder = (folder as NSString).appendingPathComponent("latent_map")
        if FileManager.default.fileExists(atPath: latentMapFolder) {
            let latentMap = (folder as NSString).appendingPathComponent(Self.latentMapFile)
            guard FileManager.default.fileExists(atPath: latentMap) else {
                throw CheckpointError(file: latentMapFolder, "a fine-tune's latent_map folder must hold latent_map.safetensors")
            }
            extraFiles.append(ExportedFile(Self.latentMapFile, .copy(of: latentMap)))
        }
        self.provenance = provenance
        self.extraFiles = extraFiles
    }
}
