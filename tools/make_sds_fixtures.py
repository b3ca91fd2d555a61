#!/usr/bin/env python3
"""Reference bundles for one SDS-CLIP training step, and the tiny demo models, from the real libraries.

Writes (see the README.md it generates in fixtures/sds/ for every bundle's metadata and loss values):
  fixtures/sds/<teacher>_<mapper>_<gradient>[_<trainable>].safetensors
                          {"component": "sds-step"} bundles: inputs.* (pixels, CLIP and teacher token ids, noise,
                          timesteps, the initial latent map), outputs.loss_clip / loss_sds / loss, outputs.grad.NAME
                          and outputs.updated.NAME (one AdamW step) for every trainable parameter, and debug.*
                          intermediates (embeddings, z0, z_t, UNet prediction, target, ᾱ_t, conditioning)
      sd{1,2}_{pooled,tokens}_{full,sds}.safetensors   trainable layernorm, λ 0.5 (8 bundles)
      sd1_pooled_full_all.safetensors                  every CLIPModel parameter trainable
      sd1_tokens_full_layernorm-image.safetensors      only the vision tower's LayerNorms
      sd2v_pooled_full.safetensors                     the v-prediction teacher below
      demo_pooled_full.safetensors                     the demo pair (real 49408-token vocabulary), B 2
  fixtures/sds/sd2_v_teacher/   sd2_diffusers with `prediction_type: v_prediction`: model_index.json and
                          scheduler/scheduler_config.json are copies, unet/text_encoder/vae relative symlinks
  fixtures/sds/README.md
  fixtures/demo/clip/     transformers CLIPModel, vocab 49408, weights stored float16 (config.json, model.safetensors)
  fixtures/demo/sd/       diffusers StableDiffusionPipeline folder (SD1-style, vocab 49408, text encoder in float16)
  fixtures/demo/README.md

Models come from fixtures/clip/hf and fixtures/sd/sd{1,2}_diffusers (tools/make_clip_fixtures.py,
tools/make_sd_fixtures.py). Everything is computed in float32 with the models in eval mode.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_sds_fixtures.py
Deterministic: seeded, single-threaded; every file written is byte-stable across runs.
"""
import json
import math
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import diffusers  # noqa: E402
from diffusers import (AutoencoderKL, DDPMScheduler, PNDMScheduler, StableDiffusionPipeline,  # noqa: E402
                       UNet2DConditionModel)
from safetensors import safe_open  # noqa: E402
from make_sd_fixtures import assert_same_state, randomize, write_bytes_atomic, write_json  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
diffusers.utils.logging.set_verbosity_error()
diffusers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SDS = os.path.join(REPO, "fixtures", "sds")
DEMO = os.path.join(REPO, "fixtures", "demo")
MAX_FILE = 2_000_000

CLIP_FIXTURE = "fixtures/clip/hf"
SD1 = "fixtures/sd/sd1_diffusers"
SD2 = "fixtures/sd/sd2_diffusers"
SD2V = "fixtures/sds/sd2_v_teacher"
DEMO_CLIP = "fixtures/demo/clip"
DEMO_SD = "fixtures/demo/sd"

LAMBDA = 0.5
LATENT = 8
# eps 1e-4, not torch's 1e-8: AdamW's first step is lr·g/(|g| + eps), which amplifies rounding noise in
# gradients that are zero in exact arithmetic (attention key biases) or tiny; a larger eps keeps the
# updated-parameter check as well-conditioned as the gradient check itself.
ADAMW = dict(lr_clip=1e-3, lr_map=1e-2, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-4)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

DEMO_VOCAB = 49408
DEMO_SOT, DEMO_EOT = 49406, 49407
DEMO_CONTEXT = 77
# The same scaled-linear DDPM schedule as fixtures/sd/sd1_diffusers (PNDM, epsilon).
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                steps_offset=1, set_alpha_to_one=False, prediction_type="epsilon", timestep_spacing="leading",
                skip_prk_steps=True)
PIPELINE_NONE = dict(tokenizer=None, safety_checker=None, feature_extractor=None, image_encoder=None,
                     requires_safety_checker=False)


# ---------------------------------------------------------------- files

def rel(path):
    return os.path.relpath(path, REPO)


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path






