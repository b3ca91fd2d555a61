import ArgumentParser
import Checkpoints
import Foundation
import Models
import WeightsIO

/// Layouts `convert --layout` can write besides the default flat safetensors copy.
enum ConvertLayout: String, ExpressibleByArgument, CaseIterable {
    /// A diffusers pipeline folder from a single-file SD checkpoint.
    case diffusers
}

/// `--prediction-type` values (diffusers' `prediction_type` names).
enum PredictionArgument: String, ExpressibleByArgument, CaseIterable {
    case epsilon
    case vPrediction = "v_prediction"

    var prediction: PredictionType {
        switch self {
        case .epsilon: return .epsilon
        case .vPrediction: return .velocity
        }
    }
}

extension ConvertCommand {
    /// `convert SINGLE_FILE OUT_DIR --layout diffusers [--config DIR] [--ema] [--dtype …] [--prediction-type …]`.
    func convertToLayout(_ layout: ConvertLayout, temporaries: TemporaryFiles) throws {
        switch layout {
        case .diffusers:
            try safety.admit([input])
            let summary = try DiffusersFolderWriter.convert(input, to: output, configuration: config, extractEMA: ema,
                                                            dtype: dtype.dtype, prediction: predictionType?.prediction,
                                                            writing: WriteOptions(temporaries: temporaries))
            guard !quiet else { return }
            let dtypes = summary.dtypes.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue.lowercased())" }
            printError("wrote \(output): diffusers \(summary.version.rawValue) pipeline (configuration from \(summary.configurationSource))")
            printError("  weights: \(dtypes.joined(separator: ", ")) tensors; scheduler \(summary.scheduler); tokenizer, feature_extractor; no safety checker")
            for part in summary.components {
                printError("  \(part.component.rawValue): \(part.tensors) tensors, \(Formatting.count(part.parameters)) parameters")
            }
            printError("  \(summary.droppedCount) source tensors left out (schedule buffers, EMA copies, unused text-encoder layers, position ids)")
        }
    }
}
