import Checkpoints
import Foundation
import Models
import SDSTraining
import Tensors

// The SDS-CLIP training step at real sizes; tools/bench/bench_sds.py runs it next to the torch reference.
//
// CLIP ViT-B/32 (the known-model table, QuickGELU, 224², 77 text positions) and the SD1.5 UNet
// (UNetConfiguration.sd1), seeded random weights (norm scales 1, biases 0), float32. Trainable: every
// LayerNorm of both towers + the pooled latent map h_w (Linear(512 → 4·S·S)); the rest is frozen.
// One step = zeroGrad, SDSStep.run (L_CLIP + λ·L_SDS, UNet micro-batches of MICRO samples, default 1),
// AdamW step (OptimizerSettings defaults). Inputs: random pixels [B, 3, 224, 224], ModelBench's token
// rows (7–26 real tokens), random teacher states [B, 77, 768] (as the trainer caches them), noise
// [B, 4, S, S], fixed timesteps. Timed: best of REPEATS after one warm-up step (wall seconds, and the
// process CPU seconds of that step). Threads: SDSCLIP_THREADS.
enum SDSBench {
    static let usage = "sds-step full|sds BATCH [REPEATS] [LATENT_SIDE] [MICRO_BATCH] [fp32|bf16|auto]"

    static let cases: [BenchCase] = [
        BenchCase(name: "sds-step", summary: "full|sds BATCH [REPEATS] [LATENT_SIDE] [MICRO] [PRECISION]: one SDS-CLIP step (B/32 + SD1.5 UNet, AdamW); seconds") { arguments in
            guard arguments.count >= 2, let gradient = SDSGradientMode(rawValue: arguments[0]),
                  let batch = Int(arguments[1]), batch >= 1 else {
                throw BenchUsage(usage)
            }
            func number(_ index: Int, _ fallback: Int) throws -> Int {
                guard arguments.count > index else { return fallback }
                guard let value = Int(arguments[index]), value > 0 else { throw BenchUsage(usage) }
                return value
            }
            let (repeats, side, micro) = (try number(2, 2), try number(3, 64), try number(4, 1))
            guard side % 8 == 0 else { throw BenchUsage(usage + " (the latent side must be a multiple of 8)") }

            var precision = Precision.fp32
            if arguments.count > 5 {
                guard let parsed = Precision(rawValue: arguments[5]) else { throw BenchUsage(usage) }
                precision = parsed
            }
            let choice = precision.resolved()
            let (step, optimizer, inputs) = try build(gradient: gradient, batch: batch, side: side, microBatch: micro)
            let notes = [try step.clip.registry.apply(choice, model: "CLIP"), try step.teacher.apply(choice)]
            FileHandle.standardError.write(Data(([choice.summary] + notes).joined(separator: "\n").appending("\n").utf8))
            var losses: SDSLosses?
            let time = try TensorBench.measure(repeats: repeats) {
                optimizer.zeroGrad()
                losses = try step.run(inputs)
                try optimizer.step()
            }
            let mapGradient = step.latentMap.weight.grad?.withUnsafeBufferPointer(StableDiffusionBench.sumOfMagnitudes) ?? .nan
            report(["case": "sds-step", "gradient": gradient.rawValue, "batch": batch, "latent": [batch, 4, side, side],
                    "micro_batch": micro, "seconds": time.wall, "cpu_seconds": time.cpu, "repeats": repeats,
                    "loss_clip": Double(losses?.clip ?? .nan), "loss_sds": Double(losses?.sds ?? .nan), "checksum": Double(mapGradient),
                    "trainable": optimizer.parameters.reduce(0) { $0 + $1.value.count },
                    "peak_rss_bytes": peakResidentBytes(), "threads": Threading.threadCount, "precision": precision.rawValue,
                    "bf16": choice.usesBFloat16])
        },
    ]

    static func build(gradient: SDSGradientMode, batch: Int, side: Int, microBatch: Int) throws -> (SDSStep, AdamW, SDSBatch) {
        guard let known = CLIPArchitecture.known.first(where: { $0.name == "ViT-B/32" }) else { throw BenchUsage("ViT-B/32 is not in the known-model table") }
        let clip = try CLIPModel(RandomParameterSource(seed: 1), configuration: known.configuration)
        let clipTrainable = TrainableSet.layernorm.select(in: clip.registry)
        clip.registry.unfreeze(clipTrainable)
        let latentMap = try LatentMap(kind: .pooled, side: side, inputWidth: clip.configuration.embedDimension,
                                      grid: clip.configuration.vision.gridSize, seed: 2)

        let unet = try UNet2DConditionModel(RandomParameterSource(seed: 3), configuration: .sd1)
        // The step never runs the teacher's text encoder (the conditioning is precomputed, as the trainer
        // caches it), so the teacher holds an empty stand-in and SD's 123M-parameter encoder stays out of
        // the memory figures, as on the torch side.
        let standIn = try CLIPTextTransformer(ParameterScope(RandomParameterSource(seed: 4)),
                                              configuration: CLIPTextConfiguration(vocabularySize: 1, contextLength: 77, width: 768, layers: 0, heads: 12))
        let teacher = SDSTeacher(unet: unet, textEncoder: standIn, schedule: try TeacherSchedule.standard(), version: .sd1)
        let step = SDSStep(clip: clip, latentMap: latentMap, teacher: teacher, lambda: 0.5, gradient: gradient, microBatch: microBatch)
        let optimizer = try OptimizerSettings().makeOptimizer(clip: clipTrainable, latentMap: latentMap.registry.entries)

        let size = clip.configuration.vision.imageSize
        let inputs = SDSBatch(pixels: Tensor.randn(shape: [batch, 3, size, size], seed: 5),
                              ids: ModelBench.tokenRows(batch: batch, context: clip.configuration.text.contextLength),
                              context: Tensor.randn(shape: [batch, 77, 768], seed: 6),
                              noise: Tensor.randn(shape: [batch, LatentMap.channels, side, side], seed: 7),
                              timesteps: timesteps(batch))
        return (step, optimizer, inputs)
    }

    /// Fixed timesteps spread over the schedule (the work does not depend on them).
    static func timesteps(_ batch: Int) -> [Int] {
        (0..<batch).map { 980 - (960 * $0) / max(batch - 1, 1) }
    }
}
