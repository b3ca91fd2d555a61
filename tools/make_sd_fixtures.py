#!/usr/bin/env python3
"""Tiny random Stable Diffusion 1.x/2.x models in every layout sdsclip reads, with reference bundles.

Writes fixtures/sd/ (see the README.md it generates there for the file list and sizes):
  sd1_diffusers/, sd2_diffusers/   diffusers pipeline folders (unet, vae, text_encoder, scheduler, model_index.json);
                                   sd1 has an fp16 VAE variant, sd2 a 2-shard text encoder with an index
  sd1_tiny.ckpt                    Lightning-style torch zip with LDM names, schedule buffers and EMA copies
  sd1_tiny.safetensors             the same non-EMA LDM state dict, flat
  sd2_tiny.safetensors             SD2 LDM state dict (linear proj_in/out, open_clip text tower)
  *.reference.safetensors          inputs/outputs of each component, computed by diffusers/transformers/open_clip
  schedule.reference.safetensors   golden betas, alphas_cumprod, timestep embeddings, DDIM/PNDM timesteps

Every LDM file is checked by loading it back with diffusers' own single-file converter and comparing every
tensor with the original component; the LDM names themselves come from tools/ldm_names.py.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_sd_fixtures.py
Deterministic: seeded; safetensors outputs are byte-stable across runs.
"""
import codecs
import io
import json
import math
import os
import shutil
import sys
import types
from collections import OrderedDict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import open_clip  # noqa: E402
from diffusers import (AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline,  # noqa: E402
                       UNet2DConditionModel)
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm  # noqa: E402
from diffusers.models.embeddings import get_timestep_embedding  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

import ldm_names  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sd")
VOCAB = 1000
CONTEXT = 16
SOT, EOT = 998, 999  # EOT is the largest id, as in real CLIP
MAX_FILE = 2_000_000

# Cross-attention width must equal the text encoder width (the UNet attends over its hidden states), so the
# SD1 pair is 24 wide and the SD2 pair 32 wide: different, and SD1 narrower, as 768 vs 1024 in the real models.
SD1_TEXT_WIDTH = 24
SD2_TEXT_WIDTH = 32

UNET_COMMON = dict(
    sample_size=16, in_channels=4, out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 12, 16), layers_per_block=2, norm_num_groups=4,
)
# SD1: `attention_head_dim` is one int that really means the number of heads (2 everywhere: head dims 4, 6, mid 8).
UNET_SD1 = dict(UNET_COMMON, cross_attention_dim=SD1_TEXT_WIDTH, attention_head_dim=2, use_linear_projection=False)
# SD2: a per-block list, again meaning heads, chosen so the head dim is fixed (4) as SD2's is (64).
UNET_SD2 = dict(UNET_COMMON, cross_attention_dim=SD2_TEXT_WIDTH, attention_head_dim=[2, 3, 4],
                use_linear_projection=True)
VAE_CFG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(8, 8, 16), layers_per_block=2, norm_num_groups=4, sample_size=32, scaling_factor=0.18215,
)
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                steps_offset=1, set_alpha_to_one=False, prediction_type="epsilon", timestep_spacing="leading")
UNET_TIMESTEPS = [981, 10]
# The folders have no tokenizer or safety checker; diffusers must be told so when loading a pipeline.
PIPELINE_NONE = dict(tokenizer=None, safety_checker=None, feature_extractor=None, image_encoder=None)
PIPELINE_STEPS = 3
GUIDANCE = 7.5


# ---------------------------------------------------------------- helpers

def fresh_dir(*parts):
    path = os.path.join(ROOT, *parts)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_bytes_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path, obj):
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_tensors(path, tensors, metadata=None):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    if metadata and len(metadata) > 1:
        sort_metadata(path)
        reloaded = load_file(path)
        assert all(torch.equal(reloaded[k], v) for k, v in tensors.items()) and len(reloaded) == len(tensors)


def sort_metadata(path):
    """safetensors writes `__metadata__` from a Rust HashMap, in a different order each process; rewrite the
    header with sorted metadata keys (same bytes otherwise, same length) so the files are byte-stable."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n].decode())
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n and not raw[8 + len(text):8 + n].strip(), "header re-encoding changed its length"
    write_bytes_atomic(path, raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


def randomize(module, seed):
    """std-0.05 weights so outputs are non-trivial; Group/LayerNorm affine weights moved away from identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, sub in module.named_modules():
            is_norm = isinstance(sub, (torch.nn.GroupNorm, torch.nn.LayerNorm))
            for pname, p in sub.named_parameters(recurse=False):
                if p.ndim == 0:
                    continue
                noise = torch.randn(p.shape, generator=g)
                if is_norm:
                    p.copy_((1.0 if pname == "weight" else 0.0) + 0.1 * noise)
                else:
                    p.copy_(0.05 * noise)


def assert_same_state(actual, expected, what):
    """Every tensor of `expected` present in `actual` with identical dtype, shape and values, and no extras."""
    assert set(actual) == set(expected), f"{what}: key sets differ: " \
        f"missing {sorted(set(expected) - set(actual))[:5]}, extra {sorted(set(actual) - set(expected))[:5]}"
    for k, v in expected.items():
        a = actual[k]
        assert a.dtype == v.dtype and a.shape == v.shape and torch.equal(a, v), f"{what}: tensor {k} differs"


def text_ids(pad_id):
    """Two rows: a short prompt padded after EOT, and one that fills the whole context (EOT last)."""
    g = torch.Generator().manual_seed(7)
    ids = torch.full((2, CONTEXT), pad_id, dtype=torch.int64)
    for row, length in enumerate([6, CONTEXT]):
        ids[row, 0] = SOT
        ids[row, 1:length - 1] = torch.randint(1, 990, (length - 2,), generator=g)
        ids[row, length - 1] = EOT
    return ids