def save_tensors(path, tensors, metadata):
    """save_file, then the header's `__metadata__` re-emitted with sorted keys (the Rust writer emits a HashMap in
    an order that changes between processes) so the bytes are stable; checked by reading the file back."""
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, path, metadata=metadata)
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n].decode())
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n and not raw[8 + len(text):8 + n].strip()
    write_bytes_atomic(path, raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])
    back = load_file(path)
    assert set(back) == set(tensors) and all(torch.equal(back[k], v) for k, v in tensors.items())
    with safe_open(path, "pt") as f:
        assert f.metadata() == metadata
    assert os.path.getsize(path) < MAX_FILE, (path, os.path.getsize(path))


# ---------------------------------------------------------------- models

def load_clip(folder):
    model = CLIPModel.from_pretrained(os.path.join(REPO, folder), dtype=torch.float32).eval()
    assert model.dtype == torch.float32
    return model


def load_teacher(folder):
    path = os.path.join(REPO, folder)
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", torch_dtype=torch.float32).eval()
    text = CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=torch.float32).eval()
    with open(os.path.join(path, "scheduler", "scheduler_config.json")) as f:
        sched_cfg = json.load(f)
    scheduler = getattr(diffusers, sched_cfg["_class_name"]).from_pretrained(path, subfolder="scheduler")
    unet.requires_grad_(False)
    text.requires_grad_(False)
    return unet, text, scheduler


def layernorm_names(model, prefix):
    names = []
    for mname, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) and mname.startswith(prefix):
            names += [f"{mname}.{p}" for p, _ in module.named_parameters(recurse=False)]
    return names


def trainable_names(model, trainable):
    if trainable == "all":
        return [n for n, _ in model.named_parameters()]
    if trainable == "layernorm":
        return layernorm_names(model, "text_model.") + layernorm_names(model, "vision_model.")
    if trainable == "layernorm-image":
        return layernorm_names(model, "vision_model.")
    raise ValueError(trainable)


# ---------------------------------------------------------------- inputs

