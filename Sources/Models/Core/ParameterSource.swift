import Tensors

/// Why a model could not be built or run.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// A weight the model needs is not among the loaded tensors.
    case missingParameter(name: String, expectedShape: [Int])
    /// A loaded tensor has another shape than the configuration implies.
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    /// Loaded tensors that no part of the model used (a wrong layout or configuration).
    case unusedParameters([String])
    /// A configuration that cannot describe a working model.
    case invalidConfiguration(String)
    /// Inputs the model cannot take (wrong rank, length, id range, …).
    case invalidInput(String)

    public var description: String {
        switch self {
        case let .missingParameter(name, shape):
            return "missing weight '\(name)' (expected shape \(shape))"
        case let .shapeMismatch(name, expected, found):
            return "weight '\(name)' has shape \(found), the configuration expects \(expected)"
        case let .unusedParameters(names):
            let shown = names.prefix(8).joined(separator: ", ")
            return "\(names.count) weight(s) were not used by the model: \(shown)\(names.count > 8 ? ", …" : "")"
        case let .invalidConfiguration(detail):
            return "invalid model configuration: \(detail)"
        case let .invalidInput(detail):
            return "invalid model input: \(detail)"
        }
    }
}

/// Hands out a model's parameters by canonical (Hugging Face / diffusers) name. Modules ask for
/// their weights through a `ParameterScope`, so names follow from the module tree (`scope["layers"][3]`).
public protocol ParameterSource: AnyObject {
    func parameter(_ name: String, shape: [Int]) throws -> Parameter
}

/// A name prefix inside a `ParameterSource`.
public struct ParameterScope {
    public let source: any ParameterSource
    public let prefix: String

    public init(_ source: any ParameterSource, prefix: String = "") {
        self.source = source
        self.prefix = prefix
    }

    public subscript(_ component: String) -> ParameterScope {
        ParameterScope(source, prefix: prefix.isEmpty ? component : "\(prefix).\(component)")
    }

    public subscript(_ index: Int) -> ParameterScope { self[String(index)] }

    public func parameter(_ leaf: String, shape: [Int]) throws -> Parameter {
        try source.parameter(prefix.isEmpty ? leaf : "\(prefix).\(leaf)", shape: shape)
    }
}

/// Parameters from already-converted tensors (canonical names → values). Records which names were
/// taken, so a loader can insist that every tensor of a checkpoint found its place.
public final class TensorDictionarySource: ParameterSource {
    public private(set) var tensors: [String: Tensor]
    public private(set) var used: Set<String> = []
    public var requiresGrad: Bool

    public init(_ tensors: [String: Tensor], requiresGrad: Bool = false) {
        self.tensors = tensors
        self.requiresGrad = requiresGrad
    }

    public func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        guard let tensor = tensors[name] else { throw ModelError.missingParameter(name: name, expectedShape: shape) }
        guard tensor.shape == shape || (tensor.count == shape.reduce(1, *) && tensor.shape.filter { $0 != 1 } == shape.filter { $0 != 1 }) else {
            throw ModelError.shapeMismatch(name: name, expected: shape, found: tensor.shape)
        }
        used.insert(name)
        return Parameter(tensor.shape == shape ? tensor : try tensor.reshape(shape), requiresGrad: requiresGrad, name: name)
    }

    /// Names that were loaded but never asked for, sorted.
    public var unused: [String] { tensors.keys.filter { !used.contains($0) }.sorted() }

    /// Throws when any loaded tensor went unused.
    public func requireAllUsed() throws {
        let left = unused
        if !left.isEmpty { throw ModelError.unusedParameters(left) }
    }
}

/// Seeded random parameters at a model's real size (benchmarks, shape checks): weights ~ N(0, 0.02²),
/// norm scales 1 and biases 0, recognised by name.
public final class RandomParameterSource: ParameterSource {
    private var seed: UInt64
    public private(set) var names: [String] = []

    public init(seed: UInt64 = 0) { self.seed = seed }

    public func parameter(_ name: String, shape: [Int]) throws -> Parameter {
        seed &+= 0x9E37_79B9_7F4A_7C15
        names.append(name)
        let leaf = name.split(separator: ".").last.map(String.init) ?? name
        let isNorm = name.contains("norm") || name.contains("layrnorm") || name.contains("ln_")
        let tensor: Tensor
        if leaf == "bias" {
            tensor = Tensor(zeros: shape)
        } else if isNorm && leaf == "weight" {
            tensor = Tensor(shape: shape, fill: 1)
        } else {
            tensor = Tensor.randn(shape: shape, seed: seed, scale: 0.02)
        }
        return Parameter(tensor, requiresGrad: false, name: name)
    }
}