# ---------------------------------------------------------------- components

def make_unet(cfg, seed):
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg).eval()
    randomize(unet, seed + 1)
    return unet


def make_vae(seed):
    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE_CFG).eval()
    randomize(vae, seed + 1)
    return vae


def text_config(width, layers, act, pad):
    return CLIPTextConfig(vocab_size=VOCAB, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                          num_attention_heads=4, max_position_embeddings=CONTEXT, hidden_act=act,
                          bos_token_id=SOT, eos_token_id=EOT, pad_token_id=pad, layer_norm_eps=1e-5)


def make_text_sd1(seed):
    torch.manual_seed(seed)
    model = CLIPTextModel(text_config(SD1_TEXT_WIDTH, 3, "quick_gelu", EOT)).eval()
    randomize(model, seed + 1)
    return model


def make_openclip_text(seed):
    """The open_clip text tower as FrozenOpenCLIPEmbedder holds it: a CLIP with the vision tower deleted."""
    torch.manual_seed(seed)
    oc = open_clip.model.CLIP(
        embed_dim=16,
        vision_cfg={"image_size": 16, "layers": 1, "width": 16, "head_width": 8, "patch_size": 8},
        text_cfg={"context_length": CONTEXT, "vocab_size": VOCAB, "width": SD2_TEXT_WIDTH, "heads": 4, "layers": 3},
    ).eval()
    del oc.visual
    randomize(oc, seed + 1)
    with torch.no_grad():
        oc.logit_scale.fill_(math.log(1 / 0.07))
    return oc


def hf_state(model):
    """transformers 5 flattened CLIPTextModel (no `text_model.` level); released SD files and older transformers
    use `text_model.` keys, which transformers 5 still loads. Write the released form."""
    return OrderedDict(("text_model." + k, v) for k, v in model.state_dict().items())


def openclip_penultimate(oc, ids):
    """LDM2 FrozenOpenCLIPEmbedder(layer="penultimate"): embeddings, all resblocks but the last, ln_final."""
    x = oc.token_embedding(ids) + oc.positional_embedding
    assert oc.transformer.batch_first
    blocks = list(oc.transformer.resblocks)
    full = x
    for r in blocks:  # the full stack by hand, to check this hand-run against open_clip's own Transformer
        full = r(full, attn_mask=oc.attn_mask)
    assert torch.equal(full, oc.transformer(x, attn_mask=oc.attn_mask))
    for r in blocks[:-1]:
        x = r(x, attn_mask=oc.attn_mask)
    return oc.ln_final(x)


def make_text_sd2(oc, seed):
    """diffusers' SD2 text encoder: an HF CLIPTextModel with one layer fewer, weights mapped from open_clip."""
    model = CLIPTextModel(text_config(SD2_TEXT_WIDTH, 2, "gelu", 0)).eval()
    mapped = ldm_names.openclip_text_to_hf(oc.state_dict(), keep_layers=2)
    missing, unexpected = model.load_state_dict({k[len("text_model."):]: v for k, v in mapped.items()}, strict=True)
    assert not missing and not unexpected
    ids = text_ids(0)
    with torch.no_grad():
        hf_out = model(input_ids=ids).last_hidden_state
        oc_out = openclip_penultimate(oc, ids)
    diff = (hf_out - oc_out).abs().max().item()
    assert diff < 1e-5, f"SD2 text: HF vs open_clip penultimate+ln_final differ by {diff}"
    return model, diff


# ---------------------------------------------------------------- schedule

