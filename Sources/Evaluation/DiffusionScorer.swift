import Foundation
import Imaging
import Models
import Tensors

/// The parts of a Stable Diffusion teacher that score a caption against an image: the VAE encoder makes
/// the image's latent, the text encoder the caption's conditioning, the UNet denoises.
public struct DiffusionTeacher {
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextTransformer
    public let vae: AutoencoderKL
    /// ᾱ_t of the training schedule, t = 0..<T (float32, as diffusers' schedulers hold it).
    public let alphasCumprod: [Float]
    public let prediction: PredictionType
    /// The teacher's own tokenizer (its pipeline's `tokenizer/`, else the built-in vocabulary).
    public let tokenizer: CLIPTokenizer
    /// What the teacher's tokenizer pads caption rows with (SD1's pads with end-of-text, SD2's with 0).
    public let padID: Int

    /// Checks that the parts fit together; `source` names the teacher in errors.
    public init(unet: UNet2DConditionModel, textEncoder: CLIPTextTransformer, vae: AutoencoderKL, alphasCumprod: [Float],
                prediction: PredictionType, padID: Int, tokenizer: CLIPTokenizer? = nil, source: String = "the teacher") throws {
        let tokenizer = try tokenizer ?? CLIPTokenizer()
        guard vae.encoder != nil else {
            throw EvaluationError(file: source, "the diffusion-score classifier encodes images with the teacher's VAE encoder, but none was loaded")
        }
        guard vae.configuration.latentChannels == unet.configuration.inChannels else {
            throw EvaluationError(file: source, "its VAE makes \(vae.configuration.latentChannels)-channel latents but its UNet takes \(unet.configuration.inChannels) channels")
        }
        let widths = try unet.configuration.crossAttentionDims()
        guard widths.allSatisfy({ $0 == textEncoder.configuration.width }) else {
            throw EvaluationError(file: source, "its UNet attends to \(widths.first ?? 0)-wide text states (cross_attention_dim) but its text encoder is \(textEncoder.configuration.width) wide")
        }
        let vocabulary = textEncoder.configuration.vocabularySize
        let tokens = tokenizer.vocabulary.tokenCount
        guard tokens <= vocabulary, padID >= 0, padID < vocabulary else {
            throw EvaluationError(file: source, "its text encoder has \(vocabulary) tokens, but its tokenizer uses ids up to \(tokens - 1) (pad \(padID)): "
                                  + "captions cannot be encoded with it (a pipeline with a small vocabulary ships it as tokenizer/vocab.json + merges.txt)")
        }
        guard alphasCumprod.count >= 1, alphasCumprod.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw EvaluationError(file: source, "its noise schedule must have ᾱ_t in (0, 1] for every step")
        }
        (self.unet, self.textEncoder, self.vae, self.alphasCumprod, self.prediction, self.padID) = (unet, textEncoder, vae, alphasCumprod, prediction, padID)
        self.tokenizer = tokenizer
    }

    /// The image side the teacher was trained at: the UNet's `sample_size` × the VAE's downsampling,
    /// else the VAE's `sample_size`, else SD's 512.
    public var nativeResolution: Int {
        unet.configuration.sampleSize.map { $0 * vae.configuration.spatialFactor } ?? vae.configuration.sampleSize ?? 512
    }

    /// Image sides must be multiples of this (the VAE's downsampling × the UNet's).
    public var sizeMultiple: Int { vae.configuration.spatialFactor * unet.sizeMultiple }
}

/// The diffusion-score classifier's settings (Diffusion Classifier, Li et al. 2023; DiffusionITM,
/// Krojer et al. 2023).
public struct DiffusionScoring: Sendable, Equatable {
    /// K: timesteps per pair.
    public var timesteps: Int
    /// Seeds the noise ε_k.
    public var seed: UInt64
    /// The square the image is resized and centre-cropped to; nil: the teacher's native resolution.
    public var resolution: Int?
    /// UNet rows (caption × image × timestep) per forward pass.
    public var batchSize: Int

    public static let defaultTimesteps = 10

    public init(timesteps: Int = defaultTimesteps, seed: UInt64 = 0, resolution: Int? = nil, batchSize: Int = 4) {
        (self.timesteps, self.seed, self.resolution, self.batchSize) = (timesteps, seed, resolution, batchSize)
    }
}

