import Foundation
import Layouts
import Tensors
import WeightsIO

extension Tensor {
    /// A Float32 tensor from a stored record of any float or integer dtype (views packed).
    public init(record: TensorRecord, file: String = "") throws {
        let values: [Float]
        do { values = try DTypeConversion.floats(of: record) } catch let error as WeightsError {
            throw WeightsError(error.kind, file: file.isEmpty ? error.file : file, at: "tensor '\(record.name)'", error.message)
        }
        try self.init(shape: record.shape, data: values)
    }
}

extension TensorTransform {
    /// Applies the transform to a tensor (the shape rules are `apply(to:)`'s).
    public func apply(_ tensor: Tensor) throws -> Tensor {
        switch self {
        case .copy: return tensor
        case .transpose: return try tensor.transpose(0, 1)
        case .rows(let range): return try tensor.narrow(axis: 0, start: range.lowerBound, length: range.count)
        case .squeeze1x1, .unsqueeze1x1:
            guard let shape = apply(to: tensor.shape) else {
                throw TensorError.shapeMismatch(op: description, detail: "cannot apply to \(tensor.shape)")
            }
            return try tensor.reshape(shape)
        }
    }
}

/// Turns stored tensors into canonical tensors following a layout plan.
public enum CanonicalTensors {
    /// Every mapped target of `plan`, as Float32 tensors. Unknown source names are an error
    /// naming them (a wrong layout, or a checkpoint of another model).
    public static func make(_ store: WeightStore, plan: LayoutPlan, file: String) throws -> [String: Tensor] {
        if !plan.unknown.isEmpty {
            let shown = plan.unknown.prefix(6).joined(separator: ", ")
            throw CheckpointError(file: file, "\(plan.unknown.count) tensor(s) match no rule of the detected layout: \(shown)\(plan.unknown.count > 6 ? ", …" : "")")
        }
        var converted: [String: Tensor] = [:]
        var result: [String: Tensor] = [:]
        for mapped in plan.mapped {
            let source: Tensor
            if let cached = converted[mapped.source] {
                source = cached
            } else {
                guard let record = store[mapped.source] else {
                    throw CheckpointError(file: file, "the plan names '\(mapped.source)', which the file does not hold")
                }
                source = try Tensor(record: record, file: file)
                converted[mapped.source] = source
            }
            guard result[mapped.target] == nil else {
                throw CheckpointError(file: file, "two tensors map to '\(mapped.target)'")
            }
            result[mapped.target] = try mapped.transform.apply(source)
        }
        return result
    }

    /// A store's names and shapes, for planning.
    public static func namedShapes(_ store: WeightStore, renaming: (String) -> String = { $0 }) -> [NamedShape] {
        store.orderedRecords.map { NamedShape(renaming($0.name), $0.shape) }
    }
}

extension SafetensorsWriter.Tensor {
    /// Float32 tensors written as one tensor of `shape`, their values one after another (a stack along
    /// the first axis: OpenCLIP's fused q/k/v), cast to `dtype` block by block as the file is written,
    /// so no converted copy of the model is ever held.
    public init(name: String, shape: [Int], stacking parts: [Tensor], as dtype: DType) throws {
        guard DTypeConversion.isFloat32Target(dtype) else {
            throw WeightsError(.unsupported, file: "", at: "tensor '\(name)'", "cannot write Float32 values as \(dtype.rawValue)")
        }
        let total = parts.reduce(0) { $0 + $1.count }
        guard total == shape.reduce(1, *) else {
            throw WeightsError(.format, file: "", at: "tensor '\(name)'", "\(total) values do not fill shape \(shape)")
        }
        let size = dtype.byteSize
        self.init(name: name, dtype: dtype, shape: shape, source: .producer { destination, byteOffset in
            // The writer asks for whole elements (blocks are multiples of 4 MiB), in order.
            var element = byteOffset / size
            var written = 0
            var partStart = 0
            for part in parts {
                let partEnd = partStart + part.count
                defer { partStart = partEnd }
                guard element < partEnd, written < destination.count else { continue }
                let take = min(partEnd - element, (destination.count - written) / size)
                try part.withUnsafeBufferPointer { values in
                    let from = element - partStart
                    try DTypeConversion.fromFloat32(UnsafeBufferPointer(rebasing: values[from..<(from + take)]), to: dtype,
                                                    into: UnsafeMutableRawBufferPointer(rebasing: destination[written..<(written + take * size)]))
                }
                element += take
                written += take * size
            }
        })
    }
}