def ldm_schedule_buffers():
    """LDM1 ddpm.py register_schedule for SD's config (float64 numpy, stored as float32), in the file's order."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64).numpy() ** 2
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    values = OrderedDict([
        ("betas", betas), ("alphas_cumprod", ac), ("alphas_cumprod_prev", ac_prev),
        ("sqrt_alphas_cumprod", np.sqrt(ac)), ("sqrt_one_minus_alphas_cumprod", np.sqrt(1.0 - ac)),
        ("log_one_minus_alphas_cumprod", np.log(1.0 - ac)), ("sqrt_recip_alphas_cumprod", np.sqrt(1.0 / ac)),
        ("sqrt_recipm1_alphas_cumprod", np.sqrt(1.0 / ac - 1)), ("posterior_variance", post_var),
        ("posterior_log_variance_clipped", np.log(np.maximum(post_var, 1e-20))),
        ("posterior_mean_coef1", betas * np.sqrt(ac_prev) / (1.0 - ac)),
        ("posterior_mean_coef2", (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)),
    ])
    return OrderedDict((k, torch.tensor(v, dtype=torch.float32)) for k, v in values.items())


def write_schedule_reference():
    betas64 = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac64 = torch.cumprod(1.0 - betas64, dim=0)
    ddim = DDIMScheduler(**SCHEDULE, clip_sample=False)
    pndm = PNDMScheduler(**SCHEDULE, skip_prk_steps=True)
    ddim.set_timesteps(50)
    pndm.set_timesteps(50)
    t = torch.tensor([0, 1, 10, 500, 981, 999], dtype=torch.int64)
    emb = get_timestep_embedding(t, 320, flip_sin_to_cos=True, downscale_freq_shift=0)
    # The check values of models.md §3.9 and §3.2.
    assert abs(ac64[499].item() - 0.2776696505) < 1e-9 and abs(ac64[981].item() - 0.0057755001) < 1e-9
    assert abs(emb[4, 0].item() - 0.67996) < 1e-5 and abs(emb[4, 1].item() + 0.79843) < 1e-5
    assert abs(emb[4, 160].item() - 0.73325) < 1e-5
    assert ddim.timesteps[0] == 981 and ddim.timesteps[-1] == 1 and len(ddim.timesteps) == 50
    assert len(pndm.timesteps) == 51 and pndm.timesteps[:3].tolist() == [981, 961, 961]
    rel = ((ddim.alphas_cumprod.double() - ac64).abs() / ac64).max().item()
    assert rel < 2e-6, rel  # models.md §3.9: at most 9.3e-7
    tensors = {
        "betas.float64": betas64, "alphas_cumprod.float64": ac64,
        "betas.float32": ddim.betas, "alphas_cumprod.float32": ddim.alphas_cumprod,
        "timestep_embedding.timesteps": t, "timestep_embedding": emb,
        "ddim.timesteps": ddim.timesteps.to(torch.int64), "pndm.timesteps": pndm.timesteps.to(torch.int64),
    }
    meta = {
        "component": "schedule",
        "beta_schedule": "scaled_linear: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2",
        "float64": "LDM's computation (torch float64 linspace, cumprod)",
        "float32": "diffusers DDIMScheduler.betas/alphas_cumprod (computed in float32)",
        "timestep_embedding": "diffusers get_timestep_embedding(t, 320, flip_sin_to_cos=True, "
                              "downscale_freq_shift=0), float32, [cos | sin]",
        "timesteps": "set_timesteps(50) with steps_offset=1, timestep_spacing=leading; "
                     "PNDM (skip_prk_steps) repeats the first step (51 entries)",
    }
    save_tensors(os.path.join(ROOT, "schedule.reference.safetensors"), tensors, meta)


# ---------------------------------------------------------------- diffusers folders

def write_text_encoder(folder, model, shards):
    out = os.path.join(folder, "text_encoder")
    os.makedirs(out)
    model.config.save_pretrained(out)
    state = hf_state(model)
    if shards == 1:
        save_tensors(os.path.join(out, "model.safetensors"), state, {"format": "pt"})
    else:
        keys = list(state)
        split = [keys[i * len(keys) // shards:(i + 1) * len(keys) // shards] for i in range(shards)]
        weight_map = {}
        for i, part in enumerate(split):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_tensors(os.path.join(out, name), {k: state[k] for k in part}, {"format": "pt"})
            weight_map.update({k: name for k in part})
        total = sum(v.numel() * v.element_size() for v in state.values())
        write_json(os.path.join(out, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": weight_map})
    reloaded = CLIPTextModel.from_pretrained(out, local_files_only=True)
    assert_same_state(reloaded.state_dict(), model.state_dict(), f"{out} reload")


def write_diffusers_folder(name, unet, vae, text, scheduler, fp16_vae, text_shards):
    folder = fresh_dir(name)
    unet.save_pretrained(os.path.join(folder, "unet"))
    vae.save_pretrained(os.path.join(folder, "vae"))
    if fp16_vae:
        save_tensors(os.path.join(folder, "vae", "diffusion_pytorch_model.fp16.safetensors"),
                     {k: v.half() for k, v in vae.state_dict().items()}, {"format": "pt"})
    write_text_encoder(folder, text, text_shards)
    scheduler.save_pretrained(os.path.join(folder, "scheduler"))
    write_json(os.path.join(folder, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write(f"# {name}\n\nA tiny random Stable Diffusion pipeline folder in diffusers layout, made by "
                "tools/make_sd_fixtures.py. The tokenizer is omitted on purpose (`tokenizer: [null, null]` in "
                "model_index.json): the tiny text encoders use a 1000-id vocabulary, so inputs are given as token "
                "ids (see ../text_*.reference.safetensors). Text-encoder tensors use the released `text_model.` "
                "names.\n")
    # diffusers itself must load the folder back, offline, to the same weights.
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **PIPELINE_NONE)
    assert_same_state(pipe.unet.state_dict(), unet.state_dict(), f"{name} unet")
    assert_same_state(pipe.vae.state_dict(), vae.state_dict(), f"{name} vae")
    assert_same_state(pipe.text_encoder.state_dict(), text.state_dict(), f"{name} text_encoder")
    assert type(pipe.scheduler).__name__ == type(scheduler).__name__
    if fp16_vae:
        half = AutoencoderKL.from_pretrained(folder, subfolder="vae", variant="fp16", local_files_only=True,
                                             torch_dtype=torch.float16)
        assert_same_state(half.state_dict(), {k: v.half() for k, v in vae.state_dict().items()}, "fp16 vae")
    return folder


# ---------------------------------------------------------------- single-file LDM checkpoints

def install_lightning_stub():
    """A class named pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint, so the pickle holds the same
    GLOBAL as released Lightning checkpoints without pytorch_lightning being installed."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    mods = [sys.modules.get(n) or types.ModuleType(n) for n in names]
    for n, m in zip(names, mods):
        sys.modules[n] = m
    cls = type("ModelCheckpoint", (), {"__module__": names[2]})
    mods[2].ModelCheckpoint = cls
    mods[1].model_checkpoint = mods[2]
    mods[0].callbacks = mods[1]
    return cls


