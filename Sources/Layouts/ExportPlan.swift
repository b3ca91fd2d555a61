// The export direction of layout conversion: canonical (Hugging Face) tensors → the tensors of
// another layout. Most targets come from one canonical tensor through a transform; a few are several
// canonical tensors stacked (OpenCLIP's fused `in_proj` from q, k and v). Names and shapes only.

/// How one exported tensor is made from canonical tensors.
public enum TensorAssembly: Hashable, Sendable, CustomStringConvertible {
    /// One source through a transform.
    case single(String, TensorTransform)
    /// Sources stacked along the first axis, in this order.
    case concatenatedRows([String])

    public var sources: [String] {
        switch self {
        case .single(let source, _): return [source]
        case .concatenatedRows(let sources): return sources
        }
    }

    public var description: String {
        switch self {
        case .single(_, let transform): return transform.description
        case .concatenatedRows(let sources): return "concatenate rows of \(sources.count)"
        }
    }

    /// The target shape, or nil when a source is missing or the shapes do not fit.
    public func shape(sourceShapes: [String: [Int]]) -> [Int]? {
        switch self {
        case .single(let source, let transform):
            return sourceShapes[source].flatMap { transform.apply(to: $0) }
        case .concatenatedRows(let sources):
            let shapes = sources.compactMap { sourceShapes[$0] }
            guard shapes.count == sources.count, let first = shapes.first, !first.isEmpty,
                  shapes.allSatisfy({ $0.count == first.count && $0.dropFirst() == first.dropFirst() }) else { return nil }
            return [shapes.reduce(0) { $0 + $1[0] }] + first.dropFirst()
        }
    }
}

/// One tensor of the exported file.
public struct AssembledTensor: Hashable, Sendable {
    public let target: String
    public let assembly: TensorAssembly

    public init(target: String, assembly: TensorAssembly) {
        self.target = target
        self.assembly = assembly
    }
}

/// The result of mapping a model's canonical tensors to an export layout.
public struct ExportPlan: Sendable {
    public var assembled: [AssembledTensor] = []
    /// Canonical names no rule of the target layout knows.
    public var unknown: [String] = []
    /// Fused targets some of whose parts are absent (e.g. q and k without v), with the missing names.
    public var incomplete: [(target: String, missing: [String])] = []

    public init() {}

    /// Target name → shape, given the canonical shapes; nil entries mean the sources did not fit.
    public func targetShapes(sourceShapes: [String: [Int]]) -> [String: [Int]?] {
        var result: [String: [Int]?] = [:]
        for tensor in assembled { result[tensor.target] = tensor.assembly.shape(sourceShapes: sourceShapes) }
        return result
    }
}