def caption_rows(batch, context, lengths, low, high, seed):
    """Token words (no SOT/EOT) of each caption, seeded; each row's total length with SOT and EOT is `lengths`."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths[:batch]:
        assert 2 <= length <= context
        rows.append(torch.randint(low, high, (length - 2,), generator=g))
    return rows


def ids_tensor(rows, context, sot, eot, pad):
    ids = torch.full((len(rows), context), pad, dtype=torch.int64)
    for i, words in enumerate(rows):
        ids[i, 0] = sot
        ids[i, 1:1 + len(words)] = words
        ids[i, 1 + len(words)] = eot
    return ids


def make_inputs(clip, text_encoder, batch, seed, word_range, sot, eot, timestep_ranges):
    g = torch.Generator().manual_seed(seed)
    vc = clip.config.vision_config
    r = vc.image_size
    unit = torch.rand(batch, 3, r, r, generator=g)  # an image in [0, 1], then CLIP's normalisation
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    pixel_values = (unit - mean) / std
    clip_context = clip.config.text_config.max_position_embeddings
    teacher_context = text_encoder.config.max_position_embeddings
    lengths = [5, 9, min(clip_context, teacher_context)]
    if batch == 2:
        lengths = [6, min(clip_context, teacher_context)]
    rows = caption_rows(batch, min(clip_context, teacher_context), lengths, word_range[0], word_range[1], seed + 1)
    input_ids = ids_tensor(rows, clip_context, sot, eot, 0)  # CLIP rows: zeros after EOT (open_clip style)
    teacher_ids = ids_tensor(rows, teacher_context, sot, eot, text_encoder.config.pad_token_id)
    noise = torch.randn(batch, 4, LATENT, LATENT, generator=g)
    timesteps = torch.stack([torch.randint(lo, hi, (), generator=g) for lo, hi in timestep_ranges]).to(torch.int64)
    return dict(pixel_values=pixel_values, input_ids=input_ids, teacher_input_ids=teacher_ids, noise=noise,
                timesteps=timesteps)


def make_latent_map(clip, mapper, seed):
    """h_w: Linear(E → 4·h·w) for `pooled`, Linear(width → 4·s·s) per patch token for `tokens`."""
    if mapper == "pooled":
        fan_in, out = clip.config.projection_dim, 4 * LATENT * LATENT
    else:
        vc = clip.config.vision_config
        grid = vc.image_size // vc.patch_size
        s = math.ceil(LATENT / grid)
        fan_in, out = vc.hidden_size, 4 * s * s
    g = torch.Generator().manual_seed(seed)
    weight = 0.05 * torch.randn(out, fan_in, generator=g)
    bias = 0.01 * torch.randn(out, generator=g)
    return weight, bias


# ---------------------------------------------------------------- one SDS-CLIP step

def tokens_to_latent(tokens, weight, bias, grid):
    """[B, G², width] → per-token 4·s·s values → the [B, 4, G·s, G·s] mosaic, cropped to the top-left h×w."""
    batch = tokens.shape[0]
    s = math.ceil(LATENT / grid)
    x = tokens @ weight.T + bias
    x = x.view(batch, grid, grid, 4, s, s).permute(0, 3, 1, 4, 2, 5).reshape(batch, 4, grid * s, grid * s)
    return x[:, :, :LATENT, :LATENT]


def check_tokens_layout():
    """The mosaic element by element: token (i, j) of the row-major G×G grid fills rows i·s…, columns j·s… of
    every channel; Linear output index c·s² + di·s + dj goes to channel c, row i·s + di, column j·s + dj."""
    batch, grid, width = 2, 5, 3
    s = math.ceil(LATENT / grid)
    g = torch.Generator().manual_seed(5)
    tokens = torch.randn(batch, grid * grid, width, generator=g)
    weight = torch.randn(4 * s * s, width, generator=g)
    bias = torch.randn(4 * s * s, generator=g)
    z = tokens_to_latent(tokens, weight, bias, grid)
    x = tokens @ weight.T + bias
    assert z.shape == (batch, 4, LATENT, LATENT)
    for b in range(batch):
        for c in range(4):
            for row in range(LATENT):
                for col in range(LATENT):
                    i, di, j, dj = row // s, row % s, col // s, col % s
                    assert z[b, c, row, col] == x[b, i * grid + j, c * s * s + di * s + dj]


def sds_step(clip, unet, text_encoder, scheduler, inputs, weight0, bias0, mapper, gradient, trainable, lam):
    names = set(trainable_names(clip, trainable))
    for n, p in clip.named_parameters():
        p.requires_grad_(n in names)
    params = {n: p for n, p in clip.named_parameters() if n in names}
    weight = torch.nn.Parameter(weight0.clone())
    bias = torch.nn.Parameter(bias0.clone())
    params["latent_map.weight"] = weight
    params["latent_map.bias"] = bias

    px, ids = inputs["pixel_values"], inputs["input_ids"]
    noise, t = inputs["noise"], inputs["timesteps"]
    batch = px.shape[0]

    vision = clip.vision_model(pixel_values=px)
    e = clip.visual_projection(vision.pooler_output)
    t_emb = clip.text_projection(clip.text_model(input_ids=ids).pooler_output)
    img = e / e.norm(dim=-1, keepdim=True)
    txt = t_emb / t_emb.norm(dim=-1, keepdim=True)
    scale = clip.logit_scale.exp().clamp(max=100)
    logits = scale * img @ txt.T
    labels = torch.arange(batch)
    loss_clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    if mapper == "pooled":
        z0 = (e @ weight.T + bias).view(batch, 4, LATENT, LATENT)
    else:
        vc = clip.config.vision_config
        grid = vc.image_size // vc.patch_size
        tokens = vision.last_hidden_state[:, 1:, :]
        assert tokens.shape[1] == grid * grid
        z0 = tokens_to_latent(tokens, weight, bias, grid)

    z0.retain_grad()
    with torch.no_grad():
        cond = text_encoder(input_ids=inputs["teacher_input_ids"]).last_hidden_state
    ab = scheduler.alphas_cumprod
    assert ab.dtype == torch.float32 and ab.shape == (scheduler.config.num_train_timesteps,)
    a = ab[t].view(batch, 1, 1, 1)
    prediction_type = scheduler.config.prediction_type

    def target_of(z0_value):
        if prediction_type == "epsilon":
            return noise
        assert prediction_type == "v_prediction", prediction_type
        return a.sqrt() * noise - (1 - a).sqrt() * z0_value.detach()

    z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
    if gradient == "full":
        pred = unet(z_t, t, encoder_hidden_states=cond).sample
        target = target_of(z0)
        loss_sds = ((pred - target) ** 2).mean()
        loss = loss_clip + lam * loss_sds
        loss.backward()
    else:
        assert gradient == "sds"
        with torch.no_grad():
            pred = unet(z_t.detach(), t, encoder_hidden_states=cond).sample
            target = target_of(z0)
            loss_sds = ((pred - target) ** 2).mean()
            g = (1 - a) * (pred - target) * 2 / z0.numel()
        loss = loss_clip + lam * loss_sds
        surrogate = loss_clip + lam * (z0 * g.detach()).sum()
        surrogate.backward()
        assert torch.allclose(z0.grad, lam * g, rtol=1e-6, atol=0)

    grads = {}
    for n, p in params.items():
        assert p.grad is not None, f"{n} received no gradient"
        grads[n] = p.grad.detach().clone()

    clip_params = [p for n, p in params.items() if not n.startswith("latent_map.")]
    groups = [
        dict(params=[p for p in clip_params if p.ndim >= 2], lr=ADAMW["lr_clip"], weight_decay=ADAMW["weight_decay"]),
        dict(params=[p for p in clip_params if p.ndim < 2], lr=ADAMW["lr_clip"], weight_decay=0.0),
        dict(params=[weight], lr=ADAMW["lr_map"], weight_decay=ADAMW["weight_decay"]),
        dict(params=[bias], lr=ADAMW["lr_map"], weight_decay=0.0),
    ]
    groups = [grp for grp in groups if grp["params"]]
    opt = torch.optim.AdamW(groups, betas=ADAMW["betas"], eps=ADAMW["eps"], foreach=False)
    opt.step()
    updated = {n: p.detach().clone() for n, p in params.items()}

    debug = dict(image_embeds=e, text_embeds=t_emb, logits_per_image=logits, z0=z0, z_t=z_t,
                 alphas_cumprod_t=a.view(batch), encoder_hidden_states=cond, unet_pred=pred, target=target,
                 grad_z0=z0.grad)
    losses = dict(loss_clip=loss_clip, loss_sds=loss_sds, loss=loss)
    return {k: v.detach().clone() for k, v in losses.items()}, grads, updated, \
        {k: v.detach().clone() for k, v in debug.items()}


def library_checks(clip, scheduler, inputs, losses, debug):
    """The contract's formulas against the libraries' own implementations."""
    with torch.no_grad():
        out = clip(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], return_loss=True)
    assert torch.allclose(out.loss, losses["loss_clip"], atol=1e-6, rtol=1e-6), (out.loss, losses["loss_clip"])
    assert torch.allclose(out.logits_per_image, debug["logits_per_image"], atol=1e-5)
    ddpm = DDPMScheduler.from_config(scheduler.config)
    assert torch.equal(ddpm.alphas_cumprod, scheduler.alphas_cumprod)
    t = inputs["timesteps"]
    z_t = ddpm.add_noise(debug["z0"], inputs["noise"], t)
    assert torch.allclose(z_t, debug["z_t"], atol=1e-6), (z_t - debug["z_t"]).abs().max()
    if scheduler.config.prediction_type == "v_prediction":
        v = ddpm.get_velocity(debug["z0"], inputs["noise"], t)
        assert torch.allclose(v, debug["target"], atol=1e-6)


def write_bundle(name, clip_folder, teacher_folder, mapper, gradient, trainable, inputs, weight0, bias0, notes=None):
    clip = load_clip(clip_folder)
    unet, text_encoder, scheduler = load_teacher(teacher_folder)
    losses, grads, updated, debug = sds_step(clip, unet, text_encoder, scheduler, inputs, weight0, bias0,
                                             mapper, gradient, trainable, LAMBDA)
    library_checks(load_clip(clip_folder), scheduler, inputs, losses, debug)
    tensors = {f"inputs.{k}": v for k, v in inputs.items()}
    tensors["inputs.latent_map.weight"] = weight0
    tensors["inputs.latent_map.bias"] = bias0
    tensors.update({f"outputs.{k}": v for k, v in losses.items()})
    tensors.update({f"outputs.grad.{k}": v for k, v in grads.items()})
    tensors.update({f"outputs.updated.{k}": v for k, v in updated.items()})
    tensors.update({f"debug.{k}": v for k, v in debug.items()})
    meta = {
        "component": "sds-step",
        "lambda": repr(LAMBDA),
        "mapper": mapper,
        "gradient": gradient,
        "trainable": trainable,
        "latent_size": str(LATENT),
        "lr_clip": repr(ADAMW["lr_clip"]),
        "lr_map": repr(ADAMW["lr_map"]),
        "weight_decay": repr(ADAMW["weight_decay"]),
        "betas": ",".join(repr(b) for b in ADAMW["betas"]),
        "eps": repr(ADAMW["eps"]),
        "teacher": teacher_folder,
        "clip": clip_folder,
        "prediction_type": scheduler.config.prediction_type,
    }
    if notes:
        meta["teacher_note"] = notes
    assert meta["eps"] == "0.0001" and meta["betas"] == "0.9,0.999"
    save_tensors(os.path.join(SDS, name + ".safetensors"), tensors, meta)
    return dict(name=name, meta=meta, losses={k: v.item() for k, v in losses.items()}, grads=grads,
                count=len(grads), batch=inputs["pixel_values"].shape[0])


# ---------------------------------------------------------------- the v-prediction teacher

def write_v_teacher():
    folder = os.path.join(REPO, SD2V)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "scheduler"))
    src = os.path.join(REPO, SD2)
    with open(os.path.join(src, "model_index.json"), "rb") as f:
        write_bytes_atomic(os.path.join(folder, "model_index.json"), f.read())
    with open(os.path.join(src, "scheduler", "scheduler_config.json")) as f:
        cfg = json.load(f)
    assert cfg["prediction_type"] == "epsilon"
    cfg["prediction_type"] = "v_prediction"
    write_json(os.path.join(folder, "scheduler", "scheduler_config.json"), cfg)
    for component in ("unet", "text_encoder", "vae"):
        os.symlink(os.path.join("..", "..", "sd", "sd2_diffusers", component), os.path.join(folder, component))
        assert os.path.isdir(os.path.join(folder, component))
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **PIPELINE_NONE)
    assert pipe.scheduler.config.prediction_type == "v_prediction"


# ---------------------------------------------------------------- demo models



def round_to_half(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def demo_text_config(**extra):
    return dict(vocab_size=DEMO_VOCAB, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=DEMO_CONTEXT, hidden_act="quick_gelu", bos_token_id=DEMO_SOT,
                eos_token_id=DEMO_EOT, layer_norm_eps=1e-5, **extra)




def write_demo_clip():
    folder = fresh_dir(os.path.join(REPO, DEMO_CLIP))
    config = CLIPConfig(
        text_config=demo_text_config(pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        projection_dim=16,
    )
    torch.manual_seed(900)
    model = CLIPModel(config).eval()
    randomize(model, 901)
    round_to_half(model)  # stored as float16, so the float32 model is exactly what the file holds
    model.config.dtype = "float32"  # compute dtype: without it transformers' dtype="auto" would load float16
    model.config.save_pretrained(folder)
    state = {k: v.half() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    save_tensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    # transformers loads it back (default dtype and float32), with the same values, and runs.
    for kwargs in ({}, {"dtype": torch.float32}):
        again = CLIPModel.from_pretrained(folder, local_files_only=True, **kwargs).eval()
        assert again.dtype == torch.float32
        assert_same_state(again.state_dict(), model.state_dict(), "demo clip")
    ids = ids_tensor(caption_rows(1, DEMO_CONTEXT, [7], 256, DEMO_SOT, 902), DEMO_CONTEXT, DEMO_SOT, DEMO_EOT, 0)
    with torch.no_grad():
        out = again(input_ids=ids, pixel_values=torch.zeros(1, 3, 32, 32))
    assert out.logits_per_image.shape == (1, 1) and torch.isfinite(out.logits_per_image).all()
    return model


def write_demo_sd():
    folder = fresh_dir(os.path.join(REPO, DEMO_SD))
    torch.manual_seed(910)
    text = CLIPTextModel(CLIPTextConfig(**demo_text_config(pad_token_id=DEMO_EOT))).eval()
    randomize(text, 911)
    round_to_half(text)
    text.config.dtype = "float32"
    torch.manual_seed(920)
    unet = UNet2DConditionModel(
        sample_size=LATENT, in_channels=4, out_channels=4, cross_attention_dim=8,
        block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, attention_head_dim=2,
        norm_num_groups=4, use_linear_projection=False).eval()
    randomize(unet, 921)
    torch.manual_seed(930)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,),
                        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                        layers_per_block=1, norm_num_groups=4, sample_size=LATENT, scaling_factor=0.18215).eval()
    randomize(vae, 931)
    scheduler = PNDMScheduler(**SCHEDULE)

    unet.save_pretrained(os.path.join(folder, "unet"))
    vae.save_pretrained(os.path.join(folder, "vae"))
    scheduler.save_pretrained(os.path.join(folder, "scheduler"))
    te = os.path.join(folder, "text_encoder")
    os.makedirs(te)
    text.config.save_pretrained(te)
    # The released SD layout: `text_model.`-prefixed names; float16 to keep the 49408-row table small.
    state = {"text_model." + k: v.half() for k, v in text.state_dict().items() if not k.endswith("position_ids")}
    save_tensors(os.path.join(te, "model.safetensors"), state, {"format": "pt"})
    write_json(os.path.join(folder, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    # diffusers loads the folder as a pipeline, with every weight equal, and runs it from prompt embeddings.
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **PIPELINE_NONE)
    pipe.set_progress_bar_config(disable=True)
    assert_same_state(pipe.unet.state_dict(), unet.state_dict(), "demo unet")
    assert_same_state(pipe.vae.state_dict(), vae.state_dict(), "demo vae")
    assert_same_state(pipe.text_encoder.state_dict(), text.state_dict(), "demo text encoder")
    assert pipe.text_encoder.dtype == torch.float32 and type(pipe.scheduler) is PNDMScheduler
    ids = ids_tensor(caption_rows(2, DEMO_CONTEXT, [6, 3], 256, DEMO_SOT, 940), DEMO_CONTEXT, DEMO_SOT, DEMO_EOT,
                     DEMO_EOT)
    with torch.no_grad():
        emb = pipe.text_encoder(ids).last_hidden_state
    latents = torch.randn(1, 4, LATENT, LATENT, generator=torch.Generator().manual_seed(941))
    image = pipe(prompt_embeds=emb[:1], negative_prompt_embeds=emb[1:], latents=latents, num_inference_steps=2,
                 height=LATENT, width=LATENT, output_type="pt").images
    assert image.shape == (1, 3, LATENT, LATENT) and torch.isfinite(image).all()


DEMO_README = """# Demo models

