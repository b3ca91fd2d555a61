import ArgumentParser
import Checkpoints
import Foundation

/// Layouts `convert --layout` can write besides the default flat safetensors copy.
enum ConvertLayout: String, ExpressibleByArgument, CaseIterable {
    /// A diffusers pipeline folder from a single-file SD checkpoint.
    case diffusers
}

extension ConvertCommand {
    /// `convert SINGLE_FILE OUT_DIR --layout diffusers [--config DIR] [--ema]`.
    func convertToLayout(_ layout: ConvertLayout, configuration: String?, extractEMA: Bool) throws {
        switch layout {
        case .diffusers:
            let summary = try DiffusersFolderWriter.convert(input, to: output, configuration: configuration, extractEMA: extractEMA)
            guard !quiet else { return }
            printError("wrote \(output): diffusers \(summary.version.rawValue) pipeline (configuration from \(summary.configurationSource))")
            for part in summary.components {
                printError("  \(part.component.rawValue): \(part.tensors) tensors, \(Formatting.count(part.parameters)) parameters")
            }
            printError("  \(summary.droppedCount) source tensors left out (schedule buffers, EMA copies, unused text-encoder layers, position ids)")
        }
    }
}
