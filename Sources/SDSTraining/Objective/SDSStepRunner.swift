import Checkpoints
import Foundation
import Models
import Tensors

/// The `sds-step` verify component: one SDS-CLIP training step on a bundle's fixed inputs, noise and
/// timesteps, compared with the torch reference (README: "Training-step bundles").
public enum SDSStepRunner {
    public static let runners: [String: ModelVerifier.Runner] = ["sds-step": run]

    public static func run(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> ModelVerifier.RunResult {
        guard let teacherPath = options.teacher else {
            let hint = bundle.metadata["teacher"].map { " (this bundle was made with \($0))" } ?? ""
            throw CheckpointError(file: bundle.path, "an sds-step bundle needs the Stable Diffusion teacher: pass --teacher SD_MODEL\(hint)")
        }
        func setting<T: RawRepresentable>(_ key: String, _ type: T.Type) throws -> T where T.RawValue == String {
            guard let raw = bundle.metadata[key], let value = T(rawValue: raw) else {
                throw CheckpointError(file: bundle.path, "__metadata__ '\(key)' is \(bundle.metadata[key].map { "'\($0)'" } ?? "missing"); expected one of the documented values")
            }
            return value
        }
        let mapper = try setting("mapper", LatentMapKind.self)
        let gradient = try setting("gradient", SDSGradientMode.self)
        let trainable = try setting("trainable", TrainableSet.self)
        guard let lambdaText = bundle.metadata["lambda"], let lambda = Float(lambdaText) else {
            throw CheckpointError(file: bundle.path, "__metadata__ 'lambda' must be a number")
        }

        let clip = try CLIPLoader.load(path, configuration: options.configuration).model
        let teacher = try SDSTeacher.load(teacherPath)
        let noise = try bundle.floatInput("noise")
        guard noise.rank == 4, noise.shape[1] == LatentMap.channels, noise.shape[2] == noise.shape[3] else {
            throw CheckpointError(file: bundle.path, "inputs.noise must be [B, 4, h, h], got \(noise.shape)")
        }
        let side = noise.shape[2]
        let inputWidth = mapper == .pooled ? clip.configuration.embedDimension : clip.configuration.vision.width
        let latentMap = try LatentMap(kind: mapper, side: side, inputWidth: inputWidth, grid: clip.configuration.vision.gridSize,
                                      initialWeight: bundle.floatInput("latent_map.weight"), initialBias: bundle.floatInput("latent_map.bias"))
        let clipTrainable = trainable.select(in: clip.registry)
        clip.registry.unfreeze(clipTrainable)
        let precisionNotes = [try clip.registry.apply(options.precision, model: "CLIP"), try teacher.apply(options.precision)]

        let pixels = try bundle.floatInput("pixel_values")
        let context = try teacher.context(bundle.idRows("teacher_input_ids"))
        let timesteps = try bundle.integers(bundle.input("timesteps"))
        let step = SDSStep(clip: clip, latentMap: latentMap, teacher: teacher, lambda: lambda, gradient: gradient, microBatch: 1)
        let losses = try step.run(SDSBatch(pixels: pixels, ids: bundle.idRows("input_ids"), context: context, noise: noise, timesteps: timesteps))

        var outputs: [String: Tensor] = ["loss_clip": .scalar(losses.clip), "loss_sds": .scalar(losses.sds), "loss": .scalar(losses.total)]
        let trained = clipTrainable + latentMap.registry.entries
        for entry in trained {
            outputs["grad.\(entry.name)"] = entry.parameter.grad ?? Tensor(zeros: entry.parameter.shape)
        }
        var notes = teacher.notes + ["\(mapper.rawValue) latent map \(side)×\(side), gradient \(gradient.rawValue), λ \(lambdaText), \(trained.count) trainable tensors (\(trainable.rawValue) + h_w)"] + precisionNotes
        // The optional optimiser check: one AdamW step from zero state with the bundle's settings. Not under
        // bf16: AdamW's first step moves each element by ±lr whatever the gradient's size, so an element whose
        // gradient is near 0 flips its step under any rounding; the gradients themselves are compared.
        if options.precision.usesBFloat16 {
            let reason = "updated.* under bf16: AdamW's first step is ±lr per element, so a gradient element near 0 flips its step under any rounding (the gradients are compared)"
            let uncompared = Dictionary(uniqueKeysWithValues: bundle.outputNames.filter { $0.hasPrefix("updated.") }.map { ($0, reason) })
            return ModelVerifier.RunResult(outputs: outputs, notes: notes, uncompared: uncompared)
        }
        if let clipRate = bundle.metadata["lr_clip"].flatMap(Float.init), let mapRate = bundle.metadata["lr_map"].flatMap(Float.init) {
            let betas = (bundle.metadata["betas"] ?? "0.9,0.999").split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
            let settings = OptimizerSettings(clipLearningRate: clipRate, mapLearningRate: mapRate,
                                             weightDecay: bundle.metadata["weight_decay"].flatMap(Float.init) ?? 0,
                                             beta1: betas.first ?? 0.9, beta2: betas.count > 1 ? betas[1] : 0.999,
                                             epsilon: bundle.metadata["eps"].flatMap(Float.init) ?? 1e-8)
            let optimizer = try settings.makeOptimizer(clip: clipTrainable, latentMap: latentMap.registry.entries)
            try optimizer.step()
            for entry in trained { outputs["updated.\(entry.name)"] = entry.parameter.value }
            notes.append("one AdamW step: lr clip \(clipRate), lr map \(mapRate), weight decay \(settings.weightDecay)")
        }
        return ModelVerifier.RunResult(outputs: outputs, notes: notes)
    }
}
