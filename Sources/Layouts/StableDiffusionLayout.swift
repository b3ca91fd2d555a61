import Foundation

// Single-file LDM (CompVis / Stability) names → diffusers names for the UNet, the VAE and the text
// encoders (models.md §4). The block arithmetic depends on `layers_per_block`, which is read from
// the key set itself, so non-standard sizes (the tiny fixtures, custom models) map the same way.

public enum StableDiffusionLayout {
    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."
    public static let sd1TextPrefix = "cond_stage_model.transformer."
    public static let sd2TextPrefix = "cond_stage_model.model."

    /// DDPM schedule buffers stored next to the weights in LDM files.
    public static let scheduleBuffers: Set<String> = [
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
        "posterior_mean_coef1", "posterior_mean_coef2", "model_ema.decay", "model_ema.num_updates",
    ]

    // MARK: UNet

    /// `layers_per_block` of an LDM UNet: the first downsampler sits at `input_blocks.{L+1}.0.op`.
    /// Nil when the key set shows none, or an impossible one (a downsampler at block 0 would mean −1 layers).
    public static func unetLayersPerBlock(_ names: [String]) -> Int? {
        var best: Int?
        for name in names {
            guard let rest = DottedName.strip("input_blocks.", from: name),
                  let (n, inner) = DottedName.leadingIndex(Substring(rest)), inner.hasPrefix("0.op.") else { continue }
            best = min(best ?? n, n)
        }
        if let first = best { return first >= 1 ? first - 1 : nil }
        // No downsampler (a single down block): every input block after conv_in is a layer.
        let indices = Set(names.compactMap { name -> Int? in
            guard let rest = DottedName.strip("input_blocks.", from: name) else { return nil }
            return DottedName.leadingIndex(Substring(rest))?.0
        })
        return indices.isEmpty ? nil : indices.count - 1
    }

    /// Maps a UNet. `tensors` carry full LDM names; `prefix` (default `model.diffusion_model.`) is
    /// stripped first. `layersPerBlock` defaults to what the key set shows.
    public static func unetToDiffusers(_ tensors: [NamedShape], prefix: String = unetPrefix, layersPerBlock: Int? = nil) -> LayoutPlan {
        var plan = LayoutPlan()
        let stripped = tensors.compactMap { DottedName.strip(prefix, from: $0.name) }
        guard let layers = layersPerBlock ?? unetLayersPerBlock(stripped), layers >= 0, layers < Int.max else {
            plan.unknown = tensors.map(\.name)
            return plan
        }
        for tensor in tensors {
            guard let name = DottedName.strip(prefix, from: tensor.name),
                  let target = unetName(name, layersPerBlock: layers) else {
                plan.unknown.append(tensor.name)
                continue
            }
            plan.mapped.append(MappedTensor(source: tensor.name, target: target))
        }
        return plan
    }

