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

/// Hands out a model's parameters by canonical (Hugging Face / diffusers) name and records each one,
/// with the role its layer declared, in `registry`. Modules ask through a `ParameterScope`, so names
/// follow from the module tree (`scope["layers"][3]`).
public protocol ParameterSource: AnyObject {
    /// Where every parameter handed out is recorded (one registry per model built from this source).
    var registry: ParameterRegistry { get }
    /// The value for `name`, already in `shape`, and the shape it had in storage.
    func value(_ name: String, shape: [Int], role: ParameterRole) throws -> (value: Tensor, storedShape: [Int])
    /// Whether new parameters require a gradient (frozen by default: inference and teachers).
    var requiresGrad: Bool { get }
}

extension ParameterSource {
    public var requiresGrad: Bool { false }

    /// The parameter `name`, recorded in the registry.
    public func parameter(_ name: String, shape: [Int], role: ParameterRole) throws -> Parameter {
        let (value, storedShape) = try self.value(name, shape: shape, role: role)
        return try registry.register(Parameter(value, requiresGrad: requiresGrad, name: name), storedShape: storedShape, role: role)
    }
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

    public func parameter(_ leaf: String, shape: [Int], role: ParameterRole) throws -> Parameter {
        try source.parameter(prefix.isEmpty ? leaf : "\(prefix).\(leaf)", shape: shape, role: role)
    }
}

/// Parameters from already-converted tensors (canonical names → values). Records which names were
/// taken, so a loader can insist that every tensor of a checkpoint found its place.
public final class TensorDictionarySource: ParameterSource {
    public private(set) var tensors: [String: Tensor]
    public private(set) var used: Set<String> = []
    public let requiresGrad: Bool
    public let registry = ParameterRegistry()

    public init(_ tensors: [String: Tensor], requiresGrad: Bool = false) {
        self.tensors = tensors
        self.requiresGrad = requiresGrad
    }

    public func value(_ name: String, shape: [Int], role: ParameterRole) throws -> (value: Tensor, storedShape: [Int]) {
        guard let tensor = tensors[name] else { throw ModelError.missingParameter(name: name, expectedShape: shape) }
        guard tensor.shape == shape || (tensor.count == shape.reduce(1, *) && tensor.shape.filter { $0 != 1 } == shape.filter { $0 != 1 }) else {
            throw ModelError.shapeMismatch(name: name, expected: shape, found: tensor.shape)
        }
        used.insert(name)
        // The dictionary's copy is dropped once handed out: the parameter owns the only reference,
        // so optimiser updates happen in place and nothing keeps a stale copy alive.
        tensors[name] = nil
        return (tensor.shape == shape ? tensor : try tensor.reshape(shape), tensor.shape)
    }

    /// Names that were loaded but never asked for, sorted.
    public var unused: [String] { tensors.keys.sorted() }

    /// Throws when any loaded tensor went unused.
    public func requireAllUsed() throws {
        let left = unused
        if !left.isEmpty { throw ModelError.unusedParameters(left) }
    }
}

/// Seeded random parameters at a model's real size (benchmarks, shape checks): weights ~ N(0, 0.02²),
/// norm scales 1 and biases 0, chosen by the role each layer declares.
public final class RandomParameterSource: ParameterSource {
    private var seed: UInt64
    public let registry = ParameterRegistry()

    public init(seed: UInt64 = 0) { self.seed = seed }

    public func value(_ name: String, shape: [Int], role: ParameterRole) throws -> (value: Tensor, storedShape: [Int]) {
        seed &+= 0x9E37_79B9_7F4A_7C15
        let tensor: Tensor
        switch role {
        case .linearBias, .convBias, .layerNormBias, .groupNormBias: tensor = Tensor(zeros: shape)
        case .layerNormWeight, .groupNormWeight: tensor = Tensor(shape: shape, fill: 1)
        case .logitScale: tensor = Tensor(shape: shape, fill: Float(2.6592))
        default: tensor = Tensor.randn(shape: shape, seed: seed, scale: 0.02)
        }
        return (tensor, shape)
    }
}
