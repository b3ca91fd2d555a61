// OpenAI / OpenCLIP CLIP names ↔ Hugging Face `CLIPModel` names (models.md §1.6–§1.7): loading maps
// them to HF, export maps HF back, both from the same rule tables. The two non-HF layouts share names;
// they differ only in file container and activation.

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

    // MARK: Rules (one table for both directions)

    /// Whole-tensor renames, OpenAI/OpenCLIP → HF; transposes are their own inverse.
    static let tensorRules: [(openCLIP: String, hf: String, transform: TensorTransform)] = [
        ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", .copy),
        ("visual.class_embedding", "vision_model.embeddings.class_embedding", .copy),
        ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", .copy),
        ("visual.proj", "visual_projection.weight", .transpose),
        ("token_embedding.weight", "text_model.embeddings.token_embedding.weight", .copy),
        ("positional_embedding", "text_model.embeddings.position_embedding.weight", .copy),
        ("text_projection", "text_projection.weight", .transpose),
        ("logit_scale", "logit_scale", .copy),
    ]
    /// Prefix renames of the towers' outer LayerNorms (HF's "layrnorm" typo included).
    static let normRules: [(openCLIP: String, hf: String)] = [
        ("visual.ln_pre.", "vision_model.pre_layrnorm."),
        ("visual.ln_post.", "vision_model.post_layernorm."),
        ("ln_final.", "text_model.final_layer_norm."),
    ]
    /// Where each tower's residual blocks live (the vision prefix first: the text one is its suffix).
    static let towerRules: [(openCLIP: String, hf: String)] = [
        ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
        ("transformer.resblocks.", "text_model.encoder.layers."),
    ]
    /// Renames inside one `ResidualAttentionBlock` ↔ `CLIPEncoderLayer`, besides the fused attention.
    static let blockRules: [(openCLIP: String, hf: String)] = [
        ("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
        ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."),
    ]
    /// The fused attention input `attn.in_proj_{weight,bias}` holds these HF projections' rows, in order.
    static let fusedProjections = ["q", "k", "v"]

    static func mapOpenCLIPName(_ name: String, shape: [Int], source: String) -> [MappedTensor]? {
        if let rule = tensorRules.first(where: { $0.openCLIP == name }) {
            return [MappedTensor(source: source, target: rule.hf, transform: rule.transform)]
        }
        for rule in normRules {
            if let leaf = DottedName.strip(rule.openCLIP, from: name) { return [MappedTensor(source: source, target: rule.hf + leaf)] }
        }
        for rule in towerRules {
            guard let rest = DottedName.strip(rule.openCLIP, from: name),
                  let (layer, inner) = DottedName.leadingIndex(Substring(rest)) else { continue }
            return mapResidualBlock(String(inner), shape: shape, targetPrefix: "\(rule.hf)\(layer).", source: source)
        }
        return nil
    }

    /// One `ResidualAttentionBlock` → `CLIPEncoderLayer`; the fused `in_proj` becomes q, k, v rows.
    static func mapResidualBlock(_ inner: String, shape: [Int], targetPrefix: String, source: String) -> [MappedTensor]? {
        if inner == "attn.in_proj_weight" || inner == "attn.in_proj_bias" {
            guard let rows = shape.first, rows % fusedProjections.count == 0 else { return nil }
            let width = rows / fusedProjections.count
            let leaf = inner.hasSuffix("weight") ? "weight" : "bias"
            return fusedProjections.enumerated().map { index, head in
                MappedTensor(source: source, target: "\(targetPrefix)self_attn.\(head)_proj.\(leaf)",
                             transform: .rows(index * width ..< (index + 1) * width))
            }
        }
        for rule in blockRules {
            if let leaf = DottedName.strip(rule.openCLIP, from: inner) {
                return [MappedTensor(source: source, target: targetPrefix + rule.hf + leaf)]
            }
        }
        return nil
    }

    // MARK: Export: HF → OpenAI/OpenCLIP

    /// Maps a full CLIP's canonical (HF) tensors to the OpenAI/OpenCLIP state dict that open_clip's
    /// `CLIP` (and OpenAI's `build_model`) load: q, k and v rows are stacked into the fused `in_proj`,
    /// the projections transposed back to right-multiplied `[W, E]` matrices.
    public static func hfToOpenCLIP(_ tensors: [NamedShape]) -> ExportPlan {
        var plan = ExportPlan()
        // Fused targets collect their parts by slot; order of first appearance is kept.
        var fusedParts: [String: [String?]] = [:]
        var order: [(target: String, single: TensorAssembly?)] = []
        for tensor in tensors {
            switch openCLIPName(tensor.name) {
            case .none:
                plan.unknown.append(tensor.name)
            case .some(.whole(let target, let transform)):
                order.append((target, .single(tensor.name, transform)))
            case .some(.fusedPart(let target, let slot)):
                if fusedParts[target] == nil {
                    fusedParts[target] = Array(repeating: nil, count: fusedProjections.count)
                    order.append((target, nil))
                }
                fusedParts[target]?[slot] = tensor.name
            }
        }
        for (target, single) in order {
            if let single {
                plan.assembled.append(AssembledTensor(target: target, assembly: single))
                continue
            }
            let parts = fusedParts[target] ?? []
            let present = parts.compactMap { $0 }
            if present.count == parts.count {
                plan.assembled.append(AssembledTensor(target: target, assembly: .concatenatedRows(present)))
            } else {
                let missing = zip(parts, fusedProjections).filter { $0.0 == nil }.map { "\($0.1)_proj" }
                plan.incomplete.append((target, missing))
            }
        }
        return plan
    }

    enum OpenCLIPTarget: Equatable {
        case whole(String, TensorTransform)
        /// Slot `slot` (q 0, k 1, v 2) of a fused `in_proj` tensor.
        case fusedPart(String, slot: Int)
    }

    /// The OpenAI/OpenCLIP name of one canonical tensor (the inverse of `mapOpenCLIPName`).
    static func openCLIPName(_ name: String) -> OpenCLIPTarget? {
        if let rule = tensorRules.first(where: { $0.hf == name }) { return .whole(rule.openCLIP, rule.transform) }
        for rule in normRules {
            if let leaf = DottedName.strip(rule.hf, from: name) { return .whole(rule.openCLIP + leaf, .copy) }
        }
        for rule in towerRules {
            guard let rest = DottedName.strip(rule.hf, from: name),
                  let (layer, inner) = DottedName.leadingIndex(Substring(rest)) else { continue }
            let prefix = "\(rule.openCLIP)\(layer)."
            for blockRule in blockRules {
                if let leaf = DottedName.strip(blockRule.hf, from: String(inner)) { return .whole(prefix + blockRule.openCLIP + leaf, .copy) }
            }
            for (slot, head) in fusedProjections.enumerated() {
                for leaf in ["weight", "bias"] where inner == "self_attn.\(head)_proj.\(leaf)" {
                    return .fusedPart(prefix + "attn.in_proj_\(leaf)", slot: slot)
                }
            }
            return nil
        }
        return nil
    }
}