    static func unetName(_ name: String, layersPerBlock layers: Int) -> String? {
        let fixed: [(String, String)] = [
            ("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
            ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
        ]
        for (from, to) in fixed {
            if let leaf = DottedName.strip(from, from: name) { return to + leaf }
        }
        if let rest = DottedName.strip("input_blocks.", from: name),
           let (n, afterBlock) = DottedName.leadingIndex(Substring(rest)), n >= 1,
           let (part, inner) = DottedName.leadingIndex(afterBlock) {
            let block = (n - 1) / (layers + 1), slot = (n - 1) % (layers + 1)
            if part == 0, let leaf = DottedName.strip("op.", from: String(inner)) {
                return "down_blocks.\(block).downsamplers.0.conv.\(leaf)"
            }
            if part == 0, let resnet = resnetName(String(inner)) { return "down_blocks.\(block).resnets.\(slot).\(resnet)" }
            if part == 1 { return "down_blocks.\(block).attentions.\(slot).\(inner)" }
            return nil
        }
        if let rest = DottedName.strip("middle_block.", from: name),
           let (part, inner) = DottedName.leadingIndex(Substring(rest)) {
            switch part {
            case 0: return resnetName(String(inner)).map { "mid_block.resnets.0.\($0)" }
            case 1: return "mid_block.attentions.0.\(inner)"
            case 2: return resnetName(String(inner)).map { "mid_block.resnets.1.\($0)" }
            default: return nil
            }
        }
        if let rest = DottedName.strip("output_blocks.", from: name),
           let (n, afterBlock) = DottedName.leadingIndex(Substring(rest)),
           let (part, inner) = DottedName.leadingIndex(afterBlock) {
            let block = n / (layers + 1), slot = n % (layers + 1)
            // An upsampler is the only direct `.conv` child: `.1.conv` without attention, `.2.conv` with.
            if part >= 1, let leaf = DottedName.strip("conv.", from: String(inner)) {
                return "up_blocks.\(block).upsamplers.0.conv.\(leaf)"
            }
            if part == 0 { return resnetName(String(inner)).map { "up_blocks.\(block).resnets.\(slot).\($0)" } }
            if part == 1 { return "up_blocks.\(block).attentions.\(slot).\(inner)" }
            return nil
        }
        return nil
    }

    static func resnetName(_ inner: String) -> String? {
        let rules: [(String, String)] = [
            ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
            ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."),
        ]
        for (from, to) in rules {
            if let leaf = DottedName.strip(from, from: inner) { return to + leaf }
        }
        return nil
    }

    // MARK: VAE

    /// Maps an AutoencoderKL. The decoder's `up.{i}` runs in reverse of diffusers' `up_blocks`,
    /// so the block count is read from the key set.
    public static func vaeToDiffusers(_ tensors: [NamedShape], prefix: String = vaePrefix) -> LayoutPlan {
        var plan = LayoutPlan()
        let upIndices = tensors.compactMap { tensor -> Int? in
            guard let name = DottedName.strip(prefix + "decoder.up.", from: tensor.name) else { return nil }
            return DottedName.leadingIndex(Substring(name))?.0
        }
        // Indices come from the file: `decoder.up.9223372036854775807` must not overflow the count.
        let (upBlocks, overflow) = (upIndices.max() ?? -1).addingReportingOverflow(1)
        guard !overflow else {
            plan.unknown = tensors.map(\.name)
            return plan
        }
        for tensor in tensors {
            guard let name = DottedName.strip(prefix, from: tensor.name),
                  let mapped = vaeName(name, upBlocks: upBlocks) else {
                plan.unknown.append(tensor.name)
                continue
            }
            // LDM stores the mid-block attention projections as 1×1 convs; diffusers as linears.
            let transform: TensorTransform = (mapped.isAttentionProjection && tensor.shape.count == 4) ? .squeeze1x1 : .copy
            plan.mapped.append(MappedTensor(source: tensor.name, target: mapped.name, transform: transform))
        }
        return plan
    }

    static func vaeName(_ name: String, upBlocks: Int) -> (name: String, isAttentionProjection: Bool)? {
        for coder in ["encoder", "decoder"] {
            guard let rest = DottedName.strip(coder + ".", from: name) else { continue }
            if let leaf = DottedName.strip("norm_out.", from: rest) { return ("\(coder).conv_norm_out.\(leaf)", false) }
            if rest.hasPrefix("conv_in.") || rest.hasPrefix("conv_out.") { return ("\(coder).\(rest)", false) }
            if let mid = DottedName.strip("mid.", from: rest) {
                if let inner = DottedName.strip("block_1.", from: mid) {
                    return vaeResnetName(inner).map { ("\(coder).mid_block.resnets.0.\($0)", false) }
                }
                if let inner = DottedName.strip("block_2.", from: mid) {
                    return vaeResnetName(inner).map { ("\(coder).mid_block.resnets.1.\($0)", false) }
                }
                if let inner = DottedName.strip("attn_1.", from: mid) {
                    return vaeAttentionName(inner).map { ("\(coder).mid_block.attentions.0.\($0.name)", $0.isProjection) }
                }
                return nil
            }
            let stage = coder == "encoder" ? "down." : "up."
            guard let staged = DottedName.strip(stage, from: rest),
                  let (index, inner) = DottedName.leadingIndex(Substring(staged)) else { return nil }
            let block = coder == "encoder" ? "down_blocks.\(index)" : "up_blocks.\(upBlocks - 1 - index)"
            if let blockRest = DottedName.strip("block.", from: String(inner)),
               let (slot, resnetInner) = DottedName.leadingIndex(Substring(blockRest)) {
                return vaeResnetName(String(resnetInner)).map { ("\(coder).\(block).resnets.\(slot).\($0)", false) }
            }
            if let leaf = DottedName.strip("downsample.conv.", from: String(inner)) {
                return ("\(coder).\(block).downsamplers.0.conv.\(leaf)", false)
            }
            if let leaf = DottedName.strip("upsample.conv.", from: String(inner)) {
                return ("\(coder).\(block).upsamplers.0.conv.\(leaf)", false)
            }
            return nil
        }
        if name.hasPrefix("quant_conv.") || name.hasPrefix("post_quant_conv.") { return (name, false) }
        return nil
    }

    static func vaeResnetName(_ inner: String) -> String? {
        if let leaf = DottedName.strip("nin_shortcut.", from: inner) { return "conv_shortcut." + leaf }
        for part in ["norm1.", "conv1.", "norm2.", "conv2."] where inner.hasPrefix(part) { return inner }
        return nil
    }

    static func vaeAttentionName(_ inner: String) -> (name: String, isProjection: Bool)? {
        let rules: [(String, String, Bool)] = [
            ("norm.", "group_norm.", false), ("q.", "to_q.", true), ("k.", "to_k.", true),
            ("v.", "to_v.", true), ("proj_out.", "to_out.0.", true),
        ]
        for (from, to, projection) in rules {
            if let leaf = DottedName.strip(from, from: inner) { return (to + leaf, projection) }
        }
        return nil
    }

    /// Older diffusers VAE files name the mid-block attention `query/key/value/proj_attn`.
    public static func modernizeDiffusersVAEName(_ name: String) -> String {
        let rules: [(String, String)] = [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")]
        for (old, new) in rules where name.contains(".attentions.") && name.contains(old) {
            return name.replacingFirst(old, with: new)
        }
        return name
    }

    // MARK: Text encoders

    /// SD1: the HF CLIP text model under `cond_stage_model.transformer.`; old files lack `text_model.`.
    public static func sd1TextToHF(_ tensors: [NamedShape], prefix: String = sd1TextPrefix) -> LayoutPlan {
        var plan = LayoutPlan()
        for tensor in tensors {
            guard let name = DottedName.strip(prefix, from: tensor.name) else {
                plan.unknown.append(tensor.name)
                continue
            }
            if name.hasSuffix("position_ids") {
                plan.dropped.append((tensor.name, "position ids (regenerated as arange)"))
                continue
            }
            let target = name.hasPrefix("text_model.") ? name : "text_model." + name
            plan.mapped.append(MappedTensor(source: tensor.name, target: target))
        }
        return plan
    }

    /// SD2: OpenCLIP ViT-H text under `cond_stage_model.model.`, penultimate layer (23 of 24 kept).
    public static func sd2TextToHF(_ tensors: [NamedShape], prefix: String = sd2TextPrefix, layersUsed: Int? = nil) -> LayoutPlan {
        let layerCount = Set(tensors.compactMap { tensor -> Int? in
            guard let rest = DottedName.strip(prefix + "transformer.resblocks.", from: tensor.name) else { return nil }
            return DottedName.leadingIndex(Substring(rest))?.0
        }).count
        let keep = layersUsed ?? max(layerCount - 1, 0)
        return CLIPLayout.openCLIPToHF(tensors, prefix: prefix, keepTextLayers: keep, textOnly: true)
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
