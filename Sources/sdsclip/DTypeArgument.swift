import ArgumentParser
import WeightsIO

/// The floating dtypes an output can be cast to, as command-line values.
enum FloatDTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case f32, f16, bf16

    var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}
