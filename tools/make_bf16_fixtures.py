"""torch CPU autocast (bf16) references of the SDS-CLIP step, for `verify --precision bf16`.

For each bundle named below, the fp32 bundle's own inputs (fixtures/sds/NAME.safetensors: pixels, token ids,
noise, timesteps, the initial latent map) go through the same step as tools/make_sds_fixtures.py computes, with
the whole step (CLIP towers, h_w, the teacher's text encoder and UNet) under `torch.autocast("cpu",
dtype=torch.bfloat16)`: torch rounds the inputs and weights of every linear, convolution and attention matmul to
bf16 there. Outputs (losses, gradients of the float32 trainables, the AdamW update) are stored as float32.

Writes fixtures/bf16/NAME_autocast.safetensors with the fp32 bundle's metadata plus `precision: bf16-autocast`,
and the largest relative difference of each output from the fp32 bundle in `fixtures/bf16/README.md`.

Run: HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_bf16_fixtures.py
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

import make_sds_fixtures as sds  # noqa: E402
from make_sd_fixtures import write_bytes_atomic  # noqa: E402

OUT = os.path.join(sds.REPO, "fixtures", "bf16")
BUNDLES = ["sd1_pooled_full", "sd1_pooled_sds", "sd2_tokens_full", "sd2v_pooled_full"]


def read_bundle(name):
    path = os.path.join(sds.SDS, name + ".safetensors")
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def relative(a, b):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-30)).item()


def main():
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for name in BUNDLES:
        tensors, meta = read_bundle(name)
        inputs = {k[len("inputs."):]: v for k, v in tensors.items() if k.startswith("inputs.") and not k.startswith("inputs.latent_map.")}
        weight0, bias0 = tensors["inputs.latent_map.weight"], tensors["inputs.latent_map.bias"]
        clip = sds.load_clip(meta["clip"])
        unet, text_encoder, scheduler = sds.load_teacher(meta["teacher"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses, grads, updated, _ = sds.sds_step(clip, unet, text_encoder, scheduler, inputs, weight0, bias0,
                                                     meta["mapper"], meta["gradient"], meta["trainable"], float(meta["lambda"]))
        out = {k: v for k, v in tensors.items() if k.startswith("inputs.")}
        outputs = dict(losses)
        outputs.update({f"grad.{k}": v for k, v in grads.items()})
        outputs.update({f"updated.{k}": v for k, v in updated.items()})
        worst = 0.0
        for k, v in outputs.items():
            out[f"outputs.{k}"] = v.float()
            worst = max(worst, relative(v, tensors[f"outputs.{k}"]))
        sds.save_tensors(os.path.join(OUT, f"{name}_autocast.safetensors"), out, dict(meta, precision="bf16-autocast"))
        rows.append((name, {k: v.item() for k, v in losses.items()}, worst))
        print(f"{name}: loss_clip {losses['loss_clip'].item():.6g} loss_sds {losses['loss_sds'].item():.6g}; "
              f"largest relative difference from fp32 {worst:.3e}")
    lines = ["# bf16 autocast references of the SDS-CLIP step", "",
             "Made by `tools/make_bf16_fixtures.py` from the fp32 bundles in `fixtures/sds/` (the same inputs), with the whole "
             "step under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`. Outputs and metadata as the fp32 bundles, plus "
             "`precision: bf16-autocast`. `verify --precision bf16` checks against them (tests: BFloat16StepTests).", "",
             "| bundle | loss_clip | loss_sds | largest output difference from fp32 (relative to the output's max) |",
             "| --- | --- | --- | --- |"]
    for name, lo, worst in rows:
        lines.append(f"| `{name}_autocast` | {lo['loss_clip']:.6g} | {lo['loss_sds']:.6g} | {worst:.2e} |")
    write_bytes_atomic(os.path.join(OUT, "README.md"), ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
