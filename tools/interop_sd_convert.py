#!/usr/bin/env python3
"""Interop check of `sdsclip convert SINGLE_FILE OUT_DIR --layout diffusers` against diffusers itself.

For each single-file LDM fixture (fixtures/sd: SD1 .ckpt and .safetensors, SD1 .ckpt with --ema, SD2
.safetensors) and each `--dtype` (keep, f16, bf16), run the CLI, then load OUT_DIR offline:
- a plain `StableDiffusionPipeline.from_pretrained(OUT_DIR)` (no component passed in) must load the
  whole folder: CLIPTokenizer, CLIPImageProcessor, the scheduler model_index.json names, no safety
  checker, every model in float32 (diffusers upcasts a stored f16/bf16 UNet and VAE; the text config
  says float32 so the text encoder matches); with `torch_dtype=` the f16/bf16 folders load every
  model in that dtype;
- the tokenizer must give the text encoder's ids (SOT 998, EOT 999, pad EOT for SD1 and "!" = 0 for SD2,
  the context length), and a prompt run of the pipeline (2 steps) must give a finite image;
- keep (float32): each component (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) must load with no
  missing, unexpected or mismatched keys (`output_loading_info=True`), each fixture reference bundle's
  inputs through it must reproduce the bundle's outputs (which diffusers / transformers / open_clip
  produced from the original models), and the pipeline run of pipeline_sd{1,2}.reference (given prompt
  embeddings and initial latents, 3 steps, guidance 7.5) must reproduce its image, all with
  max|a-b| <= 1e-5 * max|b| (the weights are copied exactly, so only op-order noise remains);
- f16/bf16: every tensor must equal the float32 folder's tensor cast with torch's `.to(dtype)`, and the
  prompt run in that dtype must stay within 0.05 (f16) / 0.15 (bf16) of the float32 image.
A --config folder without a scheduler gives PNDMScheduler from the checkpoint's `betas` buffer: its
alphas_cumprod and 50-step timesteps must equal diffusers' own (schedule.reference). A failed
conversion must leave no OUT_DIR behind.

Usage: interop_sd_convert.py --cli PATH/TO/sdsclip [--fixtures fixtures/sd]
Prints one line per check and `interop-sd: N passed, M failed`; exit status 1 on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPImageProcessor, CLIPTextModel  # noqa: E402

RELATIVE_TOLERANCE = 1e-5
TIME_LIMIT = 120  # seconds per conversion of the tiny fixtures; only catches hangs

# (single file, config folder, extra CLI flags, UNet bundle, text bundle, pipeline bundle or None for EMA)
CASES = [
    ("sd1_tiny.ckpt", "sd1_diffusers", [], "unet_sd1", "text_sd1", "pipeline_sd1"),
    ("sd1_tiny.safetensors", "sd1_diffusers", [], "unet_sd1", "text_sd1", "pipeline_sd1"),
    ("sd1_tiny.ckpt", "sd1_diffusers", ["--ema"], "unet_sd1_ema", "text_sd1", None),
    ("sd2_tiny.safetensors", "sd2_diffusers", [], "unet_sd2", "text_sd2", "pipeline_sd2"),
]
DTYPES = {"keep": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# Loose bounds on the prompt run's image against float32 (max-abs, image in [0, 1]): rounding of the weights
# and activations only; a wrong or missing cast is off by far more.
IMAGE_BOUND = {"f16": 0.05, "bf16": 0.15}
SOT, EOT = 998, 999  # the tiny text encoders' 1000-id vocabulary
PROMPT = "a red cube left of a blue sphere"


def bundle(fixtures, name):
    tensors = {}
    with safe_open(os.path.join(fixtures, f"{name}.reference.safetensors"), "pt") as f:
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors


def compare(label, computed, expected):
    error = (computed.float() - expected.float()).abs().max().item()
    scale = expected.abs().max().item()
    ok = computed.shape == expected.shape and error <= RELATIVE_TOLERANCE * scale
    return ok, f"{label}: max-abs {error:.3e}, relative {error / scale if scale else error:.3e}"


def load_checked(cls, folder, subfolder):
    model, info = cls.from_pretrained(folder, subfolder=subfolder, local_files_only=True, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    return model.eval(), problems


def convert(cli, fixtures, single, config, flags, out):
    return subprocess.run([cli, "convert", "--quiet", os.path.join(fixtures, single), out, "--layout", "diffusers",
                           "--config", os.path.join(fixtures, config)] + flags,
                          capture_output=True, text=True, timeout=TIME_LIMIT)


def folder_tensors(folder):
    tensors = {}
    for component, name in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model")]:
        with safe_open(os.path.join(folder, component, f"{name}.safetensors"), "pt") as f:
            for key in f.keys():
                tensors[f"{component}/{key}"] = f.get_tensor(key)
    return tensors


def prompt_image(pipe):
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        return pipe(PROMPT, num_inference_steps=2, guidance_scale=7.5, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images.float()


def check_pipeline(label, out, dtype, sd2, scheduler, torch_dtype=None):
    """from_pretrained with no component passed in: every component from the folder itself."""
    results = []
    how = "plain" if torch_dtype is None else f"torch_dtype={torch_dtype}"
    label = f"{label} ({how})"
    try:
        extra = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
        pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True, **extra)
    except Exception as error:  # any load failure is a finding, reported with its message
        return [(False, f"{label}: StableDiffusionPipeline.from_pretrained failed: {error}")], None, None
    parts = {
        "tokenizer": type(pipe.tokenizer).__name__, "feature_extractor": type(pipe.feature_extractor).__name__,
        "scheduler": type(pipe.scheduler).__name__, "safety_checker": pipe.safety_checker,
        "dtypes": (pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype),
    }
    ok = parts["tokenizer"].startswith("CLIPTokenizer") and isinstance(pipe.feature_extractor, CLIPImageProcessor) \
        and parts["scheduler"] == scheduler and pipe.safety_checker is None and parts["dtypes"] == (dtype,) * 3
    results.append((ok, f"{label}: StableDiffusionPipeline.from_pretrained loads {parts}"))
    tokenizer = pipe.tokenizer
    ids = tokenizer(PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    pad = 0 if sd2 else EOT
    end = ids.index(EOT) if EOT in ids else -1
    ok = len(ids) == 16 and ids[0] == SOT and max(ids) < pipe.text_encoder.config.vocab_size and end > 1 \
        and all(i == pad for i in ids[end + 1:]) and tokenizer.pad_token_id == pad
    results.append((ok, f"{label}: tokenizer ids {ids} (pad {tokenizer.pad_token_id})"))
    try:
        image = prompt_image(pipe)
    except Exception as error:  # a run failure is a finding, reported with its message
        return results + [(False, f"{label}: prompt run failed: {error}")], pipe, None
    ok = tuple(image.shape) == (1, 3, 64, 64) and bool(torch.isfinite(image).all())
    results.append((ok, f"{label}: prompt run gives a {tuple(image.shape)} image, finite {bool(torch.isfinite(image).all())}"))
    return results, pipe, image


def check_reference_pipeline(label, pipe, fixtures, name):
    b = bundle(fixtures, name)
    with safe_open(os.path.join(fixtures, f"{name}.reference.safetensors"), "pt") as f:
        settings = f.metadata()
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        cond = pipe.text_encoder(input_ids=b["inputs.input_ids"]).last_hidden_state
        uncond = pipe.text_encoder(input_ids=b["inputs.negative_input_ids"]).last_hidden_state
        image = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=b["inputs.latents"].clone(),
                     num_inference_steps=int(settings["num_inference_steps"]), guidance_scale=float(settings["guidance_scale"]),
                     output_type="pt").images
    return compare(f"{label}: {name} image", image, b["outputs.image"])


def check_case(cli, fixtures, case, workdir):
    single, config, flags, unet_bundle, text_bundle, pipeline_bundle = case
    sd2 = single.startswith("sd2")
    with open(os.path.join(fixtures, config, "scheduler", "scheduler_config.json")) as f:
        scheduler = json.load(f)["_class_name"]
    results = []
    reference_tensors = reference_image = None
    for dtype_name in DTYPES:
        label = f"{single}{' ' + ' '.join(flags) if flags else ''} --dtype {dtype_name}"
        out = os.path.join(workdir, f"out-{dtype_name}")
        proc = convert(cli, fixtures, single, config, flags + ["--dtype", dtype_name], out)
        if proc.returncode != 0:
            results.append((False, f"{label}: convert failed ({proc.returncode}): {proc.stderr.strip()}"))
            continue
        # A plain load runs in float32 (diffusers upcasts the UNet and VAE; the text config says float32).
        loaded, pipe, image = check_pipeline(label, out, torch.float32, sd2, scheduler)
        results += loaded
        if dtype_name == "keep":
            reference_tensors, reference_image = folder_tensors(out), image
            if pipe is not None and pipeline_bundle:
                results.append(check_reference_pipeline(label, pipe, fixtures, pipeline_bundle))
            results += check_components(label, fixtures, out, unet_bundle, text_bundle)
            continue
        if reference_tensors is None:
            results.append((False, f"{label}: no float32 folder to compare with"))
            continue
        dtype = DTYPES[dtype_name]
        written = folder_tensors(out)
        exact = written.keys() == reference_tensors.keys() and all(
            written[k].dtype == dtype and torch.equal(written[k], reference_tensors[k].to(dtype)) for k in written)
        results.append((exact, f"{label}: {len(written)} tensors equal the float32 folder's cast to {dtype}"))
        # Loaded as stored: every model in the dtype, and a prompt run close to float32's.
        loaded, _, image = check_pipeline(label, out, dtype, sd2, scheduler, torch_dtype=dtype)
        results += loaded
        if image is not None and reference_image is not None:
            error = (image - reference_image).abs().max().item()
            results.append((error <= IMAGE_BOUND[dtype_name], f"{label}: {dtype} prompt image vs float32 max-abs {error:.3e} (bound {IMAGE_BOUND[dtype_name]})"))
    return results


def check_components(label, fixtures, out, unet_bundle, text_bundle):
    results = []
    with torch.no_grad():
        unet, problems = load_checked(UNet2DConditionModel, out, "unet")
        results.append((not problems, f"{label}: unet loading info {problems or 'clean'}"))
        b = bundle(fixtures, unet_bundle)
        sample = unet(b["inputs.sample"], b["inputs.timestep"], encoder_hidden_states=b["inputs.encoder_hidden_states"]).sample
        results.append(compare(f"{label}: {unet_bundle} sample", sample, b["outputs.sample"]))

        vae, problems = load_checked(AutoencoderKL, out, "vae")
        results.append((not problems, f"{label}: vae loading info {problems or 'clean'}"))
        b = bundle(fixtures, "vae_encoder")
        mean = vae.encode(b["inputs.sample"]).latent_dist.mean
        results.append(compare(f"{label}: vae_encoder latent_mean", mean, b["outputs.latent_mean"]))
        b = bundle(fixtures, "vae_decoder")
        image = vae.decode(b["inputs.latent"]).sample
        results.append(compare(f"{label}: vae_decoder sample", image, b["outputs.sample"]))

        text, problems = load_checked(CLIPTextModel, out, "text_encoder")
        results.append((not problems, f"{label}: text_encoder loading info {problems or 'clean'}"))
        b = bundle(fixtures, text_bundle)
        states = text(b["inputs.input_ids"]).last_hidden_state
        results.append(compare(f"{label}: {text_bundle} last_hidden_state", states, b["outputs.last_hidden_state"]))
    return results


def check_scheduler_from_checkpoint(cli, fixtures, workdir):
    """A --config folder without a scheduler: PNDMScheduler with the schedule of the checkpoint's betas buffer
    must give diffusers' own float32 alphas_cumprod and PNDM's 50-step timesteps (schedule.reference)."""
    config = os.path.join(workdir, "config")
    for component in ("unet", "vae", "text_encoder"):
        os.makedirs(os.path.join(config, component))
        shutil.copy(os.path.join(fixtures, "sd1_diffusers", component, "config.json"), os.path.join(config, component))
    out = os.path.join(workdir, "out")
    proc = subprocess.run([cli, "convert", "--quiet", os.path.join(fixtures, "sd1_tiny.safetensors"), out, "--layout", "diffusers",
                           "--config", config], capture_output=True, text=True, timeout=TIME_LIMIT)
    if proc.returncode != 0:
        return [(False, f"scheduler from betas: convert failed ({proc.returncode}): {proc.stderr.strip()}")]
    pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True)
    reference = bundle(fixtures, "schedule")
    scheduler = pipe.scheduler
    same_alphas = torch.equal(scheduler.alphas_cumprod.float(), reference["alphas_cumprod.float32"])
    scheduler.set_timesteps(50)
    same_steps = torch.equal(scheduler.timesteps.to(torch.int64), reference["pndm.timesteps"])
    return [(type(scheduler).__name__ == "PNDMScheduler" and same_alphas and same_steps,
             f"scheduler from the checkpoint's betas: {type(scheduler).__name__}, alphas_cumprod equal {same_alphas}, "
             f"50-step PNDM timesteps equal {same_steps}")]


def check_refusal(cli, fixtures, workdir):
    """Non-standard sizes without --config must fail cleanly and leave nothing behind."""
    out = os.path.join(workdir, "refused")
    proc = subprocess.run([cli, "convert", "--quiet", os.path.join(fixtures, "sd1_tiny.safetensors"), out, "--layout", "diffusers"],
                          capture_output=True, text=True, timeout=TIME_LIMIT)
    ok = 1 <= proc.returncode <= 127 and "--config" in proc.stderr and not os.path.exists(out) \
        and not any("refused" in name for name in os.listdir(workdir))
    return ok, f"no --config for a tiny file: exit {proc.returncode}, {proc.stderr.strip()[:120]}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    parser.add_argument("--fixtures", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "sd"))
    args = parser.parse_args()
    results = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as workdir:
            results += check_case(args.cli, args.fixtures, case, workdir)
    with tempfile.TemporaryDirectory() as workdir:
        results += check_scheduler_from_checkpoint(args.cli, args.fixtures, workdir)
    with tempfile.TemporaryDirectory() as workdir:
        results.append(check_refusal(args.cli, args.fixtures, workdir))
    failed = 0
    for ok, message in results:
        print(("ok   " if ok else "FAIL ") + message)
        failed += 0 if ok else 1
    print(f"interop-sd: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