/// The timesteps t_k and noise ε_k of a run. Every pair uses the same K draws: the noise is shared by all
/// captions of an image (and by all images), so two captions' errors differ only by their conditioning.
public struct DiffusionDraws {
    public let timesteps: [Int]
    /// ε_k, each of the latent's shape [C, h, w].
    public let noise: [Tensor]

    public init(timesteps: [Int], noise: [Tensor]) throws {
        guard !timesteps.isEmpty, timesteps.count == noise.count else {
            throw EvaluationError(file: "diffusion draws", "\(timesteps.count) timesteps and \(noise.count) noise tensors: expected as many of each, at least one")
        }
        (self.timesteps, self.noise) = (timesteps, noise)
    }

    /// Diffusion Classifier's evenly spaced timesteps: T/K apart from T/K/2 (integer division), so
    /// K = 10 over T = 1000 gives 50, 150, …, 950.
    public static func evenlySpaced(count: Int, steps: Int) throws -> [Int] {
        guard count >= 1, count <= steps else {
            throw EvaluationError(file: "--teacher-timesteps", "K = \(count) timesteps must be 1 to the schedule's \(steps)")
        }
        let spacing = steps / count
        return (0..<count).map { spacing / 2 + $0 * spacing }
    }

    /// The CLI's draws: evenly spaced timesteps; ε_k standard normal, drawn in order k = 0..<K from one
    /// SplitMix64 stream seeded with `seed` (Box–Muller, `Tensor.randn(shape:generator:)`).
    public static func seeded(count: Int, steps: Int, latentShape: [Int], seed: UInt64) throws -> DiffusionDraws {
        var generator = SplitMix64(seed: seed)
        let noise = (0..<count).map { _ in Tensor.randn(shape: latentShape, generator: &generator) }
        return try DiffusionDraws(timesteps: evenlySpaced(count: count, steps: steps), noise: noise)
    }
}

/// Scores caption-image pairs by the teacher's denoising error:
///   z0 = scaling_factor · mean of the VAE posterior of the image (no sampling), the image resized
///        (shorter side, Pillow's bicubic) and centre-cropped to R × R, scaled to [−1, 1];
///   error(c, i) = (1/K) Σ_k mean ‖ε_θ(√ᾱ_k z0 + √(1−ᾱ_k) ε_k, t_k, text(c)) − target_k‖²,
///        target ε_k for ε-prediction, √ᾱ_k ε_k − √(1−ᾱ_k) z0 for v-prediction;
///   s(c, i) = −error(c, i).
/// Captions are tokenized as the teacher's pipeline does (77 ids padded with its pad id) and encoded once;
/// each image is encoded once.
public struct DiffusionScorer {
    public let teacher: DiffusionTeacher
    public let settings: DiffusionScoring
    public let resolution: Int
    let preprocessor: CLIPPreprocessor

