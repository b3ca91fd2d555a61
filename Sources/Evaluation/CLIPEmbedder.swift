import Checkpoints
import Imaging
import Models
import Tensors

/// How far embedding (or the teacher's scoring) has got, for a progress display.
public struct EmbeddingProgress: Sendable, Equatable {
    public enum Stage: String, Sendable {
        case images, captions
        /// The teacher: each image and its captions encoded, then its UNet over (caption, image, timestep) rows.
        case denoising

        /// What the stage does, for a progress line.
        public var activity: String {
            switch self {
            case .images, .captions: return "embedding \(rawValue)"
            case .denoising: return "denoising caption × image × timestep rows"
            }
        }
    }
    public let stage: Stage
    public let done: Int
    public let total: Int
}

/// Embeds images and captions with one CLIP in batches: images decoded and preprocessed as
/// `sdsclip embed` does (Pillow-exact), captions tokenized with CLIP's tokenizer. An image that cannot
/// be read or decoded, or a caption that cannot be tokenized, is recorded in the table's failures and
/// the rest of its batch goes on.
public struct CLIPEmbedder {
    public let model: CLIPModel
    public let batchSize: Int
    let preprocessor: CLIPPreprocessor
    let tokenizer: CLIPTokenizer

    public init(model: CLIPModel, tokenizer: CLIPTokenizer? = nil, batchSize: Int = 32, source: String = "the model") throws {
        guard batchSize > 0 else { throw EvaluationError(file: source, "the batch size must be positive, got \(batchSize)") }
        let tokenizer = try tokenizer ?? CLIPTokenizer()
        let vocabulary = model.configuration.text.vocabularySize
        guard vocabulary >= tokenizer.vocabulary.tokenCount else {
            throw EvaluationError(file: source, "its text vocabulary has \(vocabulary) tokens, but its tokenizer uses ids up to \(tokenizer.vocabulary.tokenCount - 1): "
                                  + "captions cannot be embedded with it (a model with its own vocabulary needs its vocab.json and merges.txt in its folder)")
        }
        self.model = model
        self.batchSize = batchSize
        self.preprocessor = try CLIPPreprocessor(resolution: model.configuration.vision.imageSize)
        self.tokenizer = tokenizer
    }

    /// Embeddings of every distinct image and caption given (repeats are embedded once).
    public func embed(images: [ImageReference], captions: [String],
                      progress: (EmbeddingProgress) -> Void = { _ in }) throws -> EmbeddingTable {
        var table = EmbeddingTable(dimension: model.configuration.embedDimension)
        try withNoGrad {
            try embedImages(distinct(images), into: &table, progress: progress)
            try embedCaptions(distinct(captions), into: &table, progress: progress)
        }
        return table
    }

    func embedImages(_ images: [ImageReference], into table: inout EmbeddingTable, progress: (EmbeddingProgress) -> Void) throws {
        var done = 0
        progress(EmbeddingProgress(stage: .images, done: 0, total: images.count))
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let chunk = images[start ..< min(start + batchSize, images.count)]
            var decoded: [RGBImage] = [], kept: [ImageReference] = []
            for reference in chunk {
                do {
                    decoded.append(try BenchmarkImage.load(reference))
                    kept.append(reference)
                } catch {
                    table.fail(image: reference, reason: "\(error)")
                }
            }
            if !decoded.isEmpty {
                let batch = preprocessor.processBatch(decoded)
                let embeddings = try model.encodeImage(Tensor(shape: batch.shape, data: batch.values))
                table.add(images: kept, values: embeddings.scalars)
            }
            done += chunk.count
            progress(EmbeddingProgress(stage: .images, done: done, total: images.count))
        }
    }

    func embedCaptions(_ captions: [String], into table: inout EmbeddingTable, progress: (EmbeddingProgress) -> Void) throws {
        let contextLength = model.configuration.text.contextLength
        var rows: [(caption: String, ids: [Int], length: Int)] = []
        for caption in captions {
            do {
                let ids = try tokenizer.tokenize(caption, contextLength: contextLength)
                rows.append((caption, ids, (ids.firstIndex(of: tokenizer.endOfText) ?? ids.count) + 1))
            } catch {
                table.fail(caption: caption, reason: "cannot tokenize the caption: \(error)")
            }
        }
        // The text tower runs each batch only up to its longest caption: batch captions of similar length.
        rows.sort { $0.length != $1.length ? $0.length < $1.length : $0.caption < $1.caption }
        var done = captions.count - rows.count
        progress(EmbeddingProgress(stage: .captions, done: done, total: captions.count))
        for start in stride(from: 0, to: rows.count, by: batchSize) {
            let chunk = rows[start ..< min(start + batchSize, rows.count)]
            let embeddings = try model.encodeText(chunk.map(\.ids))
            table.add(captions: chunk.map(\.caption), values: embeddings.scalars)
            done += chunk.count
            progress(EmbeddingProgress(stage: .captions, done: done, total: captions.count))
        }
    }

    func distinct<T: Hashable>(_ values: [T]) -> [T] {
        var seen = Set<T>()
        return values.filter { seen.insert($0).inserted }
    }
}
