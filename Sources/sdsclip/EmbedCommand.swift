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
        abstract: "Compute CLIP embeddings of images or texts.",
        discussion: """
        Images are decoded (JPEG, PNG), resized (bicubic, shortest side), centre-cropped and normalised as CLIP \
        does. Embeddings are projected and unnormalised; with --output they are written as a safetensors file \
        (image_embeds or text_embeds, [N, E]), otherwise printed with their cosine similarities. A standalone \
        text encoder (transformers CLIPTextModel[WithProjection]) embeds texts only: projected when it has a \
        projection, else its pooled output (pooler_output, [N, W]).
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

    @Option(help: "Write the embeddings to this safetensors file.")
    var output: String?

    @OptionGroup var safety: WeightSafetyOptions

    /// Image or text embeddings from a full CLIP, or text embeddings from a text tower alone.
    func embed(_ loaded: LoadedCLIPModel) throws -> (String, Tensor) {
        switch loaded {
        case .full(let clip):
            for note in clip.notes { printError("note: \(note)") }
            if !images.isEmpty {
                let preprocessor = try CLIPPreprocessor(resolution: clip.model.configuration.vision.imageSize)
                let batch = try preprocessor.processBatch(paths: images)
                return ("image_embeds", try clip.model.encodeImage(Tensor(shape: batch.shape, data: batch.values)))
            }
            let ids = try ModelTokenizer.forCLIP(at: model).tokenize(texts, contextLength: clip.model.configuration.text.contextLength)
            return ("text_embeds", try clip.model.encodeText(ids))
        case .textOnly(let text):
            for note in text.notes { printError("note: \(note)") }
            guard images.isEmpty else {
                throw ValidationError("\(model) is a CLIP text encoder without a vision tower: it embeds --text only, not --image")
            }
            let ids = try ModelTokenizer.forTextEncoder(at: model).tokenize(texts, contextLength: text.encoder.configuration.contextLength)
            // Projected (text_embeds) when the tower has a projection, else the pooled state (pooler_output).
            return (text.encoder.projectionDimension == nil ? "pooler_output" : "text_embeds", try text.encoder.embed(ids))
        }
    }

    func validate() throws {
        guard images.isEmpty != texts.isEmpty else { throw ValidationError("give either --image files or --text strings") }
    }

    func run() throws {
        try reportingErrors {
            try safety.admit([model])
            let loaded = try CLIPLoader.loadAny(model, configuration: config)
            let (name, embeddings) = try withNoGrad { try embed(loaded) }
            if let output {
                try SafetensorsWriter.write([SafetensorsWriter.Tensor(name: name, shape: embeddings.shape, floats: embeddings.scalars)],
                                            metadata: ["model": model], to: output,
                                            options: WriteOptions(protected: ProtectedFiles(paths: [model] + images + [config].compactMap { $0 })))
                printError("wrote \(output): \(name) \(embeddings.shape)")
                return
            }
            let labels = images.isEmpty ? texts : images
            let rows = embeddings.shape[0], width = embeddings.shape[1]
            let values = embeddings.scalars
            for row in 0..<rows {
                let slice = values[row * width ..< (row + 1) * width]
                print("\(labels[row]): [" + slice.prefix(8).map { String(format: "%.4f", $0) }.joined(separator: ", ") + (width > 8 ? ", …]" : "]"))
            }
            if rows > 1 {
                let normalised = try l2Normalize(embeddings, axis: -1)
                let similarity = try matmul(normalised, normalised.transpose(0, 1)).scalars
                print("cosine similarity:")
                for row in 0..<rows {
                    print((0..<rows).map { String(format: "%7.4f", similarity[row * rows + $0]) }.joined(separator: " "))
                }
            }
        }
    }
}
