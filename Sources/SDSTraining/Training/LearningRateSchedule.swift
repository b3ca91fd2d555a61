import Foundation

/// Linear warm-up from 0 to the peak rate over `warmupSteps`, then cosine decay to 0 at `totalSteps`
/// (open_clip's `cosine_lr`; the last step's rate is small but not 0). `factor(step)` is the multiplier of a group's peak rate for optimiser step
/// `step` (1-based, the step about to be taken).
public struct LearningRateSchedule: Sendable, Equatable {
    public let warmupSteps: Int
    public let totalSteps: Int

    public init(warmupSteps: Int, totalSteps: Int) {
        self.totalSteps = max(totalSteps, 1)
        self.warmupSteps = min(max(warmupSteps, 0), self.totalSteps)
    }

    public func factor(step: Int) -> Float {
        if step <= warmupSteps { return Float(step) / Float(max(warmupSteps, 1)) }
        let decaySteps = totalSteps - warmupSteps
        guard decaySteps > 0 else { return 1 }
        let progress = min(Double(step - warmupSteps - 1) / Double(decaySteps), 1)   // the first decay step runs at the peak
        return Float(0.5 * (1 + cos(Double.pi * progress)))
    }
}