def ldm_state(unet, vae, text_ldm, ema_unet=None):
    state = ldm_schedule_buffers()
    state.update(ldm_names.unet_to_ldm(unet.state_dict(), unet.config))
    if ema_unet is not None:  # LitEma: decay, num_updates, then one dotless buffer per UNet parameter
        state["model_ema.decay"] = torch.tensor(0.9999, dtype=torch.float32)
        state["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
        for k, v in ldm_names.unet_to_ldm(ema_unet.state_dict(), ema_unet.config).items():
            state[ldm_names.ema_key(k)] = v
    state.update(ldm_names.vae_to_ldm(vae.state_dict(), vae.config))
    state.update(text_ldm)
    return state


def check_single_file(path, folder, unet, vae, text, ema_unet=None, safe_globals=()):
    """Load every component back with diffusers' single-file converter and compare each tensor."""
    with torch.serialization.safe_globals(list(safe_globals)):
        pipe = StableDiffusionPipeline.from_single_file(path, config=folder, local_files_only=True, **PIPELINE_NONE)
        assert_same_state(pipe.unet.state_dict(), unet.state_dict(), f"{path} pipeline unet")
        assert_same_state(pipe.vae.state_dict(), vae.state_dict(), f"{path} pipeline vae")
        assert_same_state(pipe.text_encoder.state_dict(), text.state_dict(), f"{path} pipeline text encoder")
        u = UNet2DConditionModel.from_single_file(path, config=folder, subfolder="unet", local_files_only=True)
        assert_same_state(u.state_dict(), unet.state_dict(), f"{path} unet")
        if ema_unet is not None:
            e = UNet2DConditionModel.from_single_file(path, config=folder, subfolder="unet", local_files_only=True,
                                                      extract_ema=True)
            assert_same_state(e.state_dict(), ema_unet.state_dict(), f"{path} EMA unet")
        v = AutoencoderKL.from_single_file(path, config=folder, subfolder="vae", local_files_only=True)
        assert_same_state(v.state_dict(), vae.state_dict(), f"{path} vae")
        checkpoint = torch.load(path, weights_only=True)["state_dict"] if path.endswith(".ckpt") else load_file(path)
    t = create_diffusers_clip_model_from_ldm(CLIPTextModel, checkpoint, subfolder="text_encoder", config=folder,
                                             local_files_only=True)
    assert_same_state(t.state_dict(), text.state_dict(), f"{path} text encoder")


def write_lightning_ckpt(path, state):
    model_checkpoint = install_lightning_stub()
    obj = {
        "epoch": 6,
        "global_step": 470000,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": state,
        "callbacks": {model_checkpoint: {
            "monitor": "val/rec_loss", "best_model_score": np.float64(0.1234567),
            "best_model_path": "logs/tiny/checkpoints/last.ckpt", "current_score": None,
            "dirpath": "logs/tiny/checkpoints"}},
    }
    buf = io.BytesIO()  # saving to a buffer gives the `archive/` record prefix that released SD files have
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())
    return [model_checkpoint, np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, codecs.encode]


# ---------------------------------------------------------------- reference bundles

SENSITIVITY = {}


def write_unet_reference(name, unet, weights_note):
    g = torch.Generator().manual_seed(11)
    sample = torch.randn(2, 4, 16, 16, generator=g)
    ehs = torch.randn(2, CONTEXT, unet.config.cross_attention_dim, generator=g)
    timestep = torch.tensor(UNET_TIMESTEPS, dtype=torch.int64)
    with torch.no_grad():
        out = unet(sample, timestep, encoder_hidden_states=ehs).sample
        # How much the conditioning paths move the output: a verifier at 1e-4 must see a broken one.
        by_t = unet(sample, timestep.flip(0), encoder_hidden_states=ehs).sample
        by_ctx = unet(sample, timestep, encoder_hidden_states=ehs.flip(0)).sample
    scale = out.abs().max()
    SENSITIVITY[name] = (((by_t - out).abs().max() / scale).item(), ((by_ctx - out).abs().max() / scale).item())
    assert min(SENSITIVITY[name]) > 1e-3, SENSITIVITY[name]
    save_tensors(os.path.join(ROOT, f"{name}.reference.safetensors"), {
        "inputs.sample": sample, "inputs.timestep": timestep, "inputs.encoder_hidden_states": ehs,
        "outputs.sample": out,
    }, {"component": "unet", "prediction": "epsilon", "timestep_dtype": "int64", "weights": weights_note})
    return out


def write_vae_references(vae):
    g = torch.Generator().manual_seed(12)
    image = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    latent = torch.randn(1, 4, 8, 8, generator=g)
    with torch.no_grad():
        mean = vae.encode(image).latent_dist.mean
        decoded = vae.decode(latent).sample
    weights = "sd1_diffusers/vae, sd2_diffusers/vae, first_stage_model.* of sd1_tiny.*, sd2_tiny.safetensors"
    save_tensors(os.path.join(ROOT, "vae_encoder.reference.safetensors"),
                 {"inputs.sample": image, "outputs.latent_mean": mean},
                 {"component": "vae-encoder", "input_range": "[-1, 1]", "scaling_factor": "0.18215",
                  "latent_mean": "unscaled: the mean half of quant_conv(encoder(x)), not multiplied by scaling_factor",
                  "weights": weights})
    save_tensors(os.path.join(ROOT, "vae_decoder.reference.safetensors"),
                 {"inputs.latent": latent, "outputs.sample": decoded},
                 {"component": "vae-decoder", "scaling_factor": "0.18215",
                  "latent": "unscaled: fed to post_quant_conv directly (SD latents are divided by 0.18215 first)",
                  "sample": "decoder output before clamping, nominally [-1, 1]", "weights": weights})


