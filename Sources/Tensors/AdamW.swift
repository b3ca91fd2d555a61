import Foundation

/// AdamW with torch.optim.AdamW semantics (amsgrad = false, maximize = false), per parameter group:
///   θ ← θ·(1 − lr·λ);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
///   θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
/// Parameters without a gradient are skipped and their step count does not advance, as in torch.
/// State is keyed by parameter name, so a checkpoint survives a change of parameter order; names
/// must therefore be unique and non-empty.
public final class AdamW {
    /// Parameters sharing a learning rate and weight decay (torch's param_groups).
    public struct Group {
        public var name: String
        public var parameters: [Parameter]
        public var learningRate: Float
        public var weightDecay: Float
        public init(name: String, parameters: [Parameter], learningRate: Float, weightDecay: Float) {
            (self.name, self.parameters, self.learningRate, self.weightDecay) = (name, parameters, learningRate, weightDecay)
        }
    }

    /// Per-parameter optimiser state, exposed so a trainer can checkpoint and resume it.
    public struct ParameterState: Equatable {
        public var step: Int
        public var firstMoment: Tensor      // exp_avg
        public var secondMoment: Tensor     // exp_avg_sq
        public init(step: Int, firstMoment: Tensor, secondMoment: Tensor) {
            (self.step, self.firstMoment, self.secondMoment) = (step, firstMoment, secondMoment)
        }
        public static func == (a: ParameterState, b: ParameterState) -> Bool {
            a.step == b.step && a.firstMoment.shape == b.firstMoment.shape && a.firstMoment.scalars == b.firstMoment.scalars
                && a.secondMoment.shape == b.secondMoment.shape && a.secondMoment.scalars == b.secondMoment.scalars
        }
    }

    public var groups: [Group]
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    /// Parameter name → state; absent until that parameter's first update.
    public private(set) var states: [String: ParameterState] = [:]

    public init(groups: [Group], betas: (Float, Float) = (0.9, 0.999), epsilon: Float = 1e-8) throws {
        var seen = Set<String>()
        for parameter in groups.flatMap(\.parameters) {
            guard !parameter.name.isEmpty, seen.insert(parameter.name).inserted else {
                throw TensorError.invalidArgument(op: "AdamW", detail: "parameter names must be unique and non-empty (state is keyed by name); '\(parameter.name)' is not")
            }
        }
        self.groups = groups
        (beta1, beta2) = betas
        self.epsilon = epsilon
    }

    /// One group: every parameter with the same learning rate and weight decay.
    public convenience init(parameters: [Parameter], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            epsilon: Float = 1e-8, weightDecay: Float = 0.01) throws {
        try self.init(groups: [Group(name: "all", parameters: parameters, learningRate: learningRate, weightDecay: weightDecay)],
                      betas: betas, epsilon: epsilon)
    }

    public var parameters: [Parameter] { groups.flatMap(\.parameters) }

    /// Restores state saved from `states`. Every saved name must belong to a parameter of the same
    /// shape; parameters missing from `saved` start fresh.
    public func loadStates(_ saved: [String: ParameterState]) throws {
        let byName = Dictionary(parameters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, state) in saved {
            guard let parameter = byName[name] else {
                throw TensorError.invalidArgument(op: "AdamW.loadStates", detail: "saved state for '\(name)', which this optimiser does not train")
            }
            guard state.firstMoment.shape == parameter.shape, state.secondMoment.shape == parameter.shape, state.step >= 0 else {
                throw TensorError.shapeMismatch(op: "AdamW.loadStates",
                                                detail: "state of '\(name)' has moments \(state.firstMoment.shape)/\(state.secondMoment.shape), parameter is \(parameter.shape)")
            }
        }
        states = saved
    }

    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    public func step() throws {
        for group in groups {
            for parameter in group.parameters {
                try update(parameter, learningRate: group.learningRate, weightDecay: group.weightDecay)
            }
        }
    }

    private func update(_ parameter: Parameter, learningRate: Float, weightDecay: Float) throws {
        guard parameter.requiresGrad, let grad = parameter.grad else { return }
        guard grad.shape == parameter.shape else {
            throw TensorError.shapeMismatch(op: "AdamW.step", detail: "gradient \(grad.shape) for parameter '\(parameter.name)' \(parameter.shape)")
        }
        var state = states[parameter.name] ?? ParameterState(step: 0, firstMoment: Tensor(zeros: parameter.shape),
                                                             secondMoment: Tensor(zeros: parameter.shape))
        guard state.firstMoment.shape == parameter.shape, state.secondMoment.shape == parameter.shape else {
            throw TensorError.shapeMismatch(op: "AdamW.step", detail: "moments \(state.firstMoment.shape) for parameter '\(parameter.name)' \(parameter.shape) (value replaced with a new shape?)")
        }
        states[parameter.name] = nil   // drop the extra reference so the moments update in place
        state.step += 1
        // Bias corrections in Double as torch computes them in Python floats.
        let t = Double(state.step)
        let correction1 = 1 - Foundation.pow(Double(beta1), t)
        let correction2Root = Float((1 - Foundation.pow(Double(beta2), t)).squareRoot())
        let stepSize = Float(Double(learningRate) / correction1)
        let decay = 1 - learningRate * weightDecay
        let (b1, b2, eps) = (beta1, beta2, epsilon)
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
                            let denominator = pv[i].squareRoot() / correction2Root + eps
                            pt[i] -= stepSize * pm[i] / denominator
                        }
                    }
                }
            }
        }
        states[parameter.name] = state
    }
}
