import Foundation
import Tensors

/// The text tower: token + position embeddings, a causal encoder, the final LayerNorm.
/// Also serves as Stable Diffusion's text encoder (SD1: all layers; SD2: one layer fewer).
public final class CLIPTextTransformer {
    public let configuration: CLIPTextConfiguration
    let tokenEmbedding: Parameter
    let positionEmbedding: Parameter
    let encoder: CLIPEncoder
    public let finalLayerNorm: LayerNorm
    /// The registry of the source this tower was built from (shared with a full CLIP's other parts).
    public let registry: ParameterRegistry

    /// `scope` is the `text_model` scope of HF names.
    public init(_ scope: ParameterScope, configuration c: CLIPTextConfiguration) throws {
        try c.validate()
        configuration = c
        registry = scope.source.registry
        tokenEmbedding = try scope["embeddings"]["token_embedding"].parameter("weight", shape: [c.vocabularySize, c.width], role: .embedding)
        positionEmbedding = try scope["embeddings"]["position_embedding"].parameter("weight", shape: [c.contextLength, c.width], role: .positionEmbedding)
        encoder = try CLIPEncoder(scope["encoder"], count: c.layers, width: c.width, heads: c.heads,
                                  mlpWidth: c.mlpWidth, activation: c.activation, epsilon: c.layerNormEpsilon)
        finalLayerNorm = try LayerNorm(scope["final_layer_norm"], width: c.width, epsilon: c.layerNormEpsilon)
    }

    func checkIDs(_ ids: [[Int]]) throws -> Int {
        guard let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw ModelError.invalidInput("token id rows must be non-empty and of equal length")
        }
        guard length <= configuration.contextLength else {
            throw ModelError.invalidInput("\(length) tokens exceed the context length \(configuration.contextLength)")
        }
        return length
    }

    /// Final-LayerNorm'd hidden states [B, L, W] after `layers` encoder layers (all when nil):
    /// SD1 conditioning uses all, SD2's "penultimate" uses all but one.
    public func hiddenStates(_ ids: [[Int]], layers: Int? = nil) throws -> Tensor {
        let length = try checkIDs(ids)
        let batch = ids.count
        let tokens = try embedding(ids: ids.flatMap { $0 }, idsShape: [batch, length], table: tokenEmbedding.tensor)
        let positions = try positionEmbedding.tensor.narrow(axis: 0, start: 0, length: length)
        let x = try tokens + positions
        let h = try encoder(x, mask: .causal, limit: layers)
        return try finalLayerNorm(h)
    }

    /// The pooled state [B, W] at each row's end token. Attention is causal, so the state at position p
    /// depends on tokens 0...p only: the tokens after the last pooling position (padding, mostly) are
    /// not run at all. Exact, and for short prompts several times less work than all 77 positions.
    public func pooled(_ ids: [[Int]]) throws -> Tensor {
        _ = try checkIDs(ids)
        // Ids past the pooling positions are not run, but bad ones are still bad input.
        let vocabulary = configuration.vocabularySize
        if let bad = ids.lazy.joined().first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw ModelError.invalidInput("token id \(bad) is outside the vocabulary of \(vocabulary)")
        }
        let positions = try ids.map { try poolingPosition($0) }
        let needed = (positions.max() ?? 0) + 1
        let states = try hiddenStates(needed < ids[0].count ? ids.map { Array($0.prefix(needed)) } : ids)
        return try gatherRows(states, positions: positions)
    }

    /// The rows of `states` [B, L, W] (from `hiddenStates(ids)`) at each row's end token: [B, W].
    public func pool(_ states: Tensor, ids: [[Int]]) throws -> Tensor {
        guard states.rank == 3, states.shape[0] == ids.count, states.shape[1] == (ids.first?.count ?? 0) else {
            throw ModelError.invalidInput("hidden states \(states.shape) do not match \(ids.count) rows of \(ids.first?.count ?? 0) ids")
        }
        let positions = try ids.map { try poolingPosition($0) }
        return try gatherRows(states, positions: positions)
    }

    func poolingPosition(_ row: [Int]) throws -> Int {
        switch configuration.pooling {
        case .argmax:
            var best = 0
            for (index, id) in row.enumerated() where id > row[best] { best = index }
            return best
        case .firstToken(let id):
            guard let index = row.firstIndex(of: id) else {
                throw ModelError.invalidInput("a text row has no end token \(id) to pool at")
            }
            return index
        }
    }

}

/// Rows `positions[b]` of `states[b]`: [B, L, W] → [B, W].
func gatherRows(_ states: Tensor, positions: [Int]) throws -> Tensor {
    let rows = try positions.enumerated().map { batch, position in
        try states.narrow(axis: 0, start: batch, length: 1).narrow(axis: 1, start: position, length: 1)
    }
    return try concat(rows, axis: 0).reshape([positions.count, states.shape[2]])
}

/// The image tower: patch embedding (a stride-P convolution, done as one GEMM over patches),
/// class token, positions, pre-LayerNorm, encoder, post-LayerNorm of the class token.
public final class CLIPVisionTransformer {
    public let configuration: CLIPVisionConfiguration
    let patchEmbedding: Parameter
    let classEmbedding: Parameter
    let positionEmbedding: Parameter
    let preLayerNorm: LayerNorm
    let encoder: CLIPEncoder
    let postLayerNorm: LayerNorm

