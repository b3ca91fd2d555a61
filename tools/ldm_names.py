"""diffusers/transformers names -> original LDM single-file names (Stable Diffusion 1.x/2.x).

This is the inverse of the LDM -> diffusers rules in shared/reference/models.md §4, written as small
functions of the model configuration so it works for any block count and layers_per_block (the tiny
fixture UNets have 3 blocks, the real ones 4). make_sd_fixtures.py uses it to write single-file
checkpoints and then checks them with diffusers' own single-file converter, so any mistake here shows
up as a failed load there.
"""
import re

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."

# ResnetBlock2D (diffusers) -> ResBlock (LDM openaimodel.py)
_UNET_RESNET = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
]

_UNET_FIXED = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}


def _rename_prefix(rest, table):
    for old, new in table:
        if rest.startswith(old):
            return new + rest[len(old):]
    raise KeyError(rest)


def unet_key_to_ldm(key, config):
    """One diffusers UNet2DConditionModel key -> its `model.diffusion_model.` LDM key.

    config: the UNet config dict (layers_per_block, up_block_types are used)."""
    per_block = config["layers_per_block"] + 1  # LDM counts the down/upsampler as an extra layer slot
    for old, new in _UNET_FIXED.items():
        if key.startswith(old):
            return UNET_PREFIX + new + key[len(old):]

    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)$", key)
    if m:
        block, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":  # conv.weight -> op.weight, in the slot after the last layer
            n = 1 + block * per_block + config["layers_per_block"]
            return f"{UNET_PREFIX}input_blocks.{n}.0.op.{rest[len('conv.'):]}"
        n = 1 + block * per_block + j
        if kind == "resnets":
            return f"{UNET_PREFIX}input_blocks.{n}.0.{_rename_prefix(rest, _UNET_RESNET)}"
        return f"{UNET_PREFIX}input_blocks.{n}.1.{rest}"

    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", key)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "attentions":
            return f"{UNET_PREFIX}middle_block.1.{rest}"
        return f"{UNET_PREFIX}middle_block.{2 * j}.{_rename_prefix(rest, _UNET_RESNET)}"

    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)$", key)
    if m:
        block, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            # The upsampler sits in the block's last layer slot, after the resnet (index 1) or, when the
            # block has attention, after the transformer (index 2).
            n = block * per_block + config["layers_per_block"]
            slot = 2 if "CrossAttn" in config["up_block_types"][block] else 1
            return f"{UNET_PREFIX}output_blocks.{n}.{slot}.{rest}"
        n = block * per_block + j
        if kind == "resnets":
            return f"{UNET_PREFIX}output_blocks.{n}.0.{_rename_prefix(rest, _UNET_RESNET)}"
        return f"{UNET_PREFIX}output_blocks.{n}.1.{rest}"
    raise KeyError(f"no LDM name rule for UNet key {key}")


_VAE_FIXED = {
    "encoder.conv_norm_out.": "encoder.norm_out.",
    "decoder.conv_norm_out.": "decoder.norm_out.",
}

_VAE_ATTENTION = [
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def _vae_resnet(rest):
    return rest.replace("conv_shortcut.", "nin_shortcut.")


def vae_key_to_ldm(key, config):
    """One diffusers AutoencoderKL key -> its `first_stage_model.` LDM key."""
    for old, new in _VAE_FIXED.items():
        if key.startswith(old):
            return VAE_PREFIX + new + key[len(old):]
    num_up = len(config["up_block_types"])
    m = re.match(r"encoder\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0)\.(.*)$", key)
    if m:
        i, rest = int(m[1]), m[4]
        if m[3] is None:
            return f"{VAE_PREFIX}encoder.down.{i}.downsample.{rest}"
        return f"{VAE_PREFIX}encoder.down.{i}.block.{m[3]}.{_vae_resnet(rest)}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsamplers\.0)\.(.*)$", key)
    if m:
        i = num_up - 1 - int(m[1])  # LDM numbers decoder levels from the lowest resolution up
        rest = m[4]
        if m[3] is None:
            return f"{VAE_PREFIX}decoder.up.{i}.upsample.{rest}"
        return f"{VAE_PREFIX}decoder.up.{i}.block.{m[3]}.{_vae_resnet(rest)}"
    m = re.match(r"(encoder|decoder)\.mid_block\.(resnets\.(\d+)|attentions\.0)\.(.*)$", key)
    if m:
        part, rest = m[1], m[4]
        if m[3] is not None:
            return f"{VAE_PREFIX}{part}.mid.block_{int(m[3]) + 1}.{_vae_resnet(rest)}"
        return f"{VAE_PREFIX}{part}.mid.attn_1.{_rename_prefix(rest, _VAE_ATTENTION)}"
    if re.match(r"(encoder|decoder)\.(conv_in|conv_out)\.|(quant_conv|post_quant_conv)\.", key):
        return VAE_PREFIX + key
    raise KeyError(f"no LDM name rule for VAE key {key}")


