import Foundation
import Models
import Tensors

/// The `clip-text` verify component: a text tower on its own. Bundles hold `inputs.input_ids` and any of
/// `last_hidden_state` [B, L, W] (after the final LayerNorm), `pooler_output` [B, W] and, for towers with
/// a projection, `text_embeds` [B, E] (transformers' `CLIPTextModel[WithProjection]` outputs).
enum CLIPTextRunner {
    static func run(model path: String, bundle: ReferenceBundle, options: ModelVerifier.Options) throws -> (outputs: [String: Tensor], notes: [String]) {
        let loaded = try CLIPLoader.loadText(path, configuration: options.configuration)
        let precision = try loaded.encoder.registry.apply(options.precision, model: "CLIP text tower")
        let ids = try bundle.idRows("input_ids")
        let transformer = loaded.encoder.transformer
        let states = try transformer.hiddenStates(ids)
        let pooled = try transformer.pool(states, ids: ids)
        var outputs = ["last_hidden_state": states, "pooler_output": pooled]
        if loaded.encoder.projectionDimension != nil { outputs["text_embeds"] = try loaded.encoder.embed(ids) }
        let projection = loaded.encoder.projectionDimension.map { "projection to \($0)" } ?? "no projection"
        let notes = ["layout \(loaded.layout.rawValue), \(loaded.format.rawValue), text tower with \(projection), configuration from \(loaded.configurationSource)"]
        return (outputs, notes + loaded.notes + [precision])
    }
}
