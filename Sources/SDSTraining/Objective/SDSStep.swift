import Models
import Tensors

/// How L_SDS reaches z0.
public enum SDSGradientMode: String, Sendable, Codable, CaseIterable {
    /// Back-propagate mean‖ε_θ(z_t, t, c) − target‖² through the frozen UNet.
    case full
    /// DreamFusion's score distillation: ∂L/∂z0 = w(t)·(ε̂ − target)·2/N with w(t) = 1 − ᾱ_t and N the
    /// number of latent elements; no UNet backward.
    case sds
}

/// Which CLIP parameters train (h_w always does).
public enum TrainableSet: String, Sendable, Codable, CaseIterable {
    /// Every LayerNorm of both towers (the paper's choice).
    case layernorm
    /// The image tower's LayerNorms only.
    case layernormImage = "layernorm-image"
    /// Every CLIP parameter.
    case all

    /// The registry entries this set names in a CLIP.
    public func select(in registry: ParameterRegistry) -> [RegisteredParameter] {
        switch self {
        case .layernorm: return registry.select(roles: ParameterRole.layerNorm)
        case .layernormImage: return registry.select(roles: ParameterRole.layerNorm, prefix: "vision_model")
        case .all: return registry.entries
        }
    }
}

/// The inputs of one SDS-CLIP step for a batch of B image–caption pairs.
public struct SDSBatch {
    /// Preprocessed images [B, 3, R, R].
    public var pixels: Tensor
    /// CLIP token rows.
    public var ids: [[Int]]
    /// The teacher's conditioning c [B, L, D] (from `SDSTeacher.context`, usually cached).
    public var context: Tensor
    /// ε [B, 4, h, w].
    public var noise: Tensor
    /// t per sample, in the teacher's schedule.
    public var timesteps: [Int]

    public init(pixels: Tensor, ids: [[Int]], context: Tensor, noise: Tensor, timesteps: [Int]) {
        (self.pixels, self.ids, self.context, self.noise, self.timesteps) = (pixels, ids, context, noise, timesteps)
    }
}

/// The loss values of one step.
public struct SDSLosses: Sendable, Equatable {
    public var clip: Float
    public var sds: Float
    public var total: Float
}

/// One SDS-CLIP step: L = L_CLIP + λ·L_SDS, gradients accumulated into every trainable parameter of
/// CLIP and h_w. L_CLIP is the symmetric InfoNCE over the whole batch; the UNet runs in micro-batches:
/// each one's ∂L_SDS/∂z0 is computed on a detached copy of its z0 (through the UNet for `full`,
/// in closed form for `sds`), then CLIP and h_w get both losses in one backward of
/// L_CLIP + λ·Σ z0·∂L_SDS/∂z0. The gradients equal those of a single backward through everything,
/// while the UNet's graph is never larger than one micro-batch. A batch of one is accepted (its InfoNCE
/// is exactly 0, so only L_SDS trains; the benchmark's batch-1 case); `finetune` asks for B ≥ 2.
public struct SDSStep {
    public let clip: CLIPModel
    public let latentMap: LatentMap
    public let teacher: SDSTeacher
    public var lambda: Float
    public var gradient: SDSGradientMode
    /// Samples per UNet pass (bounds the UNet's activation memory).
    public var microBatch: Int

    public init(clip: CLIPModel, latentMap: LatentMap, teacher: SDSTeacher, lambda: Float, gradient: SDSGradientMode, microBatch: Int = 1) {
        (self.clip, self.latentMap, self.teacher, self.lambda, self.gradient) = (clip, latentMap, teacher, lambda, gradient)
        self.microBatch = max(microBatch, 1)
    }

