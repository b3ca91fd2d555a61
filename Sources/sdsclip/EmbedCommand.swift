import ArgumentParser
import Checkpoints
import Foundation
import Imaging
import Models
import Tensors
import WeightsIO

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Compute CLIP embeddings of images and/or texts, and with both, which text fits each image.",
        discussion: """
        Images are decoded (JPEG, PNG; CMYK JPEGs and 16-bit PNGs converted to 8-bit RGB as Pillow does), \
        resized (bicubic, shortest side), centre-cropped and normalised as CLIP does. Embeddings are projected \
        and unnormalised. A standalone text encoder (transformers CLIPTextModel[WithProjection]) embeds texts \
        only: projected when it has a projection, else its pooled output (pooler_output, [N, W]).

        With --image and --text together it prints, for each image, the probability of each text: \
        softmax over the texts of 100 · cos(image, text), the fixed scale of open_clip's zero-shot example \
        ((100.0 * image_features @ text_features.T).softmax(dim=-1) on L2-normalised features), not the \
        model's own logit_scale. With one kind of input it prints the embeddings and their cosine similarities.

        --json prints one object described by docs/schemas/embed.schema.json ("schema": "sdsclip.embed/1"): \
        the raw and L2-normalised embeddings, and with both kinds the cosine matrix, the logits \
        (100 · cosine) and the probabilities. --output writes image_embeds and/or text_embeds ([N, E]) to a \
        safetensors file whose __metadata__ says which row is which input: "images" and "texts" hold JSON \
        arrays of the absolute image paths and the texts, in row order.

        An image that cannot be read or decoded is reported on stderr (its path and why) and skipped; the \
        others are embedded. Exit status 1 when nothing could be embedded (every image unreadable and no \
        texts), or on any other error.
        """
    )

    @Argument(help: "The CLIP model (or a CLIP text encoder): a file or folder in any supported layout.")
    var model: String

    @Option(name: .customLong("image"), parsing: .upToNextOption, help: "Image files.")
    var images: [String] = []

    @Option(name: .customLong("text"), parsing: .upToNextOption, help: "Texts.")
    var texts: [String] = []

    @Option(help: "A configuration file (transformers config.json or OpenCLIP config).")
    var config: String?

    @Option(help: "Write the embeddings to this safetensors file (rows named in __metadata__ \"images\"/\"texts\").")
    var output: String?

    @Flag(help: "Print one JSON object (schema docs/schemas/embed.schema.json) instead of the text report.")
    var json = false

    @Option(help: PrecisionHelp.text)
    var precision: Precision = .fp32

    @OptionGroup var safety: WeightSafetyOptions

    /// open_clip's zero-shot example multiplies cosine similarities by this before the softmax.
    static let zeroShotScale: Float = 100

    /// What was embedded: rows in input order, skipped images with the reason.
    struct Embeddings {
        var imagePaths: [String] = []
        var images: Tensor?
        var skipped: [(path: String, reason: String)] = []
        var textName = "text_embeds"
        var texts: Tensor?
    }

    func validate() throws {
        guard !images.isEmpty || !texts.isEmpty else { throw ValidationError("give --image files, --text strings, or both") }
    }

    func embed(_ loaded: LoadedCLIPModel) throws -> Embeddings {
        var result = Embeddings()
        switch loaded {
        case .full(let clip):
            for note in clip.notes { printError("note: \(note)") }
            if !images.isEmpty {
                let preprocessor = try CLIPPreprocessor(resolution: clip.model.configuration.vision.imageSize)
                var decoded: [RGBImage] = []
                for path in images {
                    do {
                        decoded.append(try ImageDecoder.decode(path: path))
                        result.imagePaths.append(path)
                    } catch {
                        printError("error: skipped \(path): \(error)")
                        result.skipped.append((path, String(describing: error)))
                    }
                }
                if !decoded.isEmpty {
                    let batch = preprocessor.processBatch(decoded)
                    result.images = try clip.model.encodeImage(Tensor(shape: batch.shape, data: batch.values))
                }
            }
            if !texts.isEmpty {
                let ids = try ModelTokenizer.forCLIP(at: model).tokenize(texts, contextLength: clip.model.configuration.text.contextLength)
                result.texts = try clip.model.encodeText(ids)
            }
        case .textOnly(let text):
            for note in text.notes { printError("note: \(note)") }
            guard images.isEmpty else {
                throw ValidationError("\(model) is a CLIP text encoder without a vision tower: it embeds --text only, not --image")
            }
            let ids = try ModelTokenizer.forTextEncoder(at: model).tokenize(texts, contextLength: text.encoder.configuration.contextLength)
            // Projected (text_embeds) when the tower has a projection, else the pooled state (pooler_output).
            result.textName = text.encoder.projectionDimension == nil ? "pooler_output" : "text_embeds"
            result.texts = try text.encoder.embed(ids)
        }
        return result
    }

    func run() throws {
        try reportingErrors {
            try safety.admit([model])
            let loaded = try CLIPLoader.loadAny(model, configuration: config)
            let choice = precision.resolvedAnnounced()
            switch loaded {
            case .full(let clip): try clip.model.registry.useBFloat16(choice)
            case .textOnly(let text): try text.encoder.registry.useBFloat16(choice)
            }
            let result = try withNoGrad { try embed(loaded) }
            guard result.images != nil || result.texts != nil else {
                printError("error: nothing to embed: every image was skipped")
                throw ExitCode(1)
            }
            let similarity = try result.images.flatMap { images in try result.texts.map { try Similarity(images: images, texts: $0) } }
            if let output { try write(result, to: output) }
            if json {
                print(try jsonReport(result, similarity: similarity))
            } else if output == nil {
                print(try textReport(result, similarity: similarity))
            }
        }
    }

    func write(_ result: Embeddings, to output: String) throws {
        var tensors: [SafetensorsWriter.Tensor] = []
        if let images = result.images { tensors.append(SafetensorsWriter.Tensor(name: "image_embeds", shape: images.shape, floats: images.scalars)) }
        if let texts = result.texts { tensors.append(SafetensorsWriter.Tensor(name: result.textName, shape: texts.shape, floats: texts.scalars)) }
        func jsonArray(_ values: [String]) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: values, options: [.withoutEscapingSlashes]), as: UTF8.self)
        }
        var metadata = ["model": model]
        if result.images != nil { metadata["images"] = try jsonArray(result.imagePaths.map(JSONOutput.absolute)) }
        if result.texts != nil { metadata["texts"] = try jsonArray(texts) }
        // SIGINT/SIGTERM/SIGHUP/SIGPIPE during the write remove the temp file, as in convert.
        try InterruptCleanup.during { temporaries in
            try SafetensorsWriter.write(tensors, metadata: metadata, to: output,
                                        options: WriteOptions(protected: ProtectedFiles(paths: [model] + images + [config].compactMap { $0 }),
                                                              temporaries: temporaries))
        }
        printError("wrote \(output): " + tensors.map { "\($0.name) \($0.shape)" }.joined(separator: ", "))
    }

    func textReport(_ result: Embeddings, similarity: Similarity?) throws -> String {
        var lines: [String] = []
        if let similarity {
            lines.append("probabilities (softmax over the texts of 100 × cosine similarity, as open_clip's zero-shot example):")
            let count = texts.count
            for (row, path) in result.imagePaths.enumerated() {
                let cells = (0..<count).map { String(format: "%.4f", similarity.probabilities[row * count + $0]) + "  " + texts[$0] }
                let best = (0..<count).max { similarity.probabilities[row * count + $0] < similarity.probabilities[row * count + $1] } ?? 0
                lines.append("\(path): best \"\(texts[best])\"")
                lines += cells.map { "  " + $0 }
            }
            return lines.joined(separator: "\n")
        }
        guard let embeddings = result.images ?? result.texts else { return "" }
        let labels = result.images == nil ? texts : result.imagePaths
        let rows = embeddings.shape[0], width = embeddings.shape[1]
        let values = embeddings.scalars
        for row in 0..<rows {
            let slice = values[row * width ..< (row + 1) * width]
            lines.append("\(labels[row]): [" + slice.prefix(8).map { String(format: "%.4f", $0) }.joined(separator: ", ") + (width > 8 ? ", …]" : "]"))
        }
        if rows > 1 {
            let normalised = try l2Normalize(embeddings, axis: -1)
            let cosine = try matmul(normalised, normalised.transpose(0, 1)).scalars
            lines.append("cosine similarity:")
            for row in 0..<rows {
                lines.append((0..<rows).map { String(format: "%7.4f", cosine[row * rows + $0]) }.joined(separator: " "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// `sdsclip.embed/1` (docs/schemas/embed.schema.json).
    func jsonReport(_ result: Embeddings, similarity: Similarity?) throws -> String {
        func rows(_ tensor: Tensor) throws -> (raw: [[Any]], normalised: [[Any]]) {
            let width = tensor.shape[1]
            let raw = tensor.scalars, unit = try l2Normalize(tensor, axis: -1).scalars
            let split = { (values: [Float]) in (0..<tensor.shape[0]).map { row in values[row * width ..< (row + 1) * width].map(JSONOutput.number) } }
            return (split(raw), split(unit))
        }
        func matrix(_ values: [Float], columns: Int) -> [[Any]] {
            stride(from: 0, to: values.count, by: max(columns, 1)).map { values[$0 ..< $0 + columns].map(JSONOutput.number) }
        }
        var imageEntries: [[String: Any]] = []
        if let images = result.images {
            let (raw, unit) = try rows(images)
            imageEntries = result.imagePaths.enumerated().map { ["path": JSONOutput.absolute($1), "embedding": raw[$0], "normalised": unit[$0]] }
        }
        var textEntries: [[String: Any]] = []
        if let textTensor = result.texts {
            let (raw, unit) = try rows(textTensor)
            textEntries = texts.enumerated().map { ["text": $1, "embedding": raw[$0], "normalised": unit[$0]] }
        }
        let similarityEntry: Any = similarity.map { s -> [String: Any] in
            ["scale": Double(Self.zeroShotScale), "rows": "images", "columns": "texts",
             "cosine": matrix(s.cosine, columns: texts.count), "logits": matrix(s.logits, columns: texts.count),
             "probabilities": matrix(s.probabilities, columns: texts.count)]
        } ?? NSNull()
        let width = (result.images ?? result.texts)?.shape[1] ?? 0
        let report: [String: Any] = [
            "schema": "sdsclip.embed/1",
            "model": JSONOutput.absolute(model),
            "dimension": width,
            "imageEmbeddingName": JSONOutput.orNull(result.images.map { _ in "image_embeds" }),
            "textEmbeddingName": JSONOutput.orNull(result.texts.map { _ in result.textName }),
            "images": imageEntries,
            "texts": textEntries,
            "skipped": result.skipped.map { ["path": JSONOutput.absolute($0.path), "reason": $0.reason] },
            "similarity": similarityEntry,
            "output": JSONOutput.orNull(output.map(JSONOutput.absolute)),
        ]
        return try JSONOutput.render(report)
    }
}

/// Image–text similarity as open_clip's zero-shot example computes it: cosine similarities of the
/// L2-normalised embeddings, logits = 100 · cosine, and a softmax over the texts for each image.
struct Similarity {
    let cosine: [Float]
    let logits: [Float]
    let probabilities: [Float]

    init(images: Tensor, texts: Tensor) throws {
        guard images.shape[1] == texts.shape[1] else {
            throw ValidationError("image embeddings have width \(images.shape[1]) but text embeddings \(texts.shape[1])")
        }
        let cosine = try matmul(l2Normalize(images, axis: -1), l2Normalize(texts, axis: -1).transpose(0, 1)).scalars
        let columns = texts.shape[0]
        self.cosine = cosine
        logits = cosine.map { $0 * EmbedCommand.zeroShotScale }
        var probabilities = [Float](repeating: 0, count: logits.count)
        for start in stride(from: 0, to: logits.count, by: max(columns, 1)) {
            let row = logits[start ..< start + columns]
            let top = row.max() ?? 0
            let exps = row.map { Double(exp($0 - top)) }   // shifted by the maximum, so no overflow
            let sum = exps.reduce(0, +)
            for (offset, value) in exps.enumerated() { probabilities[start + offset] = Float(value / sum) }
        }
        self.probabilities = probabilities
    }
}