def write_pipeline_reference(name, folder, pad_id, layer):
    """A whole txt2img run by diffusers' StableDiffusionPipeline from the folder: classifier-free guidance with an
    empty negative prompt, a few scheduler steps from given initial noise, then the VAE decode."""
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **PIPELINE_NONE)
    pipe.set_progress_bar_config(disable=True)
    ids = text_ids(pad_id)[1:]  # the full-length prompt
    negative = torch.full((1, CONTEXT), pad_id, dtype=torch.int64)
    negative[0, 0], negative[0, 1] = SOT, EOT  # "" tokenises to SOT, EOT, padding
    g = torch.Generator().manual_seed(13)
    latents = torch.randn(1, 4, 16, 16, generator=g)
    with torch.no_grad():
        cond = pipe.text_encoder(input_ids=ids).last_hidden_state
        uncond = pipe.text_encoder(input_ids=negative).last_hidden_state
        final = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=latents.clone(),
                     num_inference_steps=PIPELINE_STEPS, guidance_scale=GUIDANCE, output_type="latent").images
        image = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=latents.clone(),
                     num_inference_steps=PIPELINE_STEPS, guidance_scale=GUIDANCE, output_type="pt").images
        by_hand = (pipe.vae.decode(final / pipe.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    assert torch.allclose(by_hand, image, atol=1e-6), "pipeline image is not decode(latents / scaling) in [0,1]"
    pipe.scheduler.set_timesteps(PIPELINE_STEPS)
    save_tensors(os.path.join(ROOT, f"{name}.reference.safetensors"), {
        "inputs.input_ids": ids, "inputs.negative_input_ids": negative, "inputs.latents": latents,
        "outputs.timesteps": pipe.scheduler.timesteps.to(torch.int64), "outputs.latents": final,
        "outputs.image": image,
    }, {"component": "pipeline", "weights": folder.split("/")[-1], "scheduler": type(pipe.scheduler).__name__,
        "num_inference_steps": str(PIPELINE_STEPS), "guidance_scale": str(GUIDANCE), "prediction": "epsilon",
        "text_layer": layer, "latents": "initial noise (init_noise_sigma 1); outputs.latents are the final "
        "unscaled-by-VAE latents before decode; image = clamp(decode(latents / 0.18215) / 2 + 0.5, 0, 1)"})
    return final, image


def write_text_reference(name, ids, hidden, meta):
    save_tensors(os.path.join(ROOT, f"{name}.reference.safetensors"),
                 {"inputs.input_ids": ids, "outputs.last_hidden_state": hidden},
                 dict({"component": "text-encoder"}, **meta))


def summarise_output(name, t):
    return f"{name}: shape {list(t.shape)}, std {t.std().item():.4f}, max|x| {t.abs().max().item():.4f}"


# ---------------------------------------------------------------- README

def write_readme(notes, ema_count):
    sizes = []
    total = 0
    for dirpath, _, files in sorted(os.walk(ROOT)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            size = os.path.getsize(p)
            assert size < MAX_FILE, f"{p} is {size} bytes"
            if f != "README.md" or dirpath != ROOT:
                sizes.append((os.path.relpath(p, ROOT), size))
                total += size
    table = "\n".join(f"| `{p}` | {s:,} |" for p, s in sizes)
    text = README.format(table=table, total=total, ema_count=ema_count, notes="\n".join(f"- {n}" for n in notes))
    with open(os.path.join(ROOT, "README.md"), "w") as f:
        f.write(text)
    return total


README = """# Stable Diffusion fixtures

Tiny random SD 1.x / 2.x components made with the real libraries (diffusers 0.42.1, transformers 5.24.0,
open_clip 3.3.0, torch 2.13.0+cpu) by `tools/make_sd_fixtures.py`. Regenerate with

    cd /work/main && HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_sd_fixtures.py

The run is seeded and needs no network; two runs give byte-identical files, the `.ckpt` included (the script
sorts the safetensors `__metadata__` keys, which the safetensors writer emits in hash order).

## Components

All weights are float32 random (std 0.05), with every GroupNorm/LayerNorm weight 1 + 0.1·N(0,1) and bias
0.1·N(0,1). Token ids: SOT 998, EOT 999 (the largest id), vocabulary 1000, context 16.

| component | configuration |
| --- | --- |
| `unet_sd1` | UNet2DConditionModel: down (CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D), mid UNetMidBlock2DCrossAttn, up (UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D); block_out_channels (8, 12, 16), layers_per_block 2, norm_num_groups 4, sample_size 16, in/out 4, cross_attention_dim **24**, `attention_head_dim: 2` (an int meaning **heads**, as SD1's config: head dims 4, 6, mid 8), `use_linear_projection: false` (1×1 conv proj_in/proj_out) |
| `unet_sd2` | same blocks; cross_attention_dim **32**, `attention_head_dim: [2, 3, 4]` (per-block heads, as SD2's config: head dim fixed at 4, mid uses the last entry), `use_linear_projection: true` |
| `vae` | AutoencoderKL: 3 × DownEncoderBlock2D / UpDecoderBlock2D, block_out_channels (8, 8, 16), layers_per_block 2 (decoder blocks have 3 resnets), latent_channels 4, norm_num_groups 4, sample_size 32, scaling_factor 0.18215. The same VAE is used in both pipelines. |
| `text_sd1` | transformers CLIPTextModel: hidden 24, 3 layers, 4 heads, MLP 96, quick_gelu, max_position 16; SD1 conditioning = `last_hidden_state` |
| `text_sd2` | open_clip text tower (nn.GELU, width 32, 3 layers, 4 heads, MLP 128, context 16, text_projection [32, 16], logit_scale) as FrozenOpenCLIPEmbedder uses it: **penultimate layer + ln_final**, pad id 0. Its diffusers form is a CLIPTextModel with **2** layers, `hidden_act: gelu`, whose weights are the open_clip weights mapped by models.md §4.4 (split fused QKV, drop the last block, text_projection and logit_scale) |

The text widths equal the UNets' cross_attention_dim (24 and 32) so each pipeline is coherent; the brief's
example widths (text 32 with cross-attention 12 / 20) would not be. SD1 is the narrower one, as in the real
models (768 vs 1024).

## Files

| file | bytes |
| --- | ---: |
{table}

Total: {total:,} bytes.

- `sd1_diffusers/`, `sd2_diffusers/`: diffusers pipeline folders. `model_index.json`, `unet/` and `vae/`
  (`config.json` + `diffusion_pytorch_model.safetensors`), `text_encoder/` (`config.json` + weights),
  `scheduler/scheduler_config.json` (sd1: PNDMScheduler, sd2: DDIMScheduler; scaled_linear 0.00085→0.012,
  steps_offset 1, set_alpha_to_one false, leading spacing, epsilon). The tokenizer is omitted (`[null, null]`).
  - `sd1_diffusers/vae/diffusion_pytorch_model.fp16.safetensors`: the `fp16` variant (every tensor F16).
  - `sd2_diffusers/text_encoder/`: sharded into `model-00001-of-00002.safetensors`,
    `model-00002-of-00002.safetensors` and `model.safetensors.index.json` (no single `model.safetensors`).
  - Text-encoder tensors are stored under the released `text_model.…` names. transformers 5.24 itself would
    save flattened names (`embeddings.…`, `encoder.…`); it loads both.
- `sd1_tiny.ckpt`: a Lightning-style `torch.save` zip (record prefix `archive/`) holding `epoch` 6,
  `global_step` 470000, `pytorch-lightning_version` "1.4.2", `state_dict`, and `callbacks`, a dict keyed by the
  class object `pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint` (a GLOBAL; the class was a stub
  registered in sys.modules at generation time) whose value holds a numpy float64 `best_model_score`
  (pickled by numpy 2 as `numpy._core.multiarray.scalar` + `numpy.dtype` + `_codecs.encode`). torch's
  `weights_only=True` loader refuses it unless those globals are allow-listed, as with released files.
  Its `state_dict` is a **full-EMA** checkpoint (like `sd-v1-4-full-ema.ckpt`): the 12 DDPM schedule buffers,
  `model.diffusion_model.*`, `model_ema.decay` (f32 0.9999), `model_ema.num_updates` (i32), {ema_count}
  `model_ema.<dotless UNet key>` tensors holding **different** (EMA) weights, `first_stage_model.*`,
  `cond_stage_model.transformer.text_model.*` and `…embeddings.position_ids` (int64 [1, 16]).
- `sd1_tiny.safetensors`: the same state dict without the `model_ema.*` entries, flat safetensors.
- `sd2_tiny.safetensors`: SD2: schedule buffers, UNet (linear proj_in/out `[C, C]`), VAE, and
  `cond_stage_model.model.*` = the full open_clip text tower (3 resblocks, text_projection, logit_scale:
  42 tensors), as FrozenOpenCLIPEmbedder stores it. No position_ids (open_clip has none).
- In all LDM files the VAE mid-attention `q/k/v/proj_out.weight` are 1×1 convs `[C, C, 1, 1]`.

### Reference bundles

Tensors `inputs.<name>` / `outputs.<name>`, float32 unless stated; `__metadata__` has `component` plus what a
verifier needs (`weights` says which files hold the weights). Outputs come from diffusers / transformers /
open_clip forward passes in float32.

| bundle | component | inputs → outputs |
| --- | --- | --- |
| `unet_sd1.reference.safetensors` | `unet` | `sample` [2,4,16,16], `timestep` [2] **int64** = [981, 10], `encoder_hidden_states` [2,16,24] → `sample` [2,4,16,16] (epsilon) |
| `unet_sd1_ema.reference.safetensors` | `unet` | the same inputs run through the **EMA** UNet of `sd1_tiny.ckpt` |
| `unet_sd2.reference.safetensors` | `unet` | `sample`, `timestep` [981, 10] int64, `encoder_hidden_states` [2,16,32] → `sample` (epsilon) |
| `vae_encoder.reference.safetensors` | `vae-encoder` | `sample` [1,3,32,32] in [-1,1] → `latent_mean` [1,4,8,8], unscaled (not × 0.18215) |
| `vae_decoder.reference.safetensors` | `vae-decoder` | `latent` [1,4,8,8] unscaled (goes straight to post_quant_conv) → `sample` [1,3,32,32], unclamped |
| `text_sd1.reference.safetensors` | `text-encoder` | `input_ids` [2,16] int64, padded with 999 after EOT → `last_hidden_state` [2,16,24] |
| `text_sd2.reference.safetensors` | `text-encoder` | `input_ids` [2,16] int64, padded with 0 → `last_hidden_state` [2,16,32] (penultimate + ln_final) |
| `pipeline_sd1.reference.safetensors` | `pipeline` | diffusers `StableDiffusionPipeline` on `sd1_diffusers/` (PNDM): `input_ids` [1,16], `negative_input_ids` [1,16] (the empty prompt: SOT, EOT, padding), `latents` [1,4,16,16] initial noise; 3 steps, guidance 7.5 → `timesteps` int64 [667, 334, 334, 1] (PNDM repeats its first step: 4 UNet calls), `latents` (final, before decode), `image` [1,3,64,64] = clamp(decode(latents / 0.18215) / 2 + 0.5, 0, 1) |
| `pipeline_sd2.reference.safetensors` | `pipeline` | the same on `sd2_diffusers/` (DDIM, η 0, padding 0): `timesteps` [667, 334, 1] |

The VAE has 3 levels, so its spatial factor is 2^(3−1) = 4 (SD's is 8): a 16×16 latent decodes to 64×64.

`schedule.reference.safetensors` (component `schedule`): `betas.float64`, `alphas_cumprod.float64` (LDM's
float64 computation), `betas.float32`, `alphas_cumprod.float32` (diffusers' float32 DDIMScheduler), all [1000];
`timestep_embedding.timesteps` int64 [0, 1, 10, 500, 981, 999] and `timestep_embedding` [6, 320]
(flip_sin_to_cos=True, freq_shift 0); `ddim.timesteps` [50] and `pndm.timesteps` [51] int64 for 50 steps.

## How it was checked (every run; the script asserts all of this)

{notes}
"""


# ---------------------------------------------------------------- names against the real-model manifests

MANIFESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "manifests")
REAL_UNET = {"layers_per_block": 2, "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3}
REAL_VAE = {"up_block_types": ["UpDecoderBlock2D"] * 4}


def manifest_rows(name):
    with open(os.path.join(MANIFESTS, name + ".json")) as f:
        return json.load(f)["rows"]


def check_names_against_manifests():
    """The same name functions reproduce every row of the full-size SD1/SD2 manifests (verified against diffusers
    on the real 4-block models), so they are not tuned to the 3-block fixtures."""
    count = 0
    for name in ("sd1_unet_ldm_to_diffusers", "sd2_unet_ldm_to_diffusers"):
        for ldm_key, diffusers_key, _, _ in manifest_rows(name):
            assert ldm_names.unet_key_to_ldm(diffusers_key, REAL_UNET) == ldm_key, (name, diffusers_key)
            count += 1
    for ldm_key, diffusers_key, ldm_shape, diffusers_shape in manifest_rows("sd_vae_ldm_to_diffusers"):
        assert ldm_names.vae_key_to_ldm(diffusers_key, REAL_VAE) == ldm_key, diffusers_key
        shape = ldm_names.vae_tensor_to_ldm(diffusers_key, torch.empty(diffusers_shape)).shape
        assert list(shape) == ldm_shape, (diffusers_key, shape, ldm_shape)
        count += 1
    for ldm_key, hf_key, transform, _, _ in manifest_rows("sd1_text_ldm_to_hf"):
        if transform == "copy":
            assert list(ldm_names.sd1_text_to_ldm({hf_key: None})) == [ldm_key], hf_key
            count += 1
    rows = manifest_rows("sd2_text_ldm_to_hf")
    source = {}
    for key, _, _, shape, _ in rows:
        source[key[len(ldm_names.SD2_TEXT_PREFIX):]] = torch.empty(shape)
    assert set(ldm_names.sd2_text_to_ldm(source)) == {r[0] for r in rows}
    layers = 1 + max(int(k.split(".")[2]) for k in source if k.startswith("transformer.resblocks."))
    hf = ldm_names.openclip_text_to_hf(source, keep_layers=layers - 1)
    expected = {hf_key: hf_shape for _, hf_key, transform, _, hf_shape in rows if transform != "drop"}
    assert {k: list(v.shape) for k, v in hf.items()} == expected
    return count + len(expected)


# ---------------------------------------------------------------- main

def main():
    os.makedirs(ROOT, exist_ok=True)
    for f in os.listdir(ROOT):
        p = os.path.join(ROOT, f)
        if os.path.isfile(p):
            os.remove(p)
    notes = []
    checked = check_names_against_manifests()
    notes.append(f"tools/ldm_names.py reproduces all {checked} name (and shape) rows of the full-size manifests in "
                 "fixtures/manifests (SD1/SD2 UNet, VAE, SD1 text, SD2 open_clip text → HF), so the rules are "
                 "not specific to the 3-block fixtures.")

    unet1 = make_unet(UNET_SD1, 100)
    unet2 = make_unet(UNET_SD2, 200)
    vae = make_vae(300)
    text1 = make_text_sd1(400)
    oc = make_openclip_text(500)
    text2, oc_diff = make_text_sd2(oc, 600)
    ema1 = make_unet(UNET_SD1, 100)
    with torch.no_grad():  # EMA weights: the trained weights plus a visible offset, so extraction is testable
        g = torch.Generator().manual_seed(700)
        for p in ema1.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    notes.append(f"SD2 text: the HF 2-layer model's `last_hidden_state` equals open_clip's penultimate layer + "
                 f"ln_final computed by hand with its modules (max abs diff {oc_diff:.2e}, asserted < 1e-5); "
                 "the hand-run of all blocks equals open_clip's own `Transformer` exactly.")

    # Diffusers folders, reloaded by StableDiffusionPipeline.from_pretrained and compared tensor by tensor.
    sched1 = PNDMScheduler(**SCHEDULE, skip_prk_steps=True)
    sched2 = DDIMScheduler(**SCHEDULE, clip_sample=False)
    sd1_dir = write_diffusers_folder("sd1_diffusers", unet1, vae, text1, sched1, fp16_vae=True, text_shards=1)
    sd2_dir = write_diffusers_folder("sd2_diffusers", unet2, vae, text2, sched2, fp16_vae=False, text_shards=2)
    notes.append("Both diffusers folders load with `StableDiffusionPipeline.from_pretrained(folder, "
                 "local_files_only=True)` and every UNet/VAE/text-encoder tensor equals the original; the fp16 "
                 "VAE variant loads with `variant=\"fp16\"` and equals the fp16 cast; the sharded and the "
                 "`text_model.`-named text encoders load in transformers with no missing or unexpected keys.")

    # Single-file LDM checkpoints.
    text1_ldm = ldm_names.sd1_text_to_ldm(hf_state(text1))
    text1_ldm["cond_stage_model.transformer.text_model.embeddings.position_ids"] = \
        torch.arange(CONTEXT, dtype=torch.int64)[None]
    sd1_state = ldm_state(unet1, vae, text1_ldm)
    sd1_ema_state = ldm_state(unet1, vae, text1_ldm, ema_unet=ema1)
    ema_count = sum(k.startswith("model_ema.") and k not in ("model_ema.decay", "model_ema.num_updates")
                    for k in sd1_ema_state)
    assert ema_count > 100
    assert all(not torch.equal(a, b) for a, b in zip(unet1.state_dict().values(), ema1.state_dict().values()))
    sd2_state = ldm_state(unet2, vae, ldm_names.sd2_text_to_ldm(oc.state_dict()))
    assert sum(k.startswith("cond_stage_model.model.") for k in sd2_state) == 42

    st1 = os.path.join(ROOT, "sd1_tiny.safetensors")
    save_tensors(st1, sd1_state)
    check_single_file(st1, sd1_dir, unet1, vae, text1)
    st2 = os.path.join(ROOT, "sd2_tiny.safetensors")
    save_tensors(st2, sd2_state)
    check_single_file(st2, sd2_dir, unet2, vae, text2)
    ckpt = os.path.join(ROOT, "sd1_tiny.ckpt")
    allow = write_lightning_ckpt(ckpt, sd1_ema_state)
    check_single_file(ckpt, sd1_dir, unet1, vae, text1, ema_unet=ema1, safe_globals=allow)
    try:
        torch.load(ckpt, weights_only=True)
        raise AssertionError("the Lightning ckpt should need allow-listed globals")
    except Exception as error:  # noqa: BLE001 - torch raises UnpicklingError wrapped in various types
        assert "ModelCheckpoint" in str(error) or "scalar" in str(error), error
    notes.append("Each LDM file loads with diffusers' own converters, offline, with the diffusers folder as the "
                 "local config: `UNet2DConditionModel.from_single_file(path, config=<folder>, subfolder=\"unet\")`, "
                 "`AutoencoderKL.from_single_file(..., subfolder=\"vae\")`, and for the text encoders "
                 "`diffusers.loaders.single_file_utils.create_diffusers_clip_model_from_ldm(CLIPTextModel, "
                 "checkpoint, subfolder=\"text_encoder\", config=<folder>)`, the function "
                 "`StableDiffusionPipeline.from_single_file` uses (transformers models have no `from_single_file`). "
                 "Every resulting tensor equals the original component (same key set, dtype, shape, values), "
                 "so the LDM names of tools/ldm_names.py agree with diffusers' LDM→diffusers rules. "
                 "diffusers loads with `strict=False`, which is why the key sets are compared explicitly.")
    notes.append(f"`sd1_tiny.ckpt` with `extract_ema=True` gives the EMA UNet ({ema_count} `model_ema.*` weights, "
                 "each different from the non-EMA one); without it, the non-EMA UNet. diffusers reads the ckpt "
                 "with `torch.load(weights_only=True)` inside `torch.serialization.safe_globals([ModelCheckpoint, "
                 "numpy._core.multiarray.scalar, numpy.dtype, numpy.dtypes.Float64DType, _codecs.encode])`; "
                 "without that allow-list the load is refused (asserted), as for released Lightning files.")
    notes.append("`StableDiffusionPipeline.from_single_file(path, config=<folder>, local_files_only=True)` "
                 "(tokenizer, safety checker, feature extractor and image encoder passed as None) loads each LDM "
                 "file too, and its UNet, VAE and text encoder equal the originals tensor for tensor.")
    notes.append("For SD2, diffusers drops only `resblocks.23.*` by name (the real depth), so for the 3-block tiny "
                 "tower it maps `resblocks.2.*` to `encoder.layers.2.*`, which the 2-layer CLIPTextModel ignores "
                 "as unexpected keys; the 2 kept layers equal ours.")

    # Reference bundles.
    out_sd1 = write_unet_reference(
        "unet_sd1", unet1, "sd1_diffusers/unet, model.diffusion_model.* of sd1_tiny.safetensors and "
        "sd1_tiny.ckpt (non-EMA)")
    out_ema = write_unet_reference("unet_sd1_ema", ema1, "model_ema.* of sd1_tiny.ckpt (EMA extraction)")
    ema_gap = ((out_ema - out_sd1).abs().max() / out_sd1.abs().max()).item()
    assert ema_gap > 1e-2
    outs = [
        summarise_output("unet_sd1", out_sd1),
        summarise_output("unet_sd1_ema", out_ema),
        summarise_output("unet_sd2", write_unet_reference(
            "unet_sd2", unet2, "sd2_diffusers/unet, model.diffusion_model.* of sd2_tiny.safetensors")),
    ]
    write_vae_references(vae)
    ids1, ids2 = text_ids(EOT), text_ids(0)
    with torch.no_grad():
        h1 = text1(input_ids=ids1).last_hidden_state
        h2 = text2(input_ids=ids2).last_hidden_state
        h2_oc = openclip_penultimate(oc, ids2)
    assert (h2 - h2_oc).abs().max() < 1e-5
    write_text_reference("text_sd1", ids1, h1, {
        "layer": "last", "pad_id": str(EOT), "hidden_act": "quick_gelu",
        "weights": "sd1_diffusers/text_encoder, cond_stage_model.transformer.* of sd1_tiny.*"})
    write_text_reference("text_sd2", ids2, h2, {
        "layer": "penultimate", "pad_id": "0", "hidden_act": "gelu",
        "output": "open_clip resblocks 0..n-2 then ln_final (= the 2-layer HF model's last_hidden_state)",
        "weights": "sd2_diffusers/text_encoder (2 layers), cond_stage_model.model.* of sd2_tiny.safetensors "
                   "(3 open_clip blocks: run all but the last)"})
    outs += [summarise_output("text_sd1", h1), summarise_output("text_sd2", h2)]
    write_schedule_reference()
    pipelines = [("pipeline_sd1", sd1_dir, EOT, "last"), ("pipeline_sd2", sd2_dir, 0, "penultimate")]
    for pname, folder, pad, layer in pipelines:
        final, image = write_pipeline_reference(pname, folder, pad, layer)
        outs.append(summarise_output(pname + " latents", final))
        outs.append(summarise_output(pname + " image", image))
    notes.append("`schedule.reference.safetensors` reproduces the check values of models.md §3.2 and §3.9 "
                 "(ᾱ[499], ᾱ[981], embedding elements at t=981, DDIM 981…1, PNDM 981, 961, 961, …).")
    notes.append("Output statistics: " + "; ".join(outs) + ".")
    notes.append("Conditioning sensitivity (max change / max|output|): " + "; ".join(
        f"{n}: swapping the two timesteps {t:.1e}, swapping the two contexts {c:.1e}"
        for n, (t, c) in SENSITIVITY.items()) + ". The EMA UNet's output differs from the non-EMA one by "
        f"{ema_gap:.1e} of max|output|.")

    total = write_readme(notes, ema_count)
    for line in outs:
        print(line)
    print(f"fixtures/sd: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
