// The vocabulary of layout conversion. A checkpoint in some layout (OpenAI CLIP, LDM single file, …)
// becomes canonical Hugging Face / diffusers names through a plan: for each source tensor, zero or
// more target tensors, each with the transform that produces it. Plans are computed from names and
// shapes only, so they are tested against the real manifests without any weights.

/// A tensor's name and shape, all a plan needs to know about it.
public struct NamedShape: Hashable, Sendable {
    public let name: String
    public let shape: [Int]

    public init(_ name: String, _ shape: [Int]) {
        self.name = name
        self.shape = shape
    }
}

/// How a target tensor is made from its source tensor.
public enum TensorTransform: Hashable, Sendable, CustomStringConvertible {
    /// Same values, same shape.
    case copy
    /// A 2-D matrix transposed (OpenAI `proj` [W,E] ↔ HF `visual_projection.weight` [E,W]).
    case transpose
    /// Rows `range` of the first axis (fused q/k/v `in_proj` split into q, k and v).
    case rows(Range<Int>)
    /// `[O,I,1,1]` conv weight read as a `[O,I]` linear weight (VAE attention in LDM files).
    case squeeze1x1
    /// `[O,I]` linear weight stored as a `[O,I,1,1]` conv weight (the inverse, for export).
    case unsqueeze1x1

    public var description: String {
        switch self {
        case .copy: return "copy"
        case .transpose: return "transpose"
        case .rows(let r): return "rows[\(r.lowerBound):\(r.upperBound)]"
        case .squeeze1x1: return "squeeze1x1"
        case .unsqueeze1x1: return "unsqueeze1x1"
        }
    }

    /// The target shape, or nil when the source shape does not fit the transform.
    public func apply(to shape: [Int]) -> [Int]? {
        switch self {
        case .copy:
            return shape
        case .transpose:
            guard shape.count == 2 else { return nil }
            return [shape[1], shape[0]]
        case .rows(let range):
            guard let first = shape.first, range.lowerBound >= 0, range.upperBound <= first else { return nil }
            return [range.count] + shape.dropFirst()
        case .squeeze1x1:
            guard shape.count == 4, shape[2] == 1, shape[3] == 1 else { return nil }
            return [shape[0], shape[1]]
        case .unsqueeze1x1:
            guard shape.count == 2 else { return nil }
            return shape + [1, 1]
        }
    }
}

/// One target tensor of a plan.
public struct MappedTensor: Hashable, Sendable {
    public let source: String
    public let target: String
    public let transform: TensorTransform

    public init(source: String, target: String, transform: TensorTransform = .copy) {
        self.source = source
        self.target = target
        self.transform = transform
    }
}

/// The result of mapping a whole checkpoint: what to produce, what was deliberately left out
/// (derived buffers, EMA copies, …) and what no rule knows.
public struct LayoutPlan: Sendable {
    public var mapped: [MappedTensor] = []
    /// Source names skipped on purpose, with the reason (for `inspect` and converters' warnings).
    public var dropped: [(name: String, reason: String)] = []
    /// Source names no rule recognised. Loaders treat these as errors unless told otherwise.
    public var unknown: [String] = []

    public init() {}

    public mutating func merge(_ other: LayoutPlan) {
        mapped += other.mapped
        dropped += other.dropped
        unknown += other.unknown
    }

    /// Target name → shape, given the source shapes; nil entries mean a transform did not fit.
    public func targetShapes(sourceShapes: [String: [Int]]) -> [String: [Int]?] {
        var result: [String: [Int]?] = [:]
        for m in mapped {
            result[m.target] = sourceShapes[m.source].flatMap { m.transform.apply(to: $0) }
        }
        return result
    }
}

/// Dotted-name helpers shared by the rule sets.
enum DottedName {
    /// `name` without `prefix`, or nil when it does not start with it.
    static func strip(_ prefix: String, from name: String) -> String? {
        guard name.hasPrefix(prefix) else { return nil }
        return String(name.dropFirst(prefix.count))
    }

    /// Splits `head.rest` after a leading integer component: `"3.attn.x"` → (3, "attn.x").
    /// A block index is ASCII digits only (no sign: `-9223372036854775808` is not an index) that fit an Int.
    static func leadingIndex(_ name: Substring) -> (Int, Substring)? {
        guard let dot = name.firstIndex(of: "."), name[..<dot].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let index = Int(name[..<dot]) else { return nil }
        return (index, name[name.index(after: dot)...])
    }
}
