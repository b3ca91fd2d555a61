#!/usr/bin/env python3
"""Stable Diffusion speed and peak memory, Swift (sdsclip-bench sd-*) vs diffusers on PyTorch CPU, in one run.

Cases (both sides: SD1.5 default configs, random weights, eval, batch 1; float32 unless --precision):
  sd-unet-forward   UNet2DConditionModel (cross_attention_dim 768), latent [1, 4, 64, 64], timestep 981, text states [1, 77, 768], no grad
  sd-unet-backward  the same forward with the graph recorded, then out.sum().backward() to the latent only
                    (the weights are frozen: the SDS teacher path)
  sd-vae-encode     AutoencoderKL encoder, pixels [1, 3, 512, 512] -> latent_dist.mean, no grad

Every measurement runs in its own process (Swift: the sdsclip-bench release binary; torch: this script with
--torch-case), so each peak RSS (VmHWM from /proc/self/status at the end) belongs to one case and one side.
The same thread count on both sides: SDSCLIP_THREADS=N (and OPENBLAS_NUM_THREADS=N) for Swift,
torch.set_num_threads(N) (and OMP_NUM_THREADS=N) for torch. Each figure is the best of R timed runs after one
warm-up. torch's forward runs under inference_mode; diffusers' default attention processor (SDPA).
The machine may be shared: the load average is printed before and after, and best-of-R is what damps it.

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_sd.py [--threads 2] [--repeats 2] [--no-build]
        [--scratch-path .build-release-h12] [--cases sd-unet-forward,sd-unet-backward,sd-vae-encode]
        [--latent 64] [--image 512] [--precision fp32|bf16|auto] [--torch-fp32]

--precision bf16 runs sdsclip-bench with bf16 compute (sdsclip's --precision: bf16 copies of the frozen weights,
float32 values released) and torch under CPU autocast bf16 (the forward in `torch.autocast("cpu",
dtype=torch.bfloat16)`, backward outside it); --torch-fp32 adds torch in float32 as a second reference column.

Prints one table: case, seconds and peak RSS (GiB) for each side, ratio = torch seconds / Swift seconds
(>= 1 means Swift is at least as fast).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchlib  # tools/bench, the script's own folder, is first on sys.path

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CASES = ["sd-unet-forward", "sd-unet-backward", "sd-vae-encode"]
GIB = float(1 << 30)


def peak_rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


build = benchlib.build


def last_json(stdout, stderr, what):
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{what} printed no measurement:\n{stdout}\n{stderr}")
    return lines[-1]


def run_swift(binary, case, side, repeats, threads, precision):
    env = dict(os.environ, SDSCLIP_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run([binary, case, str(repeats), str(side), precision], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sdsclip-bench {case} failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, f"sdsclip-bench {case}")


def run_torch(case, side, repeats, threads, precision):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-case", case, "--side", str(side),
           "--repeats", str(repeats), "--threads", str(threads), "--precision", precision]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"torch {case} failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, f"torch {case}")


def torch_case(case, side, repeats, threads, precision):
    """Child process: one diffusers measurement, printed as a JSON line. precision bf16: the forward under CPU
    autocast (bf16 matrix products and convolutions, float32 weights)."""
    import contextlib

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if case == "sd-vae-encode":
        model = AutoencoderKL(
            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4, sample_size=512)
        pixels = torch.randn(1, 3, side, side)

        def body():
            with torch.inference_mode(), autocast():
                return model.encode(pixels).latent_dist.mean.float().abs().sum().item()
    else:
        # diffusers' defaults are the SD1.5 UNet except the text width (its default is 1280; SD1.5's is 768).
        model = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        latent = torch.randn(1, 4, side, side)
        context = torch.randn(1, 77, 768)
        timestep = torch.tensor([981])
        if case == "sd-unet-forward":
            def body():
                with torch.inference_mode(), autocast():
                    return model(latent, timestep, encoder_hidden_states=context).sample.float().abs().sum().item()
        else:
            sample = latent.clone().requires_grad_(True)

            def body():
                sample.grad = None
                with autocast():
                    out = model(sample, timestep, encoder_hidden_states=context).sample
                out.float().sum().backward()
                return sample.grad.abs().sum().item()
    model.eval().requires_grad_(False)

    checksum = body()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        checksum = body()
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"case": case, "seconds": best, "checksum": checksum, "peak_rss_bytes": peak_rss_bytes(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__, "precision": precision}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latent", type=int, default=64, help="latent side for the UNet cases")
    parser.add_argument("--image", type=int, default=512, help="image side for the VAE encoder")
    parser.add_argument("--scratch-path", default=os.path.join(ROOT, ".build-release-h12"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release binary")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                        help="Swift: sdsclip's --precision; torch: bf16 = CPU autocast bf16 (auto = bf16 on torch)")
    parser.add_argument("--torch-fp32", action="store_true", help="also run torch in float32 (the reference for bf16)")
    parser.add_argument("--torch-case", help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.torch_case:
        torch_case(args.torch_case, args.side, args.repeats, args.threads,
                   "bf16" if args.precision == "auto" else args.precision)
        return

    cases = args.cases.split(",")
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {CASES}")
    binary = os.path.join(args.scratch_path, "release", "sdsclip-bench") if args.no_build else build(args.scratch_path)

    load_before = os.getloadavg()
    rows = []
    for case in cases:
        side = args.image if case == "sd-vae-encode" else args.latent
        swift = run_swift(binary, case, side, args.repeats, args.threads, args.precision)
        print(f"{case}: swift {swift['seconds']:.2f} s, {swift['peak_rss_bytes'] / GIB:.2f} GiB "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        reference = run_torch(case, side, args.repeats, args.threads, args.precision)
        print(f"{case}: torch {reference['seconds']:.2f} s, {reference['peak_rss_bytes'] / GIB:.2f} GiB "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        fp32 = None
        if args.torch_fp32:
            fp32 = run_torch(case, side, args.repeats, args.threads, "fp32")
            print(f"{case}: torch fp32 {fp32['seconds']:.2f} s, {fp32['peak_rss_bytes'] / GIB:.2f} GiB "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        shape = f"[1,4,{side},{side}]" if case != "sd-vae-encode" else f"[1,3,{side},{side}]"
        rows.append((f"{case} {shape}", swift, reference, fp32))
    load_after = os.getloadavg()

    torch_version = rows[0][2].get("torch", "?") if rows else "?"
    torch_precision = "fp32" if args.precision == "fp32" else "bf16 CPU autocast"
    print(f"\nStable Diffusion (SD1.5 sizes, random weights; Swift --precision {args.precision}, torch "
          f"{torch_precision}), {args.threads} thread(s) each side, "
          f"best of {args.repeats} after a warm-up (torch {torch_version})")
    print(f"load average (1/5/15 min): before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} cores")
    header = f"{'case':<32} {'swift s':>9} {'torch s':>9} {'ratio':>7} {'swift GiB':>10} {'torch GiB':>10}"
    print(header + (f" {'fp32 s':>9} {'ratio':>7} {'fp32 GiB':>9}" if args.torch_fp32 else ""))
    for name, swift, reference, fp32 in rows:
        line = (f"{name:<32} {swift['seconds']:>9.2f} {reference['seconds']:>9.2f} "
                f"{reference['seconds'] / swift['seconds']:>6.2f}x "
                f"{swift['peak_rss_bytes'] / GIB:>10.2f} {reference['peak_rss_bytes'] / GIB:>10.2f}")
        if fp32:
            line += (f" {fp32['seconds']:>9.2f} {fp32['seconds'] / swift['seconds']:>6.2f}x "
                     f"{fp32['peak_rss_bytes'] / GIB:>9.2f}")
        print(line)
    print("(ratio = torch seconds / Swift seconds, >= 1 means Swift is at least as fast; GiB = peak RSS of the "
          "process, weights included)")


if __name__ == "__main__":
    main()