    /// `scope` is the `vision_model` scope of HF names.
    public init(_ scope: ParameterScope, configuration c: CLIPVisionConfiguration) throws {
        try c.validate()
        configuration = c
        let embeddings = scope["embeddings"]
        patchEmbedding = try embeddings["patch_embedding"].parameter("weight", shape: [c.width, 3, c.patchSize, c.patchSize], role: .convWeight)
        classEmbedding = try embeddings.parameter("class_embedding", shape: [c.width], role: .classEmbedding)
        positionEmbedding = try embeddings["position_embedding"].parameter("weight", shape: [c.tokenCount, c.width], role: .positionEmbedding)
        preLayerNorm = try LayerNorm(scope["pre_layrnorm"], width: c.width, epsilon: c.layerNormEpsilon)
        encoder = try CLIPEncoder(scope["encoder"], count: c.layers, width: c.width, heads: c.heads,
                                  mlpWidth: c.mlpWidth, activation: c.activation, epsilon: c.layerNormEpsilon)
        postLayerNorm = try LayerNorm(scope["post_layernorm"], width: c.width, epsilon: c.layerNormEpsilon)
    }

    /// Hidden states [B, 1+G², W] after the encoder (before the post-LayerNorm).
    public func hiddenStates(_ pixels: Tensor) throws -> Tensor {
        let c = configuration
        guard pixels.rank == 4, pixels.shape[1] == 3, pixels.shape[2] == c.imageSize, pixels.shape[3] == c.imageSize else {
            throw ModelError.invalidInput("pixel values must be [B, 3, \(c.imageSize), \(c.imageSize)], got \(pixels.shape)")
        }
        let (batch, grid, patch) = (pixels.shape[0], c.gridSize, c.patchSize)
        // [B,3,G,P,G,P] → [B,G,G,3,P,P] → [B·G², 3·P²]: each row one patch, channel-major like the conv kernel.
        let patches = try pixels.reshape([batch, 3, grid, patch, grid, patch])
            .permute([0, 2, 4, 1, 3, 5]).reshape([batch, grid * grid, 3 * patch * patch])
        let kernel = try patchEmbedding.tensor.reshape([c.width, 3 * patch * patch])
        let embedded = try linear(patches, weight: kernel)
        let cls = try classEmbedding.tensor.reshape([1, 1, c.width]) + Tensor(zeros: [batch, 1, c.width])
        let tokens = try concat([cls, embedded], axis: 1) + positionEmbedding.tensor
        return try encoder(preLayerNorm(tokens), mask: .none)
    }

    /// The pooled, post-LayerNorm'd class token [B, W].
    public func pooled(_ pixels: Tensor) throws -> Tensor {
        try pool(hiddenStates(pixels))
    }

    /// The post-LayerNorm'd class token [B, W] of hidden states from `hiddenStates`.
    public func pool(_ states: Tensor) throws -> Tensor {
        try postLayerNorm(gatherRows(states, positions: Array(repeating: 0, count: states.shape[0])))
    }

    /// The patch tokens [B, G², W] of hidden states from `hiddenStates` (the class token dropped).
    public func patchTokens(_ states: Tensor) throws -> Tensor {
        try states.narrow(axis: 1, start: 1, length: states.shape[1] - 1)
    }

}

/// CLIP with HF `CLIPModel` names: both towers, their projections and the logit scale.
public final class CLIPModel {
    public let configuration: CLIPConfiguration
    public let text: CLIPTextTransformer
    public let vision: CLIPVisionTransformer
    let textProjection: Parameter
    let visualProjection: Parameter
    public let logitScale: Parameter

    public init(_ source: any ParameterSource, configuration c: CLIPConfiguration) throws {
        let root = ParameterScope(source)
        configuration = c
        registry = source.registry
        text = try CLIPTextTransformer(root["text_model"], configuration: c.text)
        vision = try CLIPVisionTransformer(root["vision_model"], configuration: c.vision)
        textProjection = try root["text_projection"].parameter("weight", shape: [c.embedDimension, c.text.width], role: .projection)
        visualProjection = try root["visual_projection"].parameter("weight", shape: [c.embedDimension, c.vision.width], role: .projection)
        logitScale = try root.parameter("logit_scale", shape: [], role: .logitScale)
    }

    /// Projected, unnormalised image embeddings [B, E] (HF `image_embeds` before normalising).
    public func encodeImage(_ pixels: Tensor) throws -> Tensor {
        try linear(vision.pooled(pixels), weight: visualProjection.tensor)
    }

    /// Projects pooled image states [B, W] into the joint space [B, E].
    public func projectImage(_ pooled: Tensor) throws -> Tensor {
        try linear(pooled, weight: visualProjection.tensor)
    }

    /// Projected, unnormalised text embeddings [B, E].
    public func encodeText(_ ids: [[Int]]) throws -> Tensor {
        try linear(text.pooled(ids), weight: textProjection.tensor)
    }

    /// exp(logit_scale) · normalised image · normalised textᵀ: [B_image, B_text].
    public func logits(imageEmbeddings: Tensor, textEmbeddings: Tensor) throws -> Tensor {
        let image = try l2Normalize(imageEmbeddings, axis: -1)
        let text = try l2Normalize(textEmbeddings, axis: -1)
        return try matmul(image, text.transpose(0, 1)) * exp(logitScale.tensor)
    }

    /// Training logits: as `logits`, with the temperature clamped at 100 as CLIP's training does
    /// (`logit_scale.exp().clamp(max=100)`: no gradient reaches logit_scale while clamped).
    public func trainingLogits(imageEmbeddings: Tensor, textEmbeddings: Tensor) throws -> Tensor {
        let image = try l2Normalize(imageEmbeddings, axis: -1)
        let text = try l2Normalize(textEmbeddings, axis: -1)
        let scale = Foundation.exp(logitScale.value.item) > 100 ? Tensor.scalar(100) : exp(logitScale.tensor)
        return try matmul(image, text.transpose(0, 1)) * scale
    }

    /// Every parameter of both towers, by canonical name and role.
    public let registry: ParameterRegistry
}
