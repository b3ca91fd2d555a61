import CTensorKernels
import Dispatch

/// The compute precision a user asks for (`--precision`).
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// Everything in float32 (the default, as torch).
    case fp32
    /// Frozen matrices (linear and convolution weights that train nothing) rounded to bf16 once, their
    /// inputs rounded to bf16 per call, products accumulated in float32; everything trained, every norm,
    /// softmax and activation stays float32. On a CPU without AVX512-BF16 the same numbers are computed
    /// by widening the bf16 values to float32 (emulated: slower than fp32, useful to check what a bf16
    /// run gives).
    case bf16
    /// bf16 where the CPU has AVX512-BF16 units *and* they are measured faster than float32 here, fp32
    /// elsewhere.
    case auto

    /// What this request runs as on a CPU with (`hasBFloat16Units`) or without bf16 units, given the
    /// measured bf16/float32 GEMM speed ratio (`BFloat16Hardware.measuredSpeedup`).
    public func resolved(hasBFloat16Units: Bool = BFloat16Hardware.isPresent,
                         speedup: @autoclosure () -> Double? = BFloat16Hardware.measuredSpeedup) -> PrecisionChoice {
        switch self {
        case .fp32: return PrecisionChoice(requested: self, usesBFloat16: false, route: .portable, emulated: false)
        case .bf16: return PrecisionChoice(requested: self, usesBFloat16: true, route: .automatic, emulated: !hasBFloat16Units)
        case .auto:
            guard hasBFloat16Units else { return PrecisionChoice(requested: self, usesBFloat16: false, route: .portable, emulated: false) }
            let ratio = speedup()
            return PrecisionChoice(requested: self, usesBFloat16: (ratio ?? 0) >= BFloat16Hardware.requiredSpeedup,
                                   route: .automatic, emulated: false, measuredSpeedup: ratio)
        }
    }
}

/// Whether this CPU has AVX512-BF16 (`vdpbf16ps`), and whether it pays.
public enum BFloat16Hardware {
    public static var isPresent: Bool { sds_cpu_has_avx512bf16() != 0 }

    /// `auto` takes bf16 only when its GEMM is at least this much faster than float32: having the
    /// instruction is not enough (on an Emerald Rapids VM `vdpbf16ps` ran at 0.45–0.49× the float32 FMA
    /// rate; tools/bench/README.md), and bf16 costs accuracy.
    public static let requiredSpeedup = 1.25

    /// float32 seconds / bf16 seconds of one [384, 1024]·[1024, 1024] product (best of 3 each, after a
    /// warm-up), measured once per process on first use; nil without bf16 units. About 50 ms.
    public static let measuredSpeedup: Double? = {
        guard isPresent, let matrix = try? BFloat16Matrix(Tensor.randn(shape: [1024, 1024], seed: 1, scale: 0.03)) else { return nil }
        let x = Tensor.randn(shape: [384, 1024], seed: 2)
        let w = Tensor.randn(shape: [1024, 1024], seed: 1, scale: 0.03)
        func best(_ body: () throws -> Void) -> Double {
            var fastest = Double.infinity
            for _ in 0..<4 {   // the first run warms caches and thread pools
                let start = DispatchTime.now().uptimeNanoseconds
                guard (try? body()) != nil else { return .infinity }
                fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start))
            }
            return fastest
        }
        let bf16 = best { _ = try matrix.product(x, route: .automatic) }
        let fp32 = best { _ = try linear(x, weight: w) }
        return bf16.isFinite && bf16 > 0 ? fp32 / bf16 : nil
    }()
}

/// A resolved precision: what the models run as, and how to say so in a log.
public struct PrecisionChoice: Sendable, Equatable {
    public let requested: Precision
    /// Whether frozen matrices run in bf16.
    public let usesBFloat16: Bool
    /// The bf16 GEMM route for linear layers.
    public let route: BFloat16Route
    /// bf16 numbers computed without bf16 units (widened to float32).
    public let emulated: Bool
    /// For `auto` on a CPU with bf16 units: the measured bf16/float32 GEMM speed ratio.
    public let measuredSpeedup: Double?

    public init(requested: Precision, usesBFloat16: Bool, route: BFloat16Route, emulated: Bool, measuredSpeedup: Double? = nil) {
        (self.requested, self.usesBFloat16, self.route, self.emulated, self.measuredSpeedup) = (requested, usesBFloat16, route, emulated, measuredSpeedup)
    }

    public static let fp32 = Precision.fp32.resolved(hasBFloat16Units: false)

    /// One line for logs and verify notes.
    public var summary: String {
        switch (requested, usesBFloat16) {
        case (.fp32, _): return "precision fp32"
        case (.auto, false):
            guard let ratio = measuredSpeedup else { return "precision auto: fp32 (this CPU has no AVX512-BF16)" }
            return "precision auto: fp32 (bf16 GEMM measured \(Self.format(ratio))× float32's speed here, below the \(Self.format(BFloat16Hardware.requiredSpeedup))× it needs)"
        case (.auto, true):
            return "precision auto: bf16 frozen matrices (AVX512-BF16, GEMM measured \(Self.format(measuredSpeedup ?? 0))× float32's speed), float32 accumulation"
        case (_, true) where emulated:
            return "precision bf16, emulated: this CPU has no AVX512-BF16, so bf16 values are widened to float32 (slower than fp32)"
        default: return "precision bf16: frozen matrices in bf16 (AVX512-BF16), float32 accumulation"
        }
    }

    private static func format(_ x: Double) -> String { String(Double(Int((x * 100).rounded())) / 100) }
}