def vae_tensor_to_ldm(key, tensor):
    """LDM stores the VAE mid-attention q/k/v/proj_out as 1x1 convs [C,C,1,1]; diffusers as Linear [C,C]."""
    if re.search(r"mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$", key):
        return tensor[:, :, None, None]
    return tensor


def unet_to_ldm(state, config):
    return {unet_key_to_ldm(k, config): v for k, v in state.items()}


def vae_to_ldm(state, config):
    return {vae_key_to_ldm(k, config): vae_tensor_to_ldm(k, v) for k, v in state.items()}


def sd1_text_to_ldm(hf_state):
    """HF CLIPTextModel keys (with or without the `text_model.` wrapper) -> `cond_stage_model.transformer.`."""
    out = {}
    for k, v in hf_state.items():
        k = k if k.startswith("text_model.") else "text_model." + k
        out[SD1_TEXT_PREFIX + k] = v
    return out


def openclip_text_to_hf(oc_state, keep_layers):
    """open_clip text-tower keys -> HF CLIPTextModel keys (`text_model.` form), for SD2's diffusers
    text encoder: keep resblocks 0..keep_layers-1 (the penultimate-layer trick), split fused QKV,
    drop text_projection and logit_scale (models.md §4.4)."""
    hf = {}
    for k, v in oc_state.items():
        if k in ("text_projection", "logit_scale", "attn_mask") or k.startswith("visual."):
            continue
        if k == "token_embedding.weight":
            hf["text_model.embeddings.token_embedding.weight"] = v
        elif k == "positional_embedding":
            hf["text_model.embeddings.position_embedding.weight"] = v
        elif k.startswith("ln_final."):
            hf["text_model.final_layer_norm." + k[len("ln_final."):]] = v
        else:
            m = re.match(r"transformer\.resblocks\.(\d+)\.(.*)$", k)
            if not m:
                raise KeyError(f"no HF name rule for open_clip key {k}")
            i, rest = int(m[1]), m[2]
            if i >= keep_layers:
                continue
            base = f"text_model.encoder.layers.{i}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = "weight" if rest.endswith("weight") else "bias"
                q, kk, vv = v.chunk(3, dim=0)  # fused rows are [q; k; v]
                hf[base + f"self_attn.q_proj.{kind}"] = q.contiguous()
                hf[base + f"self_attn.k_proj.{kind}"] = kk.contiguous()
                hf[base + f"self_attn.v_proj.{kind}"] = vv.contiguous()
                continue
            table = [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
                     ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]
            hf[base + _rename_prefix(rest, table)] = v
    return hf


def sd2_text_to_ldm(oc_state):
    """The full open_clip text tower (all layers, text_projection, logit_scale) under `cond_stage_model.model.`,
    as FrozenOpenCLIPEmbedder stores it (the vision tower deleted)."""
    return {SD2_TEXT_PREFIX + k: v for k, v in oc_state.items() if not k.startswith("visual.") and k != "attn_mask"}


def ema_key(ldm_unet_key):
    """LitEma's buffer name for a `model.diffusion_model.` key: drop `model.`, delete every dot."""
    assert ldm_unet_key.startswith("model.")
    return "model_ema." + ldm_unet_key[len("model."):].replace(".", "")