    public init(teacher: DiffusionTeacher, settings: DiffusionScoring) throws {
        let resolution = settings.resolution ?? teacher.nativeResolution
        guard resolution > 0, resolution % teacher.sizeMultiple == 0 else {
            throw EvaluationError(file: "--teacher-resolution", "\(resolution) px: the teacher needs a positive multiple of \(teacher.sizeMultiple)")
        }
        guard settings.batchSize > 0 else { throw EvaluationError(file: "--teacher-batch-size", "must be positive, got \(settings.batchSize)") }
        _ = try DiffusionDraws.evenlySpaced(count: settings.timesteps, steps: teacher.alphasCumprod.count)
        self.teacher = teacher
        self.settings = settings
        self.resolution = resolution
        preprocessor = try CLIPPreprocessor(resolution: resolution, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
    }

    /// [C, h, w] of a latent.
    public var latentShape: [Int] {
        let side = resolution / teacher.vae.configuration.spatialFactor
        return [teacher.vae.configuration.latentChannels, side, side]
    }

    /// The run's draws from the settings' seed.
    public func seededDraws() throws -> DiffusionDraws {
        try DiffusionDraws.seeded(count: settings.timesteps, steps: teacher.alphasCumprod.count, latentShape: latentShape, seed: settings.seed)
    }

    /// The protocol in a line, for the report.
    public func describe(_ draws: DiffusionDraws) -> String {
        let shown = draws.timesteps.count > 4 ? draws.timesteps.prefix(3).map(String.init) + ["…", String(draws.timesteps.last ?? 0)] : draws.timesteps.map(String.init)
        return "−(denoising error of the teacher), mean over K = \(draws.timesteps.count) timesteps (\(shown.joined(separator: ", "))), "
            + "noise shared across captions (seed \(settings.seed)), \(resolution) px, \(teacher.prediction.rawValue) target"
    }

    /// The errors of every pair asked for (`Evaluator.pairs`). An image that cannot be read or a caption
    /// that cannot be tokenized is recorded in the table's failures; the rest go on. Images are taken in
    /// order: each is encoded when its rows are made, and a caption's text states are kept only until the
    /// last image that needs them, so memory does not grow with the benchmark (ARO has 50 000 captions).
    public func score(_ pairs: [(image: ImageReference, captions: [String])], draws: DiffusionDraws? = nil,
                      progress: (EmbeddingProgress) -> Void = { _ in }) throws -> DiffusionPairTable {
        let draws = try draws ?? seededDraws()
        for (k, noise) in draws.noise.enumerated() where noise.shape != latentShape {
            throw EvaluationError(file: "diffusion draws", "noise \(k) is \(noise.shape), the latents are \(latentShape)")
        }
        for t in draws.timesteps where !teacher.alphasCumprod.indices.contains(t) {
            throw EvaluationError(file: "diffusion draws", "timestep \(t) is outside the teacher's schedule 0..<\(teacher.alphasCumprod.count)")
        }
        var remaining: [String: Int] = [:]
        for (_, captions) in pairs { for caption in captions { remaining[caption, default: 0] += 1 } }
        let steps = draws.timesteps.count
        let total = pairs.reduce(0) { $0 + $1.captions.count } * steps
        var table = DiffusionPairTable()
        var batch = DenoisingBatch(teacher: teacher, draws: draws, latentShape: latentShape)
        var states: [String: [Float]] = [:]
        var encoded = Set<String>()
        var (done, reported) = (0, 0)
        progress(EmbeddingProgress(stage: .denoising, done: 0, total: total))
        try withNoGrad {
            for (image, captions) in pairs {
                let fresh = captions.filter { !encoded.contains($0) && table.failures.captions[$0] == nil }
                for (caption, state) in try encode(fresh, into: &table) {
                    states[caption] = state
                    encoded.insert(caption)
                }
                let z0 = try latent(of: image, into: &table)
                for caption in captions {
                    if let z0, let state = states[caption] {
                        for k in 0..<steps { batch.rows.append(DenoisingBatch.Row(pair: PairKey(caption: caption, image: image), z0: z0, state: state, k: k)) }
                    } else {
                        done += steps
                    }
                    remaining[caption, default: 1] -= 1
                    if remaining[caption] == 0 { states[caption] = nil }
                }
                while batch.rows.count >= settings.batchSize {
                    done += try batch.run(settings.batchSize)
                    progress(EmbeddingProgress(stage: .denoising, done: done, total: total))
                    reported = done
                }
            }
            if !batch.rows.isEmpty { done += try batch.run(batch.rows.count) }
        }
        if done != reported { progress(EmbeddingProgress(stage: .denoising, done: done, total: total)) }
        for (pair, sum) in batch.sums { table.errors[pair] = sum / Double(steps) }
        table.captionCount = encoded.count
        return table
    }

    /// The conditioning [L·D] of each caption that can be tokenized, in one text-encoder pass.
    func encode(_ captions: [String], into table: inout DiffusionPairTable) throws -> [(String, [Float])] {
        let length = teacher.textEncoder.configuration.contextLength
        var rows: [(caption: String, ids: [Int])] = []
        for caption in captions {
            do {
                rows.append((caption, try teacher.tokenizer.tokenize(caption, contextLength: length, padID: teacher.padID)))
            } catch {
                table.failures.captions[caption] = "cannot tokenize the caption: \(error)"
            }
        }
        guard !rows.isEmpty else { return [] }
        let values = try teacher.textEncoder.hiddenStates(rows.map(\.ids)).scalars
        let size = values.count / rows.count
        return rows.enumerated().map { index, row in (row.caption, Array(values[index * size ..< (index + 1) * size])) }
    }

    /// z0 [C·h·w] of an image, nil (recorded in the table) when it cannot be read or decoded.
    func latent(of image: ImageReference, into table: inout DiffusionPairTable) throws -> [Float]? {
        let decoded: RGBImage
        do {
            decoded = try BenchmarkImage.load(image)
        } catch {
            table.failures.images[image] = "\(error)"
            return nil
        }
        let pixels = preprocessor.process(decoded)
        let mean = try teacher.vae.latentMean(Tensor(shape: [1, 3, resolution, resolution], data: pixels))
        table.imageCount += 1
        let scale = teacher.vae.configuration.scalingFactor
        return mean.scalars.map { $0 * scale }
    }
}

/// (caption, image, timestep) rows waiting for the UNet, and the running sums of their errors.
struct DenoisingBatch {
    struct Row {
        let pair: PairKey
        let z0: [Float]
        let state: [Float]
        let k: Int
    }

