import Checkpoints
import Evaluation
import Foundation
import Imaging
import Models
import Tensors

// The `eval --teacher` classifier on one Winoground-shaped item; tools/bench/bench_diffusion_eval.py runs
// it next to the same protocol in diffusers.
//
// Teacher: SD1.5 sizes with seeded random weights (UNetConfiguration.sd1, the VAE encoder of
// AutoencoderConfiguration.stableDiffusion, SD1's 12-layer 768-wide text encoder, SD's training schedule).
// Item: 2 random-pixel PNGs of 8·S × 8·S (written to a temporary folder) × 2 captions; timed is everything
// `eval` does for it: decode and resize, VAE encode, text encode, 2 × 2 × K UNet rows in batches.
// Timed: best of REPEATS, no warm-up (one item is minutes at SD size). Threads: SDSCLIP_THREADS.
enum DiffusionScoreBench {
    static let usage = "sd-diffusion-score [REPEATS] [LATENT_SIDE] [K] [BATCH]"

    static let cases: [BenchCase] = [
        BenchCase(name: "sd-diffusion-score", summary: "[REPEATS] [LATENT_SIDE] [K] [BATCH]: eval --teacher on one Winoground item (2 images × 2 captions × K), SD1.5 sizes; seconds") { arguments in
            let numbers = try arguments.map { text -> Int in
                guard let value = Int(text), value > 0 else { throw BenchUsage(usage) }
                return value
            }
            let defaults = [1, 64, DiffusionScoring.defaultTimesteps, 4]
            let (repeats, side, steps, batch) = (numbers.first ?? defaults[0], numbers.dropFirst().first ?? defaults[1],
                                                 numbers.dropFirst(2).first ?? defaults[2], numbers.dropFirst(3).first ?? defaults[3])
            guard side % 8 == 0 else { throw BenchUsage(usage + " (the latent side must be a multiple of 8)") }
            let teacher = try DiffusionTeacher(
                unet: UNet2DConditionModel(RandomParameterSource(seed: 1), configuration: .sd1),
                textEncoder: CLIPTextTransformer(ParameterScope(RandomParameterSource(seed: 6))["text_model"],
                                                 configuration: StableDiffusionStandardConfigurations.text(.sd1)),
                vae: AutoencoderKL(RandomParameterSource(seed: 3), configuration: .stableDiffusion, parts: .encoder),
                alphasCumprod: NoiseSchedule(precision: .float32).alphasCumprod.map { Float($0) },
                prediction: .epsilon, padID: Int(CLIPTokenizer.endOfTextID))
            let scorer = try DiffusionScorer(teacher: teacher, settings: DiffusionScoring(timesteps: steps, resolution: 8 * side, batchSize: batch))
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sdsclip-bench-diffusion-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            var generator = SplitMix64(seed: 11)
            let images = try (0..<2).map { index -> ImageReference in
                let pixels = (0..<(8 * side * 8 * side * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                let path = folder.appendingPathComponent("ex_0_img_\(index).png").path
                try PNGEncoder.encode(RGBImage(width: 8 * side, height: 8 * side, pixels: pixels)).write(to: URL(fileURLWithPath: path))
                return ImageReference(path: path)
            }
            let captions = ["a red cube to the left of a blue sphere", "a blue sphere to the left of a red cube"]
            var checksum = 0.0
            let seconds = try bestTime(repeats: repeats, warmup: false) {
                let table = try scorer.score(images.map { ($0, captions) })
                checksum = table.errors.values.reduce(0, +)
            }
            report(["case": "sd-diffusion-score", "latent": [side, side], "image": [8 * side, 8 * side], "timesteps": steps, "batch": batch,
                    "unet_rows": 4 * steps, "seconds": seconds, "repeats": repeats, "checksum": checksum,
                    "peak_rss_bytes": peakResidentBytes(), "threads": Threading.threadCount])
        },
    ]
}