    /// Runs the step and accumulates gradients (call the optimiser's zeroGrad between steps).
    public func run(_ batch: SDSBatch) throws -> SDSLosses {
        let b = batch.ids.count
        let side = latentMap.side
        guard b >= 1, batch.pixels.shape.first == b, batch.context.shape.first == b, batch.timesteps.count == b,
              batch.noise.shape == [b, LatentMap.channels, side, side] else {
            throw ModelError.invalidInput("an SDS batch needs B ≥ 1 matching rows: pixels \(batch.pixels.shape), \(b) captions, context \(batch.context.shape), noise \(batch.noise.shape) (expected [\(b), 4, \(side), \(side)]), \(batch.timesteps.count) timesteps")
        }
        // CLIP forward over the whole batch (InfoNCE needs every pair).
        let states = try clip.vision.hiddenStates(batch.pixels)
        let imageEmbeddings = try clip.projectImage(clip.vision.pool(states))
        let textEmbeddings = try clip.encodeText(batch.ids)
        let logits = try clip.trainingLogits(imageEmbeddings: imageEmbeddings, textEmbeddings: textEmbeddings)
        let targets = Array(0..<b)
        let lossCLIP = try (crossEntropy(logits, targets: targets) + crossEntropy(logits.transpose(0, 1), targets: targets)) * 0.5
        let z0 = try latentMap(latentMap.kind == .pooled ? imageEmbeddings : clip.vision.patchTokens(states))

        // ∂L_SDS/∂z0, micro-batch by micro-batch, and L_SDS itself.
        let (lossSDS, latentGradient) = try sdsGradient(z0: z0.detached, batch: batch)
        let surrogate = try (z0 * latentGradient).sum()
        let objective = try lossCLIP + surrogate * lambda
        if objective.requiresGrad { try objective.backward() }
        let clipValue = lossCLIP.item
        return SDSLosses(clip: clipValue, sds: lossSDS, total: clipValue + lambda * lossSDS)
    }

    /// L_SDS (mean over all B·4·h·w elements) and its gradient with respect to z0 (a constant tensor).
    func sdsGradient(z0: Tensor, batch: SDSBatch) throws -> (Float, Tensor) {
        let b = batch.ids.count
        let total = Float(z0.count)
        var gradients: [Tensor] = []
        var lossSum: Double = 0
        for start in stride(from: 0, to: b, by: microBatch) {
            let length = min(microBatch, b - start)
            let part = try z0.narrow(axis: 0, start: start, length: length)
            let noise = try batch.noise.narrow(axis: 0, start: start, length: length)
            let context = try batch.context.narrow(axis: 0, start: start, length: length)
            let steps = Array(batch.timesteps[start..<(start + length)])
            let alphaBars = try steps.map { try teacher.schedule.alphaBar($0) }
            let signal = try perSample(alphaBars.map { $0.squareRoot() }, like: part)
            let spread = try perSample(alphaBars.map { (1 - $0).squareRoot() }, like: part)
            let share = Float(part.count) / total   // this micro-batch's weight in the mean over all elements

            func target(_ z: Tensor) throws -> Tensor {
                switch teacher.schedule.prediction {
                case .epsilon: return noise
                case .vPrediction: return try signal * noise - spread * z.detached
                }
            }
            let times = steps.map(Float.init)
            switch gradient {
            case .full:
                let leaf = Parameter(part, requiresGrad: true, name: "z0")
                let z = leaf.tensor
                let noisy = try signal * z + spread * noise
                let prediction = try teacher.unet(noisy, timesteps: times, context: context)
                let loss = try mseLoss(prediction, target(z))
                lossSum += Double(loss.item) * Double(share)
                try (loss * share).backward()
                guard let g = leaf.grad else { throw ModelError.invalidInput("no gradient reached the latent") }
                gradients.append(g)
            case .sds:
                let (prediction, difference) = try withNoGrad { () throws -> (Tensor, Tensor) in
                    let noisy = try signal * part + spread * noise
                    let prediction = try teacher.unet(noisy, timesteps: times, context: context)
                    return (prediction, try prediction - target(part))
                }
                _ = prediction
                let loss = try withNoGrad { try (difference * difference).mean() }
                lossSum += Double(loss.item) * Double(share)
                let weight = try perSample(alphaBars.map { (1 - $0) * 2 / total }, like: part)
                gradients.append(try withNoGrad { try weight * difference })
            }
        }
        return (Float(lossSum), try withNoGrad { try concat(gradients, axis: 0) })
    }

    /// [n, 1, 1, 1] values broadcast over a [n, C, H, W] tensor.
    func perSample(_ values: [Float], like x: Tensor) throws -> Tensor {
        try Tensor(shape: [values.count, 1, 1, 1], data: values)
    }
}
