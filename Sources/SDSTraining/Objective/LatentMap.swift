import Models
import Tensors

/// How CLIP's image features become an SD latent.
public enum LatentMapKind: String, Sendable, CaseIterable, Codable {
    /// The projected image embedding [B, E] → Linear(E → 4·h·w) → [B, 4, h, w].
    case pooled
    /// Each patch token of the last encoder layer [B, G², W] → Linear(W → 4·s·s) → its s×s cell block of
    /// a [B, 4, G·s, G·s] grid, s = ⌈h / G⌉. When G does not divide h the grid is larger than the latent
    /// and its top-left h×w is kept (the last row and column of tokens fill partial blocks).
    case tokens
}

/// The SDS latent map h_w: a linear layer from CLIP image features to a latent `[B, 4, side, side]`.
/// Its two parameters (`latent_map.weight`, `latent_map.bias`) live in a registry of their own: h_w is
/// trained with CLIP but saved beside it, never inside it.
public struct LatentMap {
    public static let channels = 4
    public let kind: LatentMapKind
    public let side: Int
    /// Token grid side G (tokens mapper only).
    public let grid: Int
    /// Cells per token along each axis, s = ⌈side / G⌉ (tokens mapper only; 1 for pooled).
    public let cellsPerToken: Int
    public let weight: Parameter
    public let bias: Parameter
    public let registry: ParameterRegistry

    /// The input width (E for pooled, the vision width for tokens) and the output width of the linear.
    public static func shape(kind: LatentMapKind, side: Int, inputWidth: Int, grid: Int) -> (input: Int, output: Int) {
        switch kind {
        case .pooled: return (inputWidth, channels * side * side)
        case .tokens:
            let cells = (side + grid - 1) / max(grid, 1)
            return (inputWidth, channels * cells * cells)
        }
    }

    /// A map whose values come from `initialWeight` / `initialBias` (e.g. a checkpoint), or from torch's
    /// nn.Linear default initialisation, U(−1/√in, 1/√in) for both, seeded, when they are nil.
    public init(kind: LatentMapKind, side: Int, inputWidth: Int, grid: Int, seed: UInt64 = 0,
                initialWeight: Tensor? = nil, initialBias: Tensor? = nil) throws {
        guard side > 0, inputWidth > 0, kind == .pooled || grid > 0 else {
            throw ModelError.invalidConfiguration("latent map: side \(side), input width \(inputWidth) and token grid \(grid) must be positive")
        }
        self.kind = kind
        self.side = side
        self.grid = kind == .tokens ? grid : 1
        cellsPerToken = kind == .tokens ? (side + grid - 1) / grid : 1
        let (input, output) = Self.shape(kind: kind, side: side, inputWidth: inputWidth, grid: grid)
        let registry = ParameterRegistry()
        let bound = 1 / Float(input).squareRoot()
        weight = try registry.create("latent_map.weight", shape: [output, input], role: .linearWeight) { shape in
            initialWeight ?? Tensor.uniform(shape: shape, bound: bound, seed: seed)
        }
        bias = try registry.create("latent_map.bias", shape: [output], role: .linearBias) { shape in
            initialBias ?? Tensor.uniform(shape: shape, bound: bound, seed: seed &+ 1)
        }
        self.registry = registry
    }

    /// z0 [B, 4, side, side] from the projected embedding [B, E] (pooled) or the patch tokens [B, G², W] (tokens).
    public func callAsFunction(_ features: Tensor) throws -> Tensor {
        let batch = features.shape.first ?? 0
        let mapped = try linear(features, weight: weight.tensor, bias: bias.tensor)
        switch kind {
        case .pooled:
            return try mapped.reshape([batch, Self.channels, side, side])
        case .tokens:
            guard features.rank == 3, features.shape[1] == grid * grid else {
                throw ModelError.invalidInput("the tokens latent map takes [B, \(grid * grid), W] patch tokens, got \(features.shape)")
            }
            let s = cellsPerToken
            let full = try mapped.reshape([batch, grid, grid, Self.channels, s, s])
                .permute([0, 3, 1, 4, 2, 5]).reshape([batch, Self.channels, grid * s, grid * s])
            guard grid * s != side else { return full }
            return try full.narrow(axis: 2, start: 0, length: side).narrow(axis: 3, start: 0, length: side)
        }
    }
}
