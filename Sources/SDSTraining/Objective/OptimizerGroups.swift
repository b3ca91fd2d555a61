import Models
import Tensors

/// AdamW parameter groups for SDS-CLIP: CLIP's trainables at one learning rate and h_w at another,
/// weight decay only where the layer's role takes it (matrices; never norms, biases, the class token
/// or the temperature).
public struct OptimizerSettings: Sendable, Equatable, Codable {
    public var clipLearningRate: Float
    public var mapLearningRate: Float
    public var weightDecay: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float

    public init(clipLearningRate: Float = 1e-5, mapLearningRate: Float = 1e-4, weightDecay: Float = 0.1,
                beta1: Float = 0.9, beta2: Float = 0.98, epsilon: Float = 1e-6) {
        (self.clipLearningRate, self.mapLearningRate, self.weightDecay) = (clipLearningRate, mapLearningRate, weightDecay)
        (self.beta1, self.beta2, self.epsilon) = (beta1, beta2, epsilon)
    }

    /// Four groups (names are stable: the scheduler scales each group's base rate).
    public func makeOptimizer(clip: [RegisteredParameter], latentMap: [RegisteredParameter]) throws -> AdamW {
        func split(_ entries: [RegisteredParameter], _ name: String, _ rate: Float) -> [AdamW.Group] {
            [AdamW.Group(name: "\(name)", parameters: entries.filter(\.role.takesWeightDecay).map(\.parameter),
                         learningRate: rate, weightDecay: weightDecay),
             AdamW.Group(name: "\(name)-no-decay", parameters: entries.filter { !$0.role.takesWeightDecay }.map(\.parameter),
                         learningRate: rate, weightDecay: 0)]
        }
        return try AdamW(groups: split(clip, "clip", clipLearningRate) + split(latentMap, "latent-map", mapLearningRate),
                         betas: (beta1, beta2), epsilon: epsilon)
    }

    /// The base learning rate of a group made by `makeOptimizer`.
    public func baseRate(ofGroup name: String) -> Float {
        name.hasPrefix("latent-map") ? mapLearningRate : clipLearningRate
    }
}
