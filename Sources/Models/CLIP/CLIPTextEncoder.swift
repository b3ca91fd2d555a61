import Tensors

/// A CLIP text tower on its own (transformers `CLIPTextModel` / `CLIPTextModelWithProjection`, or the
/// text half of a full CLIP): the transformer plus the projection into the joint space when there is one.
public final class CLIPTextEncoder {
    public let transformer: CLIPTextTransformer
    let projection: Parameter?

    /// `source` holds HF names (`text_model.*`, optionally `text_projection.weight`); the projection is
    /// built when `projectionDimension` is given.
    public init(_ source: any ParameterSource, configuration: CLIPTextConfiguration, projectionDimension: Int?) throws {
        let root = ParameterScope(source)
        registry = source.registry
        transformer = try CLIPTextTransformer(root["text_model"], configuration: configuration)
        if let projectionDimension {
            guard projectionDimension > 0 else {
                throw ModelError.invalidConfiguration("the text projection dimension \(projectionDimension) must be positive")
            }
            projection = try root["text_projection"].parameter("weight", shape: [projectionDimension, configuration.width], role: .projection)
        } else {
            projection = nil
        }
    }

    public var configuration: CLIPTextConfiguration { transformer.configuration }

    /// The joint-space width E when the tower has a projection.
    public var projectionDimension: Int? { projection?.tensor.shape[0] }

    /// What a sentence embedding is for this tower: the projected pooled state [B, E] when a projection
    /// exists (HF `text_embeds`), else the pooled state [B, W] (HF `pooler_output`).
    public func embed(_ ids: [[Int]]) throws -> Tensor {
        let pooled = try transformer.pooled(ids)
        guard let projection else { return pooled }
        return try linear(pooled, weight: projection.tensor)
    }

    /// Every parameter of the tower, by canonical name and role.
    public let registry: ParameterRegistry
}
