import CTensorKernels

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
    /// bf16 where the CPU has AVX512-BF16 units, fp32 elsewhere.
    case auto

    /// What this request runs as on a CPU with (`hasBFloat16Units`) or without bf16 units.
    public func resolved(hasBFloat16Units: Bool = BFloat16Hardware.isPresent) -> PrecisionChoice {
        switch self {
        case .fp32: return PrecisionChoice(requested: self, usesBFloat16: false, route: .portable, emulated: false)
        case .bf16: return PrecisionChoice(requested: self, usesBFloat16: true, route: .automatic, emulated: !hasBFloat16Units)
        case .auto: return PrecisionChoice(requested: self, usesBFloat16: hasBFloat16Units, route: .automatic, emulated: false)
        }
    }
}

/// Whether this CPU has AVX512-BF16 (`vdpbf16ps`).
public enum BFloat16Hardware {
    public static var isPresent: Bool { sds_cpu_has_avx512bf16() != 0 }
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

    public static let fp32 = Precision.fp32.resolved(hasBFloat16Units: false)

    /// One line for logs and verify notes.
    public var summary: String {
        switch (requested, usesBFloat16) {
        case (.fp32, _): return "precision fp32"
        case (.auto, false): return "precision auto: fp32 (this CPU has no AVX512-BF16)"
        case (.auto, true): return "precision auto: bf16 frozen matrices (AVX512-BF16), float32 accumulation"
        case (_, true) where emulated:
            return "precision bf16, emulated: this CPU has no AVX512-BF16, so bf16 values are widened to float32 (slower than fp32)"
        default: return "precision bf16: frozen matrices in bf16 (AVX512-BF16), float32 accumulation"
        }
    }
}
