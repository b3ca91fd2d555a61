import Checkpoints
import Foundation
import WeightsIO

extension InspectCommand {
    /// The SD components the path holds, with tensor and parameter totals in diffusers terms
    /// (models.md §4.5), or nil when it is not a Stable Diffusion checkpoint.
    func stableDiffusionReport() -> String? {
        // Only a question of "is this SD?": any reason it is not simply means no SD section.
        guard let source = try? StableDiffusionSource(path: path), let summaries = try? source.componentSummaries(),
              !summaries.isEmpty else { return nil }
        var lines = ["", "stable diffusion: \(source.version.rawValue)\(source.hasEMA ? ", with model_ema.* UNet copy" : "")"]
        for summary in summaries {
            let name = summary.component.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
            let dropped = summary.dropped > 0 ? " (\(summary.dropped) left out)" : ""
            let unmapped = summary.unmapped > 0 ? ", \(summary.unmapped) tensors in no known layout" : ""
            lines.append("  \(name) \(Formatting.count(summary.tensors)) tensors, \(Formatting.count(summary.parameters)) parameters\(dropped)\(unmapped)")
        }
        let total = summaries.reduce(0) { TensorShape.saturatingSum($0, $1.parameters) }
        lines.append("  total         \(Formatting.count(total)) parameters")
        return lines.joined(separator: "\n")
    }
}
