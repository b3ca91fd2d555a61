import Foundation
import Tensors

/// Sinusoidal timestep features (diffusers `get_timestep_embedding`, LDM `timestep_embedding`),
/// computed in Float32 in torch's order so values match the reference to rounding.
public enum TimestepEmbedding {
    /// [B, width]: `[cos(t·f), sin(t·f)]` when `flipSinToCos` (SD), else `[sin, cos]`;
    /// `f_i = exp(−ln(10000)·i / (width/2 − freqShift))`.
    public static func features(_ timesteps: [Float], width: Int, flipSinToCos: Bool = true, freqShift: Int = 0) throws -> Tensor {
        guard width > 0, width % 2 == 0 else {
            throw ModelError.invalidConfiguration("timestep embedding width \(width) must be positive and even")
        }
        let half = width / 2
        guard half - freqShift != 0 else { throw ModelError.invalidConfiguration("freq_shift \(freqShift) equals half the width") }
        let logPeriod = Float(-Foundation.log(10000.0))
        let divisor = Float(half - freqShift)
        let frequencies = (0..<half).map { Foundation.exp(logPeriod * Float($0) / divisor) }
        var values = [Float](repeating: 0, count: timesteps.count * width)
        let (first, second) = flipSinToCos ? (0, half) : (half, 0)   // offsets of cos and sin
        for (row, t) in timesteps.enumerated() {
            let base = row * width
            for i in 0..<half {
                let argument = t * frequencies[i]
                values[base + first + i] = Foundation.cos(argument)
                values[base + second + i] = Foundation.sin(argument)
            }
        }
        return try Tensor(shape: [timesteps.count, width], data: values)
    }
}

/// SD's DDPM noise schedule: "scaled_linear" betas (LDM calls it "linear"),
/// `β_t = (linspace(√β_start, √β_end, T)[t])²`, `ᾱ_t = ∏_{s≤t}(1 − β_s)`.
public struct NoiseSchedule: Equatable, Sendable {
    public let betas: [Double]
    public let alphasCumprod: [Double]

    public enum Precision: Sendable {
        /// LDM's register_schedule: numpy float64.
        case float64
        /// diffusers' schedulers: torch float32 throughout (linspace, square, cumprod).
        case float32
    }

    public init(betaStart: Double = 0.00085, betaEnd: Double = 0.012, steps: Int = 1000, precision: Precision = .float64) throws {
        guard steps >= 2, betaStart > 0, betaEnd >= betaStart, betaEnd < 1 else {
            throw ModelError.invalidConfiguration("a schedule needs ≥ 2 steps and 0 < beta_start ≤ beta_end < 1")
        }
        switch precision {
        case .float64:
            let (a, b) = (betaStart.squareRoot(), betaEnd.squareRoot())
            let step = (b - a) / Double(steps - 1)
            betas = (0..<steps).map { let root = a + Double($0) * step; return root * root }
            var product = 1.0
            alphasCumprod = betas.map { product *= 1 - $0; return product }
        case .float32:
            // torch.linspace in float32: start + i·step for the first half, end − (n−1−i)·step after.
            // diffusers takes the square roots in Python (float64) and hands them to linspace as float32.
            let (a, b) = (Float(betaStart.squareRoot()), Float(betaEnd.squareRoot()))
            let step = (b - a) / Float(steps - 1)
            let halfway = steps / 2
            let roots: [Float] = (0..<steps).map { $0 < halfway ? a + step * Float($0) : b - step * Float(steps - 1 - $0) }
            let betas32 = roots.map { $0 * $0 }
            var product: Float = 1
            alphasCumprod = betas32.map { product *= 1 - $0; return Double(product) }
            betas = betas32.map(Double.init)
        }
    }

    public var stepCount: Int { betas.count }

    public func alphaBar(_ t: Int) throws -> Double {
        guard alphasCumprod.indices.contains(t) else {
            throw ModelError.invalidInput("timestep \(t) is outside the schedule's 0..<\(stepCount)")
        }
        return alphasCumprod[t]
    }

    /// DDIM/PNDM "leading" timesteps with SD's steps_offset 1: `arange(0, N)·(T//N) + 1`, reversed.
    public func leadingTimesteps(count: Int, offset: Int = 1) throws -> [Int] {
        guard count > 0, count <= stepCount else { throw ModelError.invalidInput("\(count) inference steps for a \(stepCount)-step schedule") }
        let ratio = stepCount / count
        return (0..<count).reversed().map { $0 * ratio + offset }
    }

    /// PNDM with `skip_prk_steps` (SD1's default scheduler) runs the second step twice:
    /// 981, 961, 961, 941, … (its first PLMS step needs two evaluations).
    public func pndmTimesteps(count: Int, offset: Int = 1) throws -> [Int] {
        let leading = try leadingTimesteps(count: count, offset: offset)
        guard leading.count > 1 else { return leading }
        return [leading[0], leading[1]] + leading.dropFirst()
    }

    /// x_t = √ᾱ·x₀ + √(1−ᾱ)·ε (the forward noising).
    public func addNoise(_ x0: Tensor, noise: Tensor, timestep t: Int) throws -> Tensor {
        let alphaBar = try alphaBar(t)
        return try x0 * Float(alphaBar.squareRoot()) + noise * Float((1 - alphaBar).squareRoot())
    }

    /// x̂₀ from an ε-prediction: (x_t − √(1−ᾱ)·ε)/√ᾱ.
    public func predictedSample(fromEpsilon epsilon: Tensor, sample: Tensor, timestep t: Int) throws -> Tensor {
        let alphaBar = try alphaBar(t)
        return try (sample - epsilon * Float((1 - alphaBar).squareRoot())) * Float(1 / alphaBar.squareRoot())
    }

    /// x̂₀ from a v-prediction: √ᾱ·x_t − √(1−ᾱ)·v.
    public func predictedSample(fromVelocity v: Tensor, sample: Tensor, timestep t: Int) throws -> Tensor {
        let alphaBar = try alphaBar(t)
        return try sample * Float(alphaBar.squareRoot()) - v * Float((1 - alphaBar).squareRoot())
    }

    /// ε from a v-prediction: √(1−ᾱ)·x_t + √ᾱ·v.
    public func epsilon(fromVelocity v: Tensor, sample: Tensor, timestep t: Int) throws -> Tensor {
        let alphaBar = try alphaBar(t)
        return try sample * Float((1 - alphaBar).squareRoot()) + v * Float(alphaBar.squareRoot())
    }

    /// The v target for training: √ᾱ·ε − √(1−ᾱ)·x₀.
    public func velocity(sample x0: Tensor, noise: Tensor, timestep t: Int) throws -> Tensor {
        let alphaBar = try alphaBar(t)
        return try noise * Float(alphaBar.squareRoot()) - x0 * Float((1 - alphaBar).squareRoot())
    }
}

/// What a UNet's output means (not stored in the weights: SD1 and 2-base are ε, SD2 768-v is v).
public enum PredictionType: String, Codable, Sendable {
    case epsilon
    case velocity = "v_prediction"
}
