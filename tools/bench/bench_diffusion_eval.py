#!/usr/bin/env python3
"""The diffusion-score classifier (`sdsclip eval --teacher`) per Winoground item, Swift (sdsclip-bench
sd-diffusion-score) vs the same protocol in diffusers on PyTorch CPU, in one run.

One item is what Winoground gives: 2 images x 2 captions. Both sides do all of `eval`'s work for it: decode the
two PNGs (random pixels, 8*S x 8*S) and resize/centre-crop them (Pillow's bicubic; a no-op at the native size),
VAE-encode them to z0 = posterior mean x 0.18215, encode the 2 captions with SD1's text encoder (77 tokens), and
run the UNet over the 2 x 2 x K (caption, image, timestep) rows, BATCH rows per pass, with ε_k shared by every
pair and Diffusion Classifier's timesteps T//K//2 + k*(T//K); the error is the mean squared ε difference.
Teacher: SD1.5 sizes with random weights, float32 (diffusers UNet2DConditionModel(sample_size=64,
cross_attention_dim=768), AutoencoderKL with the SD VAE's blocks, transformers CLIPTextModel with SD1's text
config; Swift: UNetConfiguration.sd1, AutoencoderConfiguration.stableDiffusion, the SD1 text configuration, from
RandomParameterSource). torch runs under inference_mode with diffusers' default attention processor (SDPA).

Every measurement runs in its own process, so each peak RSS (VmHWM) belongs to one side. The same thread count
on both sides (SDSCLIP_THREADS / OPENBLAS_NUM_THREADS; torch.set_num_threads, OMP_NUM_THREADS). Best of R runs
without a warm-up (one item at the defaults is minutes; model construction is untimed).

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_diffusion_eval.py [--threads 2] [--repeats 1]
        [--timesteps 10] [--batch 4] [--latent 64] [--no-build] [--scratch-path .build-release] [--bin PATH]

Prints seconds per item on each side, the ratio torch/Swift (>= 1: Swift at least as fast), seconds per item / UNet
rows (VAE and text encoder included) and peak RSS. --latent 8 --timesteps 2 is a quick check of the script itself, not a measurement.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sd import GIB, build, last_json, peak_rss_bytes  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
END_OF_TEXT = 49407
CAPTIONS = ["a red cube to the left of a blue sphere", "a blue sphere to the left of a red cube"]


def run_swift(binary, args):
    env = dict(os.environ, SDSCLIP_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    cmd = [binary, "sd-diffusion-score", str(args.repeats), str(args.latent), str(args.timesteps), str(args.batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sdsclip-bench sd-diffusion-score failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, "sdsclip-bench sd-diffusion-score")


def run_torch(args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-side", "--threads", str(args.threads), "--repeats",
           str(args.repeats), "--timesteps", str(args.timesteps), "--batch", str(args.batch), "--latent", str(args.latent)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"torch side failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, "torch side")


def torch_side(args):
    """Child process: one diffusers measurement, printed as a JSON line."""
    import numpy as np
    import open_clip
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from PIL import Image
    from torchvision import transforms
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).eval().requires_grad_(False)
    vae = AutoencoderKL(down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                        sample_size=512).eval().requires_grad_(False)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                        max_position_embeddings=77, hidden_act="quick_gelu", vocab_size=49408)).eval()
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    side = 8 * args.latent
    transform = transforms.Compose([transforms.Resize(side, interpolation=transforms.InterpolationMode.BICUBIC),
                                    transforms.CenterCrop(side), lambda image: image.convert("RGB"), transforms.ToTensor(),
                                    transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])])
    folder = tempfile.mkdtemp(prefix="bench-diffusion-")
    rng = np.random.default_rng(11)
    paths = []
    for index in range(2):
        path = os.path.join(folder, f"ex_0_img_{index}.png")
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    spacing = 1000 // args.timesteps
    steps = torch.tensor([spacing // 2 + k * spacing for k in range(args.timesteps)])
    noise = torch.randn(args.timesteps, 4, args.latent, args.latent, generator=torch.Generator().manual_seed(0))

    def item():
        with torch.inference_mode():
            latents = [vae.encode(transform(Image.open(p)).unsqueeze(0)).latent_dist.mean * 0.18215 for p in paths]
            ids = open_clip.tokenize(CAPTIONS)
            for row in ids:
                row[int((row == END_OF_TEXT).nonzero()[0]) + 1:] = END_OF_TEXT
            states = text(input_ids=ids).last_hidden_state
            rows = [(i, c, k) for i in range(2) for c in range(2) for k in range(args.timesteps)]
            total = 0.0
            for start in range(0, len(rows), args.batch):
                chunk = rows[start:start + args.batch]
                t = steps[[k for _, _, k in chunk]]
                eps = noise[[k for _, _, k in chunk]]
                z0 = torch.cat([latents[i] for i, _, _ in chunk])
                noisy = scheduler.add_noise(z0, eps, t)
                predicted = unet(noisy, t, encoder_hidden_states=states[[c for _, c, _ in chunk]]).sample
                total += float(((predicted - eps) ** 2).mean(dim=(1, 2, 3)).sum()) / args.timesteps
            return total

    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        checksum = item()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"case": "sd-diffusion-score", "seconds": best, "checksum": checksum, "peak_rss_bytes": peak_rss_bytes(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timesteps", type=int, default=10, help="K (eval --teacher-timesteps; its default is 10)")
    parser.add_argument("--batch", type=int, default=4, help="UNet rows per pass (eval --teacher-batch-size; default 4)")
    parser.add_argument("--latent", type=int, default=64, help="latent side (image side = 8x; SD1.5: 64)")
    parser.add_argument("--scratch-path", default=os.path.join(ROOT, ".build-release"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release binary")
    parser.add_argument("--bin", help="this sdsclip-bench binary instead of building one (e.g. a debug build for a script check)")
    parser.add_argument("--torch-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_side:
        torch_side(args)
        return

    if args.bin:
        binary = args.bin
    else:
        binary = os.path.join(args.scratch_path, "release", "sdsclip-bench") if args.no_build else build(args.scratch_path)
    load_before = os.getloadavg()
    swift = run_swift(binary, args)
    print(f"swift {swift['seconds']:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    reference = run_torch(args)
    print(f"torch {reference['seconds']:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    load_after = os.getloadavg()
    rows = 4 * args.timesteps
    print(f"\ndiffusion-score classifier, one Winoground item (2 images x 2 captions x K = {args.timesteps} timesteps = "
          f"{rows} UNet rows, batch {args.batch}), latent {args.latent}x{args.latent} (image {8 * args.latent} px), "
          f"random SD1.5-size weights, fp32, {args.threads} thread(s) each side, best of {args.repeats} "
          f"(torch {reference.get('torch', '?')})")
    print(f"load average (1/5/15 min): before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} cores")
    print(f"{'side':<8} {'s / item':>10} {'item/rows':>9} {'peak GiB':>9}")
    for name, result in [("swift", swift), ("torch", reference)]:
        print(f"{name:<8} {result['seconds']:>10.2f} {result['seconds'] / rows:>9.3f} {result['peak_rss_bytes'] / GIB:>9.2f}")
    print(f"ratio torch / swift: {reference['seconds'] / swift['seconds']:.2f}x (>= 1 means Swift is at least as fast)")


if __name__ == "__main__":
    main()
