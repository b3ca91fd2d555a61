import ArgumentParser
import Tensors

extension Precision: ExpressibleByArgument {}

/// The help text every command's `--precision` shares.
enum PrecisionHelp {
    static let text = ArgumentHelp(
        "fp32 | bf16 | auto. bf16: frozen linear and convolution weights rounded to bf16 once, their inputs per call, float32 accumulation; trained parameters, norms and activations stay float32 (emulated, slower, on CPUs without AVX512-BF16). auto: bf16 where the CPU has AVX512-BF16 and a short probe finds it ≥ 1.25× faster than fp32, else fp32.",
        valueName: "precision")
}

extension Precision {
    /// Resolves the request for this CPU and, unless it is plain fp32, says on stderr what runs.
    func resolvedAnnounced() -> PrecisionChoice {
        let choice = resolved()
        if self != .fp32 { printError("note: \(choice.summary)") }
        return choice
    }
}