Tiny random models with the REAL 49408-token CLIP vocabulary (SOT 49406, EOT 49407), so the shipped open_clip
tokenizer's ids index their embedding tables. Made by `tools/make_sds_fixtures.py` (seeded, byte-stable); they are
untrained, for exercising the SDS-CLIP pipeline end to end, not for results. See `../sds/README.md`.

- `clip/`: transformers `CLIPModel` (`config.json`, `model.safetensors`), quick_gelu; text vocab 49408, width 8,
  2 layers, 2 heads, intermediate 16, 77 positions, bos 49406, eos 49407, pad 1; vision image 32, patch 8 (4×4 grid),
  width 32, 2 layers, 2 heads, intermediate 64; projection 16. Every tensor is stored float16 (config dtype float32:
  transformers loads it as float32).
- `sd/`: diffusers `StableDiffusionPipeline` folder, SD1-style: `text_encoder/` CLIPTextModel (vocab 49408, width 8,
  2 layers, 2 heads, 77 positions, quick_gelu, eos 49407, pad 49407 as SD1's tokenizer pads with EOT; float16,
  `text_model.`-prefixed names), `unet/` (cross_attention_dim 8, blocks (8, 16), CrossAttnDown/Down, Up/CrossAttnUp,
  1 layer per block, 2 heads, 4 groups, sample size 8), `vae/` (one level (8,), latent 4, 4 groups: spatial factor
  1), `scheduler/` PNDM scaled_linear epsilon (the fixtures/sd/sd1_diffusers schedule). No tokenizer, safety
  checker or feature extractor (`[null, null]` in model_index.json): load with
  `StableDiffusionPipeline.from_pretrained(folder, tokenizer=None, safety_checker=None, feature_extractor=None,
  image_encoder=None, requires_safety_checker=False)`.

