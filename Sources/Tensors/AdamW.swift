import Foundation

/// AdamW with torch.optim.AdamW semantics (amsgrad = false, maximize = false):
///   θ ← θ·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
///   θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
/// Parameters without a gradient are skipped and their step count does not advance, as in torch.
public final class AdamW {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    public let parameters: [Parameter]

    /// Per-parameter optimiser state, exposed so a trainer can checkpoint and resume it.
    public struct ParameterState {
        public var step: Int
        public var firstMoment: Tensor      // exp_avg
        public var secondMoment: Tensor     // exp_avg_sq
        public init(step: Int, firstMoment: Tensor, secondMoment: Tensor) {
            (self.step, self.firstMoment, self.secondMoment) = (step, firstMoment, secondMoment)
        }
    }

    /// Aligned with `parameters`; nil until that parameter's first update.
    public private(set) var states: [ParameterState?]

    public init(parameters: [Parameter], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters
        self.learningRate = learningRate
        (beta1, beta2) = betas
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        states = Array(repeating: nil, count: parameters.count)
    }

    /// Restores state saved from `states` (shapes must match the parameters).
    public func loadStates(_ saved: [ParameterState?]) throws {
        guard saved.count == parameters.count else {
            throw TensorError.shapeMismatch(op: "AdamW.loadStates", detail: "\(saved.count) states for \(parameters.count) parameters")
        }
        for (index, state) in saved.enumerated() {
            guard let state else { continue }
            let shape = parameters[index].shape
            guard state.firstMoment.shape == shape, state.secondMoment.shape == shape, state.step >= 0 else {
                throw TensorError.shapeMismatch(op: "AdamW.loadStates",
                                                detail: "state \(index) ('\(parameters[index].name)') has moments \(state.firstMoment.shape)/\(state.secondMoment.shape), parameter is \(shape)")
            }
        }
        states = saved
    }

    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    public func step() throws {
        for (index, parameter) in parameters.enumerated() {
            guard parameter.requiresGrad, let grad = parameter.grad else { continue }
            guard grad.shape == parameter.shape else {
                throw TensorError.shapeMismatch(op: "AdamW.step", detail: "gradient \(grad.shape) for parameter '\(parameter.name)' \(parameter.shape)")
            }
            var state = states[index] ?? ParameterState(step: 0, firstMoment: Tensor(zeros: parameter.shape),
                                                        secondMoment: Tensor(zeros: parameter.shape))
            guard state.firstMoment.shape == parameter.shape, state.secondMoment.shape == parameter.shape else {
                throw TensorError.shapeMismatch(op: "AdamW.step", detail: "moments \(state.firstMoment.shape) for parameter '\(parameter.name)' \(parameter.shape) (value replaced with a new shape?)")
            }
            states[index] = nil   // drop the extra reference so the moments update in place
            state.step += 1
            // Bias corrections in Double as torch computes them in Python floats.
            let t = Double(state.step)
            let correction1 = 1 - Foundation.pow(Double(beta1), t)
            let correction2Root = (1 - Foundation.pow(Double(beta2), t)).squareRoot()
            let stepSize = Float(Double(learningRate) / correction1)
            let decay = 1 - learningRate * weightDecay
            let (b1, b2, eps) = (beta1, beta2, epsilon)
            let correction2RootF = Float(correction2Root)
            let pg = grad.storage.pointer
            state.firstMoment.withUnsafeMutableBufferPointer { m in
                state.secondMoment.withUnsafeMutableBufferPointer { v in
                    parameter.value.withUnsafeMutableBufferPointer { theta in
                        guard let pm = m.baseAddress, let pv = v.baseAddress, let pt = theta.baseAddress else { return }
                        parallelFor(theta.count, grain: 1 << 14) { range in
                            for i in range {
                                let g = pg[i]
                                pt[i] *= decay
                                pm[i] += (g - pm[i]) * (1 - b1)              // lerp, as torch
                                pv[i] = pv[i] * b2 + (1 - b2) * g * g
                                let denominator = pv[i].squareRoot() / correction2RootF + eps
                                pt[i] -= stepSize * pm[i] / denominator
                            }
                        }
                    }
                }
            }
            states[index] = state
        }
    }
}
