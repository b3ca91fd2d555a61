import Checkpoints
import Foundation
import WeightsIO

/// The SD components a path holds, with tensor and parameter totals in diffusers terms
/// (models.md §4.5); `init` fails when it is not a Stable Diffusion checkpoint.
struct StableDiffusionSummary {
    let version: StableDiffusionVersion
    let hasEMA: Bool
    let components: [StableDiffusionComponentSummary]

    init?(path: String) {
        // Only a question of "is this SD?": any reason it is not simply means no SD section.
        guard let source = try? StableDiffusionSource(path: path), let summaries = try? source.componentSummaries(),
              !summaries.isEmpty else { return nil }
        version = source.version
        hasEMA = source.hasEMA
        components = summaries
    }

    var totalParameters: Int { components.reduce(0) { TensorShape.saturatingSum($0, $1.parameters) } }

    var text: String {
        var lines = ["", "stable diffusion: \(version.rawValue)\(hasEMA ? ", with model_ema.* UNet copy" : "")"]
        for summary in components {
            let name = summary.component.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0)
            let dropped = summary.dropped > 0 ? " (\(summary.dropped) left out)" : ""
            let unmapped = summary.unmapped > 0 ? ", \(summary.unmapped) tensors in no known layout" : ""
            lines.append("  \(name) \(Formatting.count(summary.tensors)) tensors, \(Formatting.count(summary.parameters)) parameters\(dropped)\(unmapped)")
        }
        lines.append("  total         \(Formatting.count(totalParameters)) parameters")
        return lines.joined(separator: "\n")
    }

    var json: [String: Any] {
        ["version": version.rawValue, "hasEMA": hasEMA, "totalParameters": totalParameters,
         "components": components.map { ["component": $0.component.rawValue, "tensors": $0.tensors, "parameters": $0.parameters,
                                   "droppedTensors": $0.dropped, "unmappedTensors": $0.unmapped] }]
    }
}
