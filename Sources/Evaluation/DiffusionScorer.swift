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
    /// What the teacher's tokenizer pads caption rows with (SD1's pads with end-of-text, SD2's with 0).
    public let padID: Int

    /// Checks that the parts fit together; `source` names the teacher in errors.
    public init(unet: UNet2DConditionModel, textEncoder: CLIPTextTransformer, vae: AutoencoderKL, alphasCumprod: [Float],
                prediction: PredictionType, padID: Int, source: String = "the teacher") throws {
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
        guard vocabulary > Int(CLIPTokenizer.endOfTextID), padID >= 0, padID < vocabulary else {
            throw EvaluationError(file: source, "its text encoder has \(vocabulary) tokens, but CLIP's tokenizer uses ids up to \(CLIPTokenizer.endOfTextID) (pad \(padID)): "
                                  + "captions cannot be encoded with it")
        }
        guard alphasCumprod.count >= 1, alphasCumprod.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
            throw EvaluationError(file: source, "its noise schedule must have ᾱ_t in (0, 1] for every step")
        }
        (self.unet, self.textEncoder, self.vae, self.alphasCumprod, self.prediction, self.padID) = (unet, textEncoder, vae, alphasCumprod, prediction, padID)
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
    let tokenizer: CLIPTokenizer

    public init(teacher: DiffusionTeacher, settings: DiffusionScoring, tokenizer: CLIPTokenizer? = nil) throws {
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
        self.tokenizer = try tokenizer ?? CLIPTokenizer()
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
    /// that cannot be tokenized is recorded in the table's failures; the rest go on.
    public func score(_ pairs: [(image: ImageReference, captions: [String])], draws: DiffusionDraws? = nil,
                      progress: (EmbeddingProgress) -> Void = { _ in }) throws -> DiffusionPairTable {
        let draws = try draws ?? seededDraws()
        for (k, noise) in draws.noise.enumerated() where noise.shape != latentShape {
            throw EvaluationError(file: "diffusion draws", "noise \(k) is \(noise.shape), the latents are \(latentShape)")
        }
        for t in draws.timesteps where !teacher.alphasCumprod.indices.contains(t) {
            throw EvaluationError(file: "diffusion draws", "timestep \(t) is outside the teacher's schedule 0..<\(teacher.alphasCumprod.count)")
        }
        var table = DiffusionPairTable()
        return try withNoGrad {
            var seen = Set<String>()
            let captions = pairs.flatMap(\.captions).filter { seen.insert($0).inserted }
            let states = try encode(captions, into: &table, progress: progress)
            let latents = try encode(pairs.map(\.image), into: &table, progress: progress)
            try denoise(pairs, latents: latents, states: states, draws: draws, into: &table, progress: progress)
            return table
        }
    }

    /// Each caption's conditioning [L·D], in batches of 32 rows.
    func encode(_ captions: [String], into table: inout DiffusionPairTable, progress: (EmbeddingProgress) -> Void) throws -> [String: [Float]] {
        let length = teacher.textEncoder.configuration.contextLength
        var rows: [(caption: String, ids: [Int])] = []
        for caption in captions {
            do {
                rows.append((caption, try tokenizer.tokenize(caption, contextLength: length, padID: teacher.padID)))
            } catch {
                table.failures.captions[caption] = "cannot tokenize the caption: \(error)"
            }
        }
        var states: [String: [Float]] = [:]
        var done = captions.count - rows.count
        progress(EmbeddingProgress(stage: .captions, done: done, total: captions.count))
        for start in stride(from: 0, to: rows.count, by: 32) {
            let chunk = rows[start ..< min(start + 32, rows.count)]
            let values = try teacher.textEncoder.hiddenStates(chunk.map(\.ids)).scalars
            let size = values.count / chunk.count
            for (index, row) in chunk.enumerated() { states[row.caption] = Array(values[index * size ..< (index + 1) * size]) }
            done += chunk.count
            progress(EmbeddingProgress(stage: .captions, done: done, total: captions.count))
        }
        table.captionCount = states.count
        return states
    }

    /// Each image's z0 [C·h·w], one image per VAE pass (at 512 px a batch would only cost memory).
    func encode(_ images: [ImageReference], into table: inout DiffusionPairTable, progress: (EmbeddingProgress) -> Void) throws -> [ImageReference: [Float]] {
        var latents: [ImageReference: [Float]] = [:]
        let scale = teacher.vae.configuration.scalingFactor
        progress(EmbeddingProgress(stage: .latents, done: 0, total: images.count))
        for (index, image) in images.enumerated() {
            let decoded: RGBImage
            do {
                decoded = try BenchmarkImage.load(image)
            } catch {
                table.failures.images[image] = "\(error)"
                progress(EmbeddingProgress(stage: .latents, done: index + 1, total: images.count))
                continue
            }
            let pixels = preprocessor.process(decoded)
            let mean = try teacher.vae.latentMean(Tensor(shape: [1, 3, resolution, resolution], data: pixels))
            latents[image] = mean.scalars.map { $0 * scale }
            progress(EmbeddingProgress(stage: .latents, done: index + 1, total: images.count))
        }
        table.imageCount = latents.count
        return latents
    }

    /// The UNet over every (image, caption, timestep) row, `batchSize` rows per pass.
    func denoise(_ pairs: [(image: ImageReference, captions: [String])], latents: [ImageReference: [Float]], states: [String: [Float]],
                 draws: DiffusionDraws, into table: inout DiffusionPairTable, progress: (EmbeddingProgress) -> Void) throws {
        struct Row { let pair: PairKey; let z0: [Float]; let state: [Float]; let k: Int }
        var rows: [Row] = []
        for (image, captions) in pairs {
            guard let z0 = latents[image] else { continue }
            for caption in captions {
                guard let state = states[caption] else { continue }
                rows += draws.timesteps.indices.map { Row(pair: PairKey(caption: caption, image: image), z0: z0, state: state, k: $0) }
            }
        }
        let noise = draws.noise.map(\.scalars)
        let latentSize = latentShape.reduce(1, *)
        let stateShape = [teacher.textEncoder.configuration.contextLength, teacher.textEncoder.configuration.width]
        var sums: [PairKey: Double] = [:]
        progress(EmbeddingProgress(stage: .denoising, done: 0, total: rows.count))
        for start in stride(from: 0, to: rows.count, by: settings.batchSize) {
            let chunk = rows[start ..< min(start + settings.batchSize, rows.count)]
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
                                             context: Tensor(shape: [chunk.count] + stateShape, data: context)).scalars
            for (index, row) in chunk.enumerated() {
                var squares = 0.0
                for j in index * latentSize ..< (index + 1) * latentSize {
                    let difference = Double(predicted[j]) - Double(targets[j])
                    squares += difference * difference
                }
                sums[row.pair, default: 0] += squares / Double(latentSize)
            }
            progress(EmbeddingProgress(stage: .denoising, done: start + chunk.count, total: rows.count))
        }
        let count = Double(draws.timesteps.count)
        for (pair, sum) in sums { table.errors[pair] = sum / count }
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
