import Tensors

/// What a parameter is, declared by the layer that asks for it (never guessed from its name).
/// Training selects and treats parameters by role: which to train, which get weight decay.
public enum ParameterRole: String, Sendable, CaseIterable, Codable {
    case linearWeight = "linear-weight"
    case linearBias = "linear-bias"
    case convWeight = "conv-weight"
    case convBias = "conv-bias"
    case layerNormWeight = "layernorm-weight"
    case layerNormBias = "layernorm-bias"
    case groupNormWeight = "groupnorm-weight"
    case groupNormBias = "groupnorm-bias"
    /// A lookup table (token embeddings).
    case embedding
    case positionEmbedding = "position-embedding"
    case classEmbedding = "class-embedding"
    /// A bias-free projection matrix between spaces (CLIP's text/visual projections).
    case projection
    /// CLIP's learned temperature (a scalar).
    case logitScale = "logit-scale"

    public static let layerNorm: Set<ParameterRole> = [.layerNormWeight, .layerNormBias]

    public var isLayerNorm: Bool { Self.layerNorm.contains(self) }

    /// Whether decoupled weight decay applies: matrices (linear, conv, embeddings, projections), not
    /// norms, biases, the class token or the temperature (open_clip's and most trainers' rule).
    public var takesWeightDecay: Bool {
        switch self {
        case .linearWeight, .convWeight, .embedding, .positionEmbedding, .projection: return true
        case .linearBias, .convBias, .layerNormWeight, .layerNormBias, .groupNormWeight, .groupNormBias,
             .classEmbedding, .logitScale: return false
        }
    }
}

/// One parameter as its model's registry knows it.
public struct RegisteredParameter {
    /// Full canonical (Hugging Face / diffusers) name.
    public let name: String
    /// The shape as stored in the checkpoint (e.g. a 1×1 conv stored as a matrix).
    public let storedShape: [Int]
    public let role: ParameterRole
    public let parameter: Parameter

    public var isTrainable: Bool { parameter.requiresGrad }
}

/// The single owner of the list of a model's parameters: every `Parameter` a model is built with is
/// recorded here, in construction order, by name. Training (what is trained, with which decay),
/// optimiser state, checkpoints and export all walk it by name.
///
/// Not thread-safe: a registry and its parameters belong to one model and are used from one task at
/// a time (tensor ops parallelise internally).
public final class ParameterRegistry {
    public private(set) var entries: [RegisteredParameter] = []
    private var positions: [String: Int] = [:]

    public init() {}

    /// Records a parameter a layer asked for. Names are unique within a model.
    @discardableResult
    public func register(_ parameter: Parameter, storedShape: [Int], role: ParameterRole) throws -> Parameter {
        guard positions[parameter.name] == nil else {
            throw ModelError.invalidConfiguration("parameter '\(parameter.name)' was asked for twice")
        }
        positions[parameter.name] = entries.count
        entries.append(RegisteredParameter(name: parameter.name, storedShape: storedShape, role: role, parameter: parameter))
        return parameter
    }

    /// A new named parameter that no checkpoint holds (e.g. the SDS latent map), made by `initializer`.
    /// It requires a gradient unless told otherwise.
    public func create(_ name: String, shape: [Int], role: ParameterRole, requiresGrad: Bool = true,
                       initializer: ([Int]) throws -> Tensor) throws -> Parameter {
        let value = try initializer(shape)
        guard value.shape == shape else {
            throw ModelError.shapeMismatch(name: name, expected: shape, found: value.shape)
        }
        return try register(Parameter(value, requiresGrad: requiresGrad, name: name), storedShape: shape, role: role)
    }

    public subscript(_ name: String) -> RegisteredParameter? {
        positions[name].map { entries[$0] }
    }

    public var names: [String] { entries.map(\.name) }

    /// Parameters whose role is in `roles` (all when nil) and whose name starts with `prefix` as a
    /// whole dotted component ("vision_model" matches "vision_model.x", not "vision_model_2.x").
    public func select(roles: Set<ParameterRole>? = nil, prefix: String? = nil) -> [RegisteredParameter] {
        entries.filter { entry in
            (roles?.contains(entry.role) ?? true) && (prefix.map { Self.name(entry.name, isUnder: $0) } ?? true)
        }
    }

    public static func name(_ name: String, isUnder prefix: String) -> Bool {
        prefix.isEmpty || name == prefix || name.hasPrefix(prefix + ".")
    }

    /// The parameters that currently require a gradient.
    public var trainable: [RegisteredParameter] { entries.filter(\.isTrainable) }

    /// Stops every parameter from requiring a gradient (and drops any accumulated one).
    public func freezeAll() {
        for entry in entries {
            entry.parameter.requiresGrad = false
            entry.parameter.zeroGrad()
        }
    }

    /// Makes exactly `selected` trainable on top of the current state.
    public func unfreeze(_ selected: [RegisteredParameter]) {
        for entry in selected { entry.parameter.requiresGrad = true }
    }

    public func freeze(_ selected: [RegisteredParameter]) {
        for entry in selected {
            entry.parameter.requiresGrad = false
            entry.parameter.zeroGrad()
        }
    }

    /// Roles whose frozen weights `useBFloat16` converts: the matrices `Linear` and `Conv2D` multiply by.
    public static let bfloat16Roles: Set<ParameterRole> = [.linearWeight, .convWeight]

    /// Gives every frozen linear and convolution weight a bf16 copy (made once, here) that its layer then
    /// computes with; trainable parameters, norms, biases and embeddings stay float32. With `choice`
    /// not using bf16 it drops any copies instead. Call after freezing: a parameter made trainable later
    /// drops its copy. Returns the number of weights converted and the bytes their copies take.
    /// releasingFloat32: also free the float32 values of the converted weights (a frozen teacher, never
    /// trained or saved: `Parameter.releaseFloat32`), so bf16 halves their memory instead of adding half;
    /// their pages go back to the system (`HeapMemoryReuse` would otherwise keep them resident).
    @discardableResult
    public func useBFloat16(_ choice: PrecisionChoice, releasingFloat32: Bool = false) throws -> (weights: Int, bytes: Int) {
        var converted = 0, bytes = 0, released = 0
        defer { if released > 0 { HeapMemoryReuse.returnFreedPages() } }
        for entry in entries where Self.bfloat16Roles.contains(entry.role) {
            let parameter = entry.parameter
            guard choice.usesBFloat16, !parameter.requiresGrad else {
                parameter.bfloat16 = nil
                continue
            }
            if parameter.bfloat16 == nil { parameter.bfloat16 = try BFloat16Weight(parameter.value, route: choice.route) }
            if releasingFloat32 { released += parameter.releaseFloat32() }
            converted += 1
            bytes += parameter.bfloat16?.byteCount ?? 0
        }
        return (converted, bytes)
    }

    /// `useBFloat16` with a one-line account for logs: how many matrices run in bf16 (the choice's own
    /// `summary` says how, once per run).
    public func apply(_ choice: PrecisionChoice, model: String, releasingFloat32: Bool = false) throws -> String {
        let (weights, bytes) = try useBFloat16(choice, releasingFloat32: releasingFloat32)
        guard choice.usesBFloat16 else { return "\(model): \(choice.summary)" }
        let size = bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
        return "\(model): \(weights) frozen matrices in bf16 (\(size)\(releasingFloat32 ? ", float32 copies freed" : ""))"
    }

    /// Total element count of the selected (all when nil) parameters.
    public func elementCount(_ selected: [RegisteredParameter]? = nil) -> Int {
        (selected ?? entries).reduce(0) { $0 + $1.parameter.value.count }
    }
}
