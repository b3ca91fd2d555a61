#!/usr/bin/env python3
"""Interop check of `sdsclip convert SINGLE_FILE OUT_DIR --layout diffusers` against diffusers itself.

For each single-file LDM fixture (fixtures/sd: SD1 .ckpt and .safetensors, SD1 .ckpt with --ema, SD2
.safetensors), run the CLI, then load OUT_DIR offline with diffusers/transformers `from_pretrained`:
- `StableDiffusionPipeline.from_pretrained(OUT_DIR)` must load the whole folder;
- each component (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) must load with no missing,
  unexpected or mismatched keys (`output_loading_info=True`);
- running each fixture reference bundle's inputs through the loaded component must reproduce the
  bundle's outputs (which diffusers / transformers / open_clip produced from the original models)
  with max|a-b| <= 1e-5 * max|b| (the weights are copied exactly, so only op-order noise remains).
A failed conversion must leave no OUT_DIR behind.

Usage: interop_sd_convert.py --cli PATH/TO/sdsclip [--fixtures fixtures/sd]
Prints one line per check and `interop-sd: N passed, M failed`; exit status 1 on any failure.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

RELATIVE_TOLERANCE = 1e-5
TIME_LIMIT = 120  # seconds per conversion of the tiny fixtures; only catches hangs

# (single file, config folder, extra CLI flags, UNet bundle, text bundle)
CASES = [
    ("sd1_tiny.ckpt", "sd1_diffusers", [], "unet_sd1", "text_sd1"),
    ("sd1_tiny.safetensors", "sd1_diffusers", [], "unet_sd1", "text_sd1"),
    ("sd1_tiny.ckpt", "sd1_diffusers", ["--ema"], "unet_sd1_ema", "text_sd1"),
    ("sd2_tiny.safetensors", "sd2_diffusers", [], "unet_sd2", "text_sd2"),
]


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


def check_case(cli, fixtures, case, workdir):
    single, config, flags, unet_bundle, text_bundle = case
    label = f"{single}{' ' + ' '.join(flags) if flags else ''}"
    out = os.path.join(workdir, "out")
    proc = subprocess.run([cli, "convert", "--quiet", os.path.join(fixtures, single), out, "--layout", "diffusers",
                           "--config", os.path.join(fixtures, config)] + flags,
                          capture_output=True, text=True, timeout=TIME_LIMIT)
    if proc.returncode != 0:
        return [(False, f"{label}: convert failed ({proc.returncode}): {proc.stderr.strip()}")]
    results = []
    try:
        # The folder has no tokenizer or safety checker (model_index.json says null), as the fixture folders.
        StableDiffusionPipeline.from_pretrained(out, local_files_only=True, tokenizer=None, safety_checker=None,
                                                feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        results.append((True, f"{label}: StableDiffusionPipeline.from_pretrained loads the folder"))
    except Exception as error:  # any load failure is a finding, reported with its message
        results.append((False, f"{label}: StableDiffusionPipeline.from_pretrained failed: {error}"))

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
        results.append(check_refusal(args.cli, args.fixtures, workdir))
    failed = 0
    for ok, message in results:
        print(("ok   " if ok else "FAIL ") + message)
        failed += 0 if ok else 1
    print(f"interop-sd: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
