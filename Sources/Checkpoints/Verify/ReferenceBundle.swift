import Foundation
import Tensors
import WeightsIO

/// A reference bundle: a safetensors file of `inputs.<name>` and `outputs.<name>` tensors made by the
/// real PyTorch libraries, with `__metadata__["component"]` saying which model they belong to.
public struct ReferenceBundle {
    public let path: String
    public let component: String
    public let metadata: [String: String]
    public let inputs: [String: TensorRecord]
    public let outputs: [String: TensorRecord]
    /// Output names in file order.
    public let outputNames: [String]

    public init(path: String) throws {
        let store = try WeightsReader.openFile(path)
        guard let component = store.metadata["component"] else {
            throw CheckpointError(file: path, "not a reference bundle: __metadata__ has no \"component\"")
        }
        var inputs: [String: TensorRecord] = [:], outputs: [String: TensorRecord] = [:], order: [String] = []
        for record in store.orderedRecords {
            if record.name.hasPrefix("inputs.") {
                inputs[String(record.name.dropFirst(7))] = record
            } else if record.name.hasPrefix("outputs.") {
                let name = String(record.name.dropFirst(8))
                outputs[name] = record
                order.append(name)
            }
        }
        self.path = path
        self.component = component
        self.metadata = store.metadata
        self.inputs = inputs
        self.outputs = outputs
        self.outputNames = order
    }

    public func input(_ name: String) throws -> TensorRecord {
        guard let record = inputs[name] else {
            throw CheckpointError(file: path, "the \(component) bundle has no input '\(name)' (has: \(inputs.keys.sorted().joined(separator: ", ")))")
        }
        return record
    }

    public func floatInput(_ name: String) throws -> Tensor { try Tensor(record: input(name), file: path) }

    /// An integer input as rows ([B, L] → B arrays of L ids).
    public func idRows(_ name: String) throws -> [[Int]] {
        let record = try input(name)
        guard record.shape.count == 2 else {
            throw CheckpointError(file: path, "input '\(name)' must be [B, L], got \(record.shape)")
        }
        let values = try integers(record)
        let width = record.shape[1]
        return (0..<record.shape[0]).map { Array(values[$0 * width ..< ($0 + 1) * width]) }
    }

    /// Integer or float values of a record as Int (timesteps may be stored either way).
    public func integers(_ record: TensorRecord) throws -> [Int] {
        let packed = try StridedGather.packedBytes(of: record, file: path)
        return packed.withUnsafeBytes { raw -> [Int] in
            switch record.dtype {
            case .i64: return raw.bindMemory(to: Int64.self).map { Int($0) }
            case .i32: return raw.bindMemory(to: Int32.self).map { Int($0) }
            case .u8: return raw.bindMemory(to: UInt8.self).map { Int($0) }
            default: return (try? DTypeConversion.floats(of: record))?.map { Int($0) } ?? []
            }
        }
    }

    public func expected(_ name: String) throws -> Tensor {
        guard let record = outputs[name] else {
            throw CheckpointError(file: path, "the bundle has no output '\(name)'")
        }
        return try Tensor(record: record, file: path)
    }
}

/// How one computed output compares with the reference.
public struct OutputComparison: Sendable {
    public let name: String
    public let shape: [Int]
    public let maxAbsoluteError: Float
    /// max |a − b| / max |b|: the error relative to the output's scale.
    public let relativeError: Float
    public let passed: Bool
    /// Why the values could not be compared, when they could not (shapes differ, a value is not finite);
    /// the errors are then infinite.
    public let problem: String?
}

public struct Tolerance: Sendable {
    public var absolute: Float
    public var relative: Float

    public init(absolute: Float = 1e-6, relative: Float = 1e-4) {
        self.absolute = absolute
        self.relative = relative
    }

    /// The default for bf16 compute against a float32 reference (`--precision bf16`; README "bf16
    /// compute"). bf16 keeps 8 significant bits, so each rounded operand is off by up to 2⁻⁹ ≈ 0.2 % of
    /// itself, and a gradient gathers the roundings of every layer on the forward and backward paths:
    /// on the fixture models the SDS-step gradients stay within 2.7e-2 of each output's largest float32
    /// value (losses within 1e-3); 5e-2 leaves room for other models without hiding a broken path
    /// (a wrong layer is off by O(1)).
    public static let bfloat16 = Tolerance(absolute: 1e-5, relative: 5e-2)

    /// bf16 compute against a torch autocast reference (bundle metadata `precision: bf16-autocast`): two
    /// bf16 computations that round in different places (autocast also rounds attention products and the
    /// latent map) differ by up to the sum of their errors from float32: 9.1e-2 for torch's autocast on the
    /// fixtures (tools/make_bf16_fixtures.py) plus 2.7e-2 for sdsclip's.
    public static let bfloat16Autocast = Tolerance(absolute: 1e-5, relative: 0.15)

    /// Passes when max |a − b| ≤ absolute + relative · max |b|, with the same shape and every value
    /// finite in both: a reference holding ±inf or NaN is a broken bundle, never a pass.
    public func compare(name: String, computed: Tensor, expected: Tensor) -> OutputComparison {
        guard computed.shape == expected.shape else {
            return failure(name, computed.shape, "shapes differ: computed \(computed.shape), expected \(expected.shape)")
        }
        var maxError: Float = 0, maxReference: Float = 0
        var firstNonFinite: (index: Int, computed: Float, expected: Float)?
        var nonFiniteExpected = 0, nonFiniteComputed = 0
        computed.withUnsafeBufferPointer { a in
            expected.withUnsafeBufferPointer { b in
                for i in 0..<min(a.count, b.count) {
                    guard a[i].isFinite, b[i].isFinite else {
                        if !b[i].isFinite { nonFiniteExpected += 1 } else { nonFiniteComputed += 1 }
                        if firstNonFinite == nil { firstNonFinite = (i, a[i], b[i]) }
                        continue
                    }
                    maxError = max(maxError, abs(a[i] - b[i]))
                    maxReference = max(maxReference, abs(b[i]))
                }
            }
        }
        if let first = firstNonFinite {
            let at = "at \(Self.position(first.index, in: expected.shape))"
            if nonFiniteExpected > 0 {
                return failure(name, computed.shape, "the expected output holds \(nonFiniteExpected) non-finite value(s) (first \(first.expected) \(at)): a broken bundle")
            }
            return failure(name, computed.shape, "the computed output holds \(nonFiniteComputed) non-finite value(s) (first \(first.computed) \(at))")
        }
        let relativeError = maxReference > 0 ? maxError / maxReference : maxError
        return OutputComparison(name: name, shape: computed.shape, maxAbsoluteError: maxError, relativeError: relativeError,
                                passed: maxError <= absolute + relative * maxReference, problem: nil)
    }

    func failure(_ name: String, _ shape: [Int], _ problem: String) -> OutputComparison {
        OutputComparison(name: name, shape: shape, maxAbsoluteError: .infinity, relativeError: .infinity, passed: false, problem: problem)
    }

    /// A flat row-major index as `[i, j, …]`.
    static func position(_ flat: Int, in shape: [Int]) -> String {
        var rest = flat
        var indices = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            indices[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return "[" + indices.map(String.init).joined(separator: ", ") + "]"
    }
}
