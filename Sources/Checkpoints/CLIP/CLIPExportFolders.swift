import Foundation
import Imaging
import Layouts
import Models
import Tensors
import WeightsIO

/// The files of a transformers `CLIPModel` folder that `CLIPModel.from_pretrained` and
/// `CLIPProcessor.from_pretrained` load.
enum HuggingFaceCLIPFolder {
    static let weightFile = "model.safetensors"

    /// Every registered parameter under its canonical name, in the shape the model was built with
    /// (transformers' shape; a stored `[1]` scalar, say, is written as the `[]` transformers declares).
    static func tensors(_ model: CLIPModel, dtype: DType) throws -> [SafetensorsWriter.Tensor] {
        try model.registry.entries.map { entry in
            let value = entry.parameter.value
            return try SafetensorsWriter.Tensor(name: entry.name, shape: value.shape, stacking: [value], as: dtype)
        }
    }

    static func files(_ model: CLIPModel, tensors: [SafetensorsWriter.Tensor], dtype: DType,
                      metadata: [String: String], vocabulary: BPEVocabulary) throws -> [ExportedFile] {
        var config = CLIPConfigurationFile.huggingFaceObject(model.configuration)
        config["dtype"] = torchDTypeName(dtype)
        return [
            try ExportedFile.json("config.json", config),
            ExportedFile(weightFile, .tensors(tensors, metadata: metadata)),
            try ExportedFile.json("preprocessor_config.json", imageProcessor(resolution: model.configuration.vision.imageSize)),
        ] + (try HuggingFaceTokenizerFiles.files(vocabulary: vocabulary, contextLength: model.configuration.text.contextLength))
    }

    static func torchDTypeName(_ dtype: DType) -> String {
        switch dtype {
        case .f16: return "float16"
        case .bf16: return "bfloat16"
        default: return "float32"
        }
    }

    /// `CLIPImageProcessor` doing what `CLIPPreprocessor` does: shorter side to R (bicubic), centre
    /// crop R×R, /255, OpenAI mean and std.
    static func imageProcessor(resolution: Int) -> [String: Any] {
        [
            "image_processor_type": "CLIPImageProcessor", "processor_class": "CLIPProcessor",
            "do_resize": true, "size": ["shortest_edge": resolution], "resample": 3,
            "do_center_crop": true, "crop_size": ["height": resolution, "width": resolution],
            "do_rescale": true, "rescale_factor": 1.0 / 255.0, "do_convert_rgb": true,
            "do_normalize": true, "image_mean": CLIPPreprocessor.openAIMean.map(CLIPConfigurationFile.decimal),
            "image_std": CLIPPreprocessor.openAIStd.map(CLIPConfigurationFile.decimal),
        ]
    }
}

/// transformers' `CLIPTokenizer` files, derived from a BPE vocabulary (the built-in one, or the folder's
/// own a model was loaded with): `vocab.json` (token → id), `merges.txt` (the merges in rank order under a
/// version line), and the special tokens. Padding is with end of text, as OpenAI's released CLIP
/// tokenizers do, unless the caller names another pad token (SD2's tokenizer pads with "!", id 0).
/// `folder` prefixes the paths ("tokenizer/" inside a diffusers pipeline).
enum HuggingFaceTokenizerFiles {
    static let startOfText = HuggingFaceVocabularyReader.startOfText
    static let endOfText = HuggingFaceVocabularyReader.endOfText
    /// 256 byte symbols, the same with "</w>", and the two special tokens: the smallest CLIP vocabulary.
    static let smallestVocabulary = 514

    /// The files of `vocabulary` as it is.
    static func files(vocabulary: BPEVocabulary, contextLength: Int, padToken: String = endOfText, folder: String = "") throws -> [ExportedFile] {
        try files(tokens: vocabulary.huggingFaceTokens, mergeLines: vocabulary.mergeLines[...], contextLength: contextLength,
                  padToken: padToken, folder: folder)
    }

    /// The built-in vocabulary cut to `vocabularySize` tokens: below the full 49,408 it keeps the first
    /// `size − 514` merges, so start and end of text get the ids `size − 2` and `size − 1`, as a CLIP
    /// vocabulary of that size is always built (the text encoder of a converted checkpoint says only its size).
    static func files(builtInSize vocabularySize: Int, contextLength: Int, padToken: String = endOfText, folder: String = "") throws -> [ExportedFile] {
        guard (smallestVocabulary...BPEVocabulary.size).contains(vocabularySize) else {
            throw CheckpointError(file: "", "no CLIP BPE tokenizer has \(vocabularySize) tokens (a CLIP vocabulary has \(smallestVocabulary) to \(BPEVocabulary.size))")
        }
        let vocabulary = try CLIPTokenizer().vocabulary
        let kept = vocabularySize - smallestVocabulary
        let tokens = Array(vocabulary.huggingFaceTokens.prefix(512 + kept)) + [startOfText, endOfText]
        return try files(tokens: tokens, mergeLines: vocabulary.mergeLines.prefix(kept), contextLength: contextLength,
                         padToken: padToken, folder: folder)
    }