`trained/` holds the models `sdsclip demo` uses: a small CLIP and an SD teacher TRAINED on the example world, with a
small vocabulary of their own (transformers tokenizer files in each folder). Made by `tools/make_demo_models.py`;
their settings, training losses and accuracies on the swapped pairs are in `trained/README.md`.
"""


# ---------------------------------------------------------------- README

def fmt(x):
    return f"{x:.6g}"


def write_readme(results):
    lines = ["# SDS-CLIP step reference bundles", "",
             "Made by `tools/make_sds_fixtures.py` (`HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_sds_fixtures.py`) "
             "with torch, transformers and diffusers in float32, models in eval mode. Seeded, single-threaded, "
             "byte-stable.", "",
             "## Bundle contract (`component: sds-step`)", "",
             "Metadata: `lambda`, `mapper` (`pooled`|`tokens`), `gradient` (`full`|`sds`), `trainable` "
             "(`layernorm`|`layernorm-image`|`all`), `latent_size`, the AdamW settings `lr_clip`, `lr_map`, "
             "`weight_decay`, `betas`, `eps`, plus `teacher` and `clip` (model folders relative to the repository "
             "root) and `prediction_type` (the teacher scheduler's).", "",
             "- `inputs.pixel_values [B,3,R,R]` (uniform [0,1] images after CLIP mean/std normalisation), "
             "`inputs.input_ids [B,L]` (SOT, words, EOT, zeros), `inputs.teacher_input_ids [B,Lt]` (the same words, "
             "padded with the teacher's `pad_token_id`: 999 for sd1, 0 for sd2, 49407 for the demo), "
             "`inputs.noise [B,4,8,8]`, `inputs.timesteps [B]` int64, `inputs.latent_map.weight/bias` (initial h_w: "
             "N(0, 0.05²), N(0, 0.01²)).",
             "- `outputs.loss_clip`, `outputs.loss_sds`, `outputs.loss` (0-d float32), `outputs.grad.NAME` and "
             "`outputs.updated.NAME` (after one `torch.optim.AdamW` step from zero state, `foreach=False`) for every "
             "trainable parameter: Hugging Face `CLIPModel` names plus `latent_map.weight` / `latent_map.bias`.",
             "- `debug.*` (not part of the contract, for localising a mismatch): `image_embeds` e, `text_embeds`, "
             "`logits_per_image`, `z0`, `z_t`, `alphas_cumprod_t` (ᾱ at each timestep), `encoder_hidden_states` "
             "(teacher conditioning), `unet_pred`, `target`, `grad_z0` (∂loss/∂z0 of the backward actually run: "
             "through the UNet for `full`, λ·g for `sds`; z0 reaches the loss only through L_SDS, so this isolates "
             "the SDS path).",
             "",
             "The step: e = visual_projection(vision_model(px).pooler_output); L_CLIP = symmetric InfoNCE with "
             "scale = exp(logit_scale).clamp(max=100) (checked equal to transformers' `CLIPModel(return_loss=True)`); "
             "`pooled`: z0 = (e·Wᵀ + b).view(B,4,8,8); `tokens`: the G² patch tokens of `last_hidden_state` (before "
             "post_layernorm) → Linear(width → 4·s·s), s = ceil(8/G), tiled `view(B,G,G,4,s,s).permute(0,3,1,4,2,5)` "
             "and cropped to the top-left 8×8 (fixture CLIP: G 5, s 2, 10×10 → 8×8), i.e. z0[b, c, i·s+di, j·s+dj] = "
             "x[b, i·G+j, c·s²+di·s+dj] for grid token (i, j) in row-major order; z_t = √ᾱ·z0 + √(1−ᾱ)·noise "
             "(checked against diffusers `DDPMScheduler.add_noise`), ᾱ = the teacher scheduler's float32 "
             "`alphas_cumprod`; target = noise (epsilon) or √ᾱ·noise − √(1−ᾱ)·z0.detach() (v, checked against "
             "`get_velocity`); L_SDS = mean((unet(z_t, t, c) − target)²); loss = L_CLIP + λ·L_SDS. `full`: "
             "`loss.backward()` through the frozen UNet. `sds`: UNet under no_grad, g = (1−ᾱ)(pred − target)·2/N, "
             "backward of L_CLIP + λ·Σ z0·g. AdamW groups: CLIP lr_clip, map lr_map; weight decay only on ndim ≥ 2.",
             "", "Bundles with the same teacher share every input except the latent map (which depends on the mapper), "
             "so `full` and `sds` bundles of one teacher/mapper have the same three losses and different gradients.",
             "", "## Bundles", "",
             "| bundle | teacher | clip | mapper | gradient | trainable | B | trainable tensors | loss_clip | loss_sds "
             "| loss |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        m, lo = r["meta"], r["losses"]
        lines.append(f"| `{r['name']}.safetensors` | `{m['teacher']}` ({m['prediction_type']}) | `{m['clip']}` | "
                     f"{m['mapper']} | {m['gradient']} | {m['trainable']} | {r['batch']} | {r['count']} | "
                     f"{fmt(lo['loss_clip'])} | {fmt(lo['loss_sds'])} | {fmt(lo['loss'])} |")
    lines += ["", "All bundles: λ 0.5, latent 8×8, lr_clip 0.001, lr_map 0.01, weight_decay 0.1, betas 0.9,0.999, "
              "eps 1e-08.", "",
              "## `sd2_v_teacher/`", "",
              "`fixtures/sd/sd2_diffusers` as a v-prediction teacher: `model_index.json` is a byte copy, "
              "`scheduler/scheduler_config.json` a copy with `prediction_type: v_prediction`, and `unet`, "
              "`text_encoder`, `vae` are relative symlinks to `../../sd/sd2_diffusers/<component>`. diffusers' "
              "`StableDiffusionPipeline.from_pretrained` loads it (tokenizer, safety checker, feature extractor and "
              "image encoder None).", "",
              "## Demo models", "",
              "`fixtures/demo/` (see its README): a CLIPModel and an SD1-style pipeline with the real 49408-token "
              "vocabulary, checked by `demo_pooled_full.safetensors` (B 2, 77-token rows: CLIP rows padded with 0, "
              "teacher rows with 49407).", ""]
    write_bytes_atomic(os.path.join(SDS, "README.md"), "\n".join(lines).encode())


# ---------------------------------------------------------------- main

def main():
    fresh_dir(SDS)
    check_tokens_layout()
    write_v_teacher()
    results = []
    clip = load_clip(CLIP_FIXTURE)
    maps = {m: make_latent_map(clip, m, seed) for m, seed in (("pooled", 11), ("tokens", 12))}
    families = [("sd1", SD1, 101, None), ("sd2", SD2, 102, None)]
    for tname, folder, seed, _ in families:
        _, text_encoder, _ = load_teacher(folder)
        inputs = make_inputs(clip, text_encoder, 3, seed, (1, 990), 998, 999, [(0, 50), (400, 600), (900, 1000)])
        combos = [(m, gr, "layernorm") for m in ("pooled", "tokens") for gr in ("full", "sds")]
        if tname == "sd1":
            combos += [("pooled", "full", "all"), ("tokens", "full", "layernorm-image")]
        family = {}
        for mapper, gradient, trainable in combos:
            name = f"{tname}_{mapper}_{gradient}" + ("" if trainable == "layernorm" else f"_{trainable}")
            r = write_bundle(name, CLIP_FIXTURE, folder, mapper, gradient, trainable, inputs, *maps[mapper])
            family[(mapper, gradient, trainable)] = r
            results.append(r)
        for mapper in ("pooled", "tokens"):  # full vs sds: same losses, different map gradients
            full, sds = family[(mapper, "full", "layernorm")], family[(mapper, "sds", "layernorm")]
            assert full["losses"] == sds["losses"], (tname, mapper)
            assert not torch.allclose(full["grads"]["latent_map.weight"], sds["grads"]["latent_map.weight"])
        if tname == "sd1":
            assert family[("pooled", "full", "all")]["count"] == len(list(clip.parameters())) + 2
            image = family[("tokens", "full", "layernorm-image")]
            assert all(n.startswith(("vision_model.", "latent_map.")) for n in image["grads"])
            both = family[("tokens", "full", "layernorm")]["grads"]
            for n, g in image["grads"].items():  # the vision gradients do not depend on what else is trained
                assert torch.allclose(both[n], g, atol=1e-7, rtol=1e-5), n

    # The v-prediction teacher: sd2's inputs, so only the target (and hence L_SDS and the gradients) differ.
    _, text_encoder, _ = load_teacher(SD2V)
    inputs = make_inputs(clip, text_encoder, 3, 102, (1, 990), 998, 999, [(0, 50), (400, 600), (900, 1000)])
    r = write_bundle("sd2v_pooled_full", CLIP_FIXTURE, SD2V, "pooled", "full", "layernorm", inputs, *maps["pooled"],
                     notes="sd2_diffusers with prediction_type v_prediction")
    eps = next(x for x in results if x["name"] == "sd2_pooled_full")
    assert r["losses"]["loss_clip"] == eps["losses"]["loss_clip"]
    assert r["losses"]["loss_sds"] != eps["losses"]["loss_sds"]
    results.append(r)

    # Demo models, and one bundle that runs them.
    os.makedirs(DEMO, exist_ok=True)
    write_demo_clip()
    write_demo_sd()
    write_bytes_atomic(os.path.join(DEMO, "README.md"), DEMO_README.encode())
    demo_clip = load_clip(DEMO_CLIP)
    _, demo_text, _ = load_teacher(DEMO_SD)
    inputs = make_inputs(demo_clip, demo_text, 2, 103, (256, DEMO_SOT), DEMO_SOT, DEMO_EOT, [(0, 50), (900, 1000)])
    weight, bias = make_latent_map(demo_clip, "pooled", 13)
    results.append(write_bundle("demo_pooled_full", DEMO_CLIP, DEMO_SD, "pooled", "full", "layernorm", inputs,
                                weight, bias))

    write_readme(results)
    for r in results:
        lo = r["losses"]
        print(f"{r['name']}: loss_clip {fmt(lo['loss_clip'])} loss_sds {fmt(lo['loss_sds'])} loss {fmt(lo['loss'])} "
              f"({r['count']} trainable tensors)")
    for base in (SDS, DEMO):
        for dirpath, _, files in os.walk(base):
            for f in files:
                assert os.path.getsize(os.path.join(dirpath, f)) < MAX_FILE, f


if __name__ == "__main__":
    main()