    let teacher: DiffusionTeacher
    let draws: DiffusionDraws
    let latentShape: [Int]
    let noise: [[Float]]
    var rows: [Row] = []
    /// Σ_k of each pair's mean squared error.
    var sums: [PairKey: Double] = [:]

    init(teacher: DiffusionTeacher, draws: DiffusionDraws, latentShape: [Int]) {
        (self.teacher, self.draws, self.latentShape) = (teacher, draws, latentShape)
        noise = draws.noise.map(\.scalars)
    }

    /// Runs the first `count` rows through the UNet in one pass; returns how many ran.
    mutating func run(_ count: Int) throws -> Int {
        let chunk = rows.prefix(count)
        let latentSize = latentShape.reduce(1, *)
        let text = teacher.textEncoder.configuration
        var inputs: [Float] = [], targets: [Float] = [], context: [Float] = []
        inputs.reserveCapacity(chunk.count * latentSize)
        targets.reserveCapacity(chunk.count * latentSize)
        for row in chunk {
            // float32 as diffusers' add_noise: √ᾱ and √(1−ᾱ) from the float32 ᾱ_t.
            let alphaBar = teacher.alphasCumprod[draws.timesteps[row.k]]
            let (signal, spread) = (alphaBar.squareRoot(), (1 - alphaBar).squareRoot())
            let epsilon = noise[row.k]
            for j in 0..<latentSize {
                inputs.append(signal * row.z0[j] + spread * epsilon[j])
                targets.append(teacher.prediction == .epsilon ? epsilon[j] : signal * epsilon[j] - spread * row.z0[j])
            }
            context += row.state
        }
        let predicted = try teacher.unet(Tensor(shape: [chunk.count] + latentShape, data: inputs),
                                         timesteps: chunk.map { Float(draws.timesteps[$0.k]) },
                                         context: Tensor(shape: [chunk.count, text.contextLength, text.width], data: context)).scalars
        for (index, row) in chunk.enumerated() {
            var squares = 0.0
            for j in index * latentSize ..< (index + 1) * latentSize {
                let difference = Double(predicted[j]) - Double(targets[j])
                squares += difference * difference
            }
            sums[row.pair, default: 0] += squares / Double(latentSize)
        }
        rows.removeFirst(chunk.count)
        return chunk.count
    }
}

/// A caption scored against an image.
public struct PairKey: Hashable, Sendable {
    public let caption: String
    public let image: ImageReference

    public init(caption: String, image: ImageReference) {
        self.caption = caption
        self.image = image
    }
}

/// The teacher's denoising error of every pair scored; s(c, i) = −error.
public struct DiffusionPairTable: PairScores {
    public internal(set) var errors: [PairKey: Double] = [:]
    var failures = (images: [ImageReference: String](), captions: [String: String]())
    var imageCount = 0
    var captionCount = 0

    public func error(caption: String, image: ImageReference) -> Double? { errors[PairKey(caption: caption, image: image)] }

    public func score(caption: String, image: ImageReference) -> Double? { error(caption: caption, image: image).map { -$0 } }

    public func imageFailure(_ image: ImageReference) -> String? { failures.images[image] }

    public func captionFailure(_ caption: String) -> String? { failures.captions[caption] }

    public var inputs: ScoredInputs {
        ScoredInputs(images: imageCount, captions: captionCount, failedImages: failures.images.count, failedCaptions: failures.captions.count)
    }
}
