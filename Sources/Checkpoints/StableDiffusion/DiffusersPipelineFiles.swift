import Foundation
import Models
import WeightsIO

/// The non-weight parts of a diffusers `StableDiffusionPipeline` folder: tokenizer, scheduler, feature
/// extractor and `model_index.json`, as the released SD 1.x/2.x repositories ship them.
enum DiffusersPipelineFiles {
    static let diffusersVersion = "0.42.1"

    /// `tokenizer/`: CLIPTokenizer from the shipped BPE vocabulary, sized to the text encoder's embedding
    /// table. SD1 pads with end of text (openai/clip-vit-large-patch14); SD2's OpenCLIP text tower pads
    /// with "!" (id 0), as stabilityai/stable-diffusion-2's tokenizer does (models.md §2.5).
    static func tokenizer(_ text: CLIPTextConfiguration, version: StableDiffusionVersion, file: String) throws -> [ExportedFile] {
        do {
            return try HuggingFaceTokenizerFiles.files(builtInSize: text.vocabularySize, contextLength: text.contextLength,
                                                       padToken: version == .sd1 ? HuggingFaceTokenizerFiles.endOfText : "!", folder: "tokenizer/")
        } catch let error as CheckpointError {
            throw CheckpointError(file: file, "cannot write tokenizer/ for a text encoder of \(text.vocabularySize) tokens: \(error.message)")
        }
    }

    /// `feature_extractor/preprocessor_config.json`: the CLIPImageProcessor (224) SD pipelines carry for
    /// their safety checker.
    static func featureExtractor() throws -> ExportedFile {
        try ExportedFile.json("feature_extractor/preprocessor_config.json", HuggingFaceCLIPFolder.imageProcessor(resolution: 224))
    }

    /// `model_index.json` naming every component. No safety checker weights are available, so it is
    /// `[null, null]` with `requires_safety_checker: false` (diffusers then loads without one, silently).
    static func modelIndex(scheduler: String) throws -> ExportedFile {
        try ExportedFile.json("model_index.json", [
            "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusersVersion,
            "feature_extractor": ["transformers", "CLIPImageProcessor"], "image_encoder": [NSNull(), NSNull()],
            "requires_safety_checker": false, "safety_checker": [NSNull(), NSNull()],
            "scheduler": ["diffusers", scheduler], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        ] as [String: Any])
    }
}

/// `scheduler/scheduler_config.json`: the configuration folder's own scheduler when it has one (its class
/// kept, its numbers as written), else SD's PNDMScheduler with the training schedule read from the
/// checkpoint's `betas` buffer.
struct DiffusersSchedulerConfig {
    let object: JSONObject
    var className: String { object["_class_name"]?.stringValue ?? "PNDMScheduler" }

    /// `prediction` overrides the prediction type (weights cannot say it; SD2 768-v needs `v_prediction`).
    init(store: WeightStore, configuration: String?, prediction: PredictionType?, file: String) throws {
        var object: JSONObject
        if let path = Self.configured(configuration) {
            object = try LiteralJSON.object(DiffusersFolderWriter.readBytes(path), file: path)
            guard let name = object["_class_name"]?.stringValue, name.hasSuffix("Scheduler"),
                  name.allSatisfy({ $0.isLetter || $0.isNumber }) else {
                throw CheckpointError(file: path, "expected a diffusers scheduler config with a `_class_name` such as \"PNDMScheduler\"")
            }
        } else {
            var standard: [String: Any] = [
                "_class_name": "PNDMScheduler", "_diffusers_version": DiffusersPipelineFiles.diffusersVersion,
                "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "prediction_type": "epsilon",
                "timestep_spacing": "leading", "clip_sample": false,
            ]
            standard.merge(try Self.schedule(store, file: file)) { _, schedule in schedule }
            object = LiteralJSON.value(standard).objectValue ?? JSONObject()
        }
        if let prediction { object = LiteralJSON.setting(object, "prediction_type", .string(prediction.rawValue)) }
        self.object = object
    }

    var bytes: [UInt8] { LiteralJSON.bytes(.object(object)) }

    static func configured(_ configuration: String?) -> String? {
        guard let configuration else { return nil }
        let path = URL(fileURLWithPath: configuration).appendingPathComponent("scheduler/scheduler_config.json").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// The schedule keys from LDM's `betas` buffer: `scaled_linear` (SD's: linspace of square roots) or
    /// `linear` when one of them reproduces it to float32 rounding, else the betas as `trained_betas`.
    /// A checkpoint without the buffer gets SD's 0.00085 → 0.012 over 1000 steps.
    static func schedule(_ store: WeightStore, file: String) throws -> [String: Any] {
        guard let record = store["betas"] else {
            return ["beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "trained_betas": NSNull()]
        }
        let betas: [Float]
        do { betas = try DTypeConversion.floats(of: record) } catch {
            throw CheckpointError(file: file, "cannot read the schedule buffer 'betas': \(error)")
        }
        guard betas.count >= 2, record.shape.count == 1, let first = betas.first, let last = betas.last,
              first > 0, last >= first, last < 1 else {
            throw CheckpointError(file: file, "the schedule buffer 'betas' (shape \(record.shape)) is not an increasing schedule in (0, 1)")
        }
        // Float32's shortest decimal: the stored 0.00085f is written 0.00085, as SD's configs say.
        let (start, end) = (Double(first.description) ?? Double(first), Double(last.description) ?? Double(last))
        let steps = betas.count
        let scaled = (0..<steps).map { i -> Double in
            let root = start.squareRoot() + (end.squareRoot() - start.squareRoot()) * Double(i) / Double(steps - 1)
            return root * root
        }
        let linear = (0..<steps).map { start + (end - start) * Double($0) / Double(steps - 1) }
        func reproduces(_ candidate: [Double]) -> Bool {
            zip(betas, candidate).allSatisfy { abs(Double($0) - $1) <= 1e-6 * $1 }
        }
        var keys: [String: Any] = ["beta_start": start, "beta_end": end, "num_train_timesteps": steps, "trained_betas": NSNull()]
        if reproduces(scaled) {
            keys["beta_schedule"] = "scaled_linear"
        } else if reproduces(linear) {
            keys["beta_schedule"] = "linear"
        } else {
            keys["beta_schedule"] = "linear"
            keys["trained_betas"] = betas.map { Double($0.description) ?? Double($0) }
        }
        return keys
    }
}