    private static func files(tokens: [String], mergeLines: ArraySlice<String>, contextLength: Int, padToken: String,
                              folder: String) throws -> [ExportedFile] {
        let merges = "#version: 0.2\n" + mergeLines.map { $0 + "\n" }.joined()
        let special = ["bos_token": startOfText, "eos_token": endOfText, "unk_token": endOfText, "pad_token": padToken]
        var tokenizer: [String: Any] = special
        tokenizer.merge(["tokenizer_class": "CLIPTokenizer", "processor_class": "CLIPProcessor", "model_max_length": contextLength,
                         "do_lower_case": true, "errors": "replace", "add_prefix_space": false,
                         "clean_up_tokenization_spaces": false]) { current, _ in current }
        return [
            ExportedFile(folder + "vocab.json", .bytes(vocabularyJSON(tokens))),
            ExportedFile(folder + "merges.txt", .bytes(Array(merges.utf8))),
            try ExportedFile.json(folder + "tokenizer_config.json", tokenizer),
            try ExportedFile.json(folder + "special_tokens_map.json", special),
        ]
    }

    /// `{"token": id, …}` in id order, as OpenAI's released vocab.json files are (not key-sorted).
    static func vocabularyJSON(_ tokens: [String]) -> [UInt8] {
        var writer = JSONWriter()
        writer.append("{")
        for (id, token) in tokens.enumerated() {
            if id > 0 { writer.append(", ") }
            writer.writeString(token)
            writer.append(": \(id)")
        }
        writer.append("}\n")
        return writer.bytes
    }
}

/// The files open_clip's `create_model_and_transforms('local-dir:OUT')` loads: the state dict in
/// OpenAI/OpenCLIP names and `open_clip_config.json` (`model_cfg`, `preprocess_cfg`).
enum OpenCLIPFolder {
    static let weightFile = "open_clip_model.safetensors"

    /// The registry's tensors through the inverse layout rules (`CLIPLayout.hfToOpenCLIP`).
    static func tensors(_ model: CLIPModel, dtype: DType, output: String) throws -> [SafetensorsWriter.Tensor] {
        let entries = model.registry.entries
        let values = Dictionary(entries.map { ($0.name, $0.parameter.value) }, uniquingKeysWith: { first, _ in first })
        let shapes = values.mapValues(\.shape)
        let plan = CLIPLayout.hfToOpenCLIP(entries.map { NamedShape($0.name, $0.parameter.value.shape) })
        if !plan.unknown.isEmpty {
            throw CheckpointError(file: output, "no OpenCLIP name for \(plan.unknown.count) tensor(s): \(plan.unknown.prefix(6).joined(separator: ", "))")
        }
        if let first = plan.incomplete.first {
            throw CheckpointError(file: output, "cannot build '\(first.target)': the model has no \(first.missing.joined(separator: ", "))")
        }
        return try plan.assembled.map { tensor in
            guard let shape = tensor.assembly.shape(sourceShapes: shapes) else {
                throw CheckpointError(file: output, "cannot build '\(tensor.target)' (\(tensor.assembly)) from the shapes of \(tensor.assembly.sources.joined(separator: ", "))")
            }
            let parts: [Tensor]
            switch tensor.assembly {
            case .single(let source, let transform):
                guard let value = values[source] else { throw CheckpointError(file: output, "the model has no '\(source)'") }
                parts = [try transform.apply(value)]
            case .concatenatedRows(let sources):
                // Row-major stacking along the first axis is the parts' values one after another.
                parts = try sources.map { source in
                    guard let value = values[source] else { throw CheckpointError(file: output, "the model has no '\(source)'") }
                    return value
                }
            }
            return try SafetensorsWriter.Tensor(name: tensor.target, shape: shape, stacking: parts, as: dtype)
        }
    }

    /// `vocabulary` only when it is not the built-in one open_clip also uses: then its tokenizer files go
    /// beside the weights, so that sdsclip (and transformers' CLIPTokenizer) tokenize for this model.
    static func files(_ model: CLIPModel, tensors: [SafetensorsWriter.Tensor], metadata: [String: String],
                      output: String, ownVocabulary vocabulary: BPEVocabulary?) throws -> [ExportedFile] {
        let config: [String: Any] = [
            "model_cfg": try CLIPConfigurationFile.openCLIPModelObject(model.configuration, file: output),
            "preprocess_cfg": [
                "size": model.configuration.vision.imageSize, "mode": "RGB", "interpolation": "bicubic", "resize_mode": "shortest",
                "mean": CLIPPreprocessor.openAIMean.map(CLIPConfigurationFile.decimal),
                "std": CLIPPreprocessor.openAIStd.map(CLIPConfigurationFile.decimal), "fill_color": 0,
            ] as [String: Any],
        ]
        let tokenizer = try vocabulary.map { try HuggingFaceTokenizerFiles.files(vocabulary: $0, contextLength: model.configuration.text.contextLength) } ?? []
        return [try ExportedFile.json("open_clip_config.json", config), ExportedFile(weightFile, .tensors(tensors, metadata: metadata))] + tokenizer
    }
}
