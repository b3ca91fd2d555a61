// OpenAI / OpenCLIP CLIP names → Hugging Face `CLIPModel` names (models.md §1.6–§1.7).
// The two source layouts share names; they differ only in file container and activation.

public enum CLIPLayout {
    /// Buffers that carry no weights: OpenAI's TorchScript integer scalars, HF `position_ids`,
    /// a precomputed causal mask. They are regenerated, never trusted.
    static func derivedBufferReason(_ name: String) -> String? {
        switch name {
        case "input_resolution", "context_length", "vocab_size":
            return "OpenAI TorchScript scalar buffer"
        case "attn_mask":
            return "precomputed causal mask (regenerated)"
        default:
            if name.hasSuffix("position_ids") { return "position ids (regenerated as arange)" }
            return nil
        }
    }

    /// Maps an OpenAI/OpenCLIP state dict. `prefix` is stripped first (e.g. `cond_stage_model.model.`
    /// for SD2's text encoder); `keepTextLayers` drops resblocks at or after that index (SD2 uses 23
    /// of 24); `textOnly` drops the projection and `logit_scale` as SD's text encoders do.
    public static func openCLIPToHF(
        _ tensors: [NamedShape], prefix: String = "", keepTextLayers: Int? = nil, textOnly: Bool = false
    ) -> LayoutPlan {
        var plan = LayoutPlan()
        for tensor in tensors {
            guard let name = DottedName.strip(prefix, from: tensor.name) else {
                plan.unknown.append(tensor.name)
                continue
            }
            if let reason = derivedBufferReason(name) {
                plan.dropped.append((tensor.name, reason))
                continue
            }
            if textOnly, name == "text_projection" || name == "logit_scale" || name.hasPrefix("visual.") {
                plan.dropped.append((tensor.name, "not part of the text encoder SD uses"))
                continue
            }
            if let keep = keepTextLayers, let rest = DottedName.strip("transformer.resblocks.", from: name),
               let (layer, _) = DottedName.leadingIndex(Substring(rest)), layer >= keep {
                plan.dropped.append((tensor.name, "text layer \(layer) is past the \(keep) layers SD uses"))
                continue
            }
            if let targets = mapOpenCLIPName(name, shape: tensor.shape, source: tensor.name) {
                plan.mapped += targets
            } else {
                plan.unknown.append(tensor.name)
            }
        }
        return plan
    }

    static func mapOpenCLIPName(_ name: String, shape: [Int], source: String) -> [MappedTensor]? {
        func one(_ target: String, _ transform: TensorTransform = .copy) -> [MappedTensor] {
            [MappedTensor(source: source, target: target, transform: transform)]
        }
        switch name {
        case "visual.conv1.weight": return one("vision_model.embeddings.patch_embedding.weight")
        case "visual.class_embedding": return one("vision_model.embeddings.class_embedding")
        case "visual.positional_embedding": return one("vision_model.embeddings.position_embedding.weight")
        case "visual.proj": return one("visual_projection.weight", .transpose)
        case "token_embedding.weight": return one("text_model.embeddings.token_embedding.weight")
        case "positional_embedding": return one("text_model.embeddings.position_embedding.weight")
        case "text_projection": return one("text_projection.weight", .transpose)
        case "logit_scale": return one("logit_scale")
        default: break
        }
        for (from, to) in [("visual.ln_pre.", "vision_model.pre_layrnorm."),
                           ("visual.ln_post.", "vision_model.post_layernorm."),
                           ("ln_final.", "text_model.final_layer_norm.")] {
            if let leaf = DottedName.strip(from, from: name) { return one(to + leaf) }
        }
        for (from, to) in [("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                           ("transformer.resblocks.", "text_model.encoder.layers.")] {
            guard let rest = DottedName.strip(from, from: name),
                  let (layer, inner) = DottedName.leadingIndex(Substring(rest)) else { continue }
            return mapResidualBlock(String(inner), shape: shape, targetPrefix: "\(to)\(layer).", source: source)
        }
        return nil
    }

    /// One `ResidualAttentionBlock` → `CLIPEncoderLayer`; the fused `in_proj` becomes q, k, v rows.
    static func mapResidualBlock(_ inner: String, shape: [Int], targetPrefix: String, source: String) -> [MappedTensor]? {
        if inner == "attn.in_proj_weight" || inner == "attn.in_proj_bias" {
            guard let rows = shape.first, rows % 3 == 0 else { return nil }
            let width = rows / 3
            let leaf = inner.hasSuffix("weight") ? "weight" : "bias"
            return ["q", "k", "v"].enumerated().map { index, head in
                MappedTensor(source: source, target: "\(targetPrefix)self_attn.\(head)_proj.\(leaf)",
                             transform: .rows(index * width ..< (index + 1) * width))
            }
        }
        for (from, to) in [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."),
                           ("attn.out_proj.", "self_attn.out_proj."),
                           ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")] {
            if let leaf = DottedName.strip(from, from: inner) {
                return [MappedTensor(source: source, target: targetPrefix + to + leaf)]
            }
        }
        return nil
    }
}
