#!/usr/bin/env python3
"""bf16 GEMM routes (sdsclip-bench bf16-gemm) vs torch bf16 and f32 matmul, in one run at one thread count.

Every shape is x [M, K] . W^T with W [N, K] (a linear weight): CLIP ViT-B/32 linears (M = 100 tokens),
UNet im2col conv GEMMs (M pixels, K = C*9, N = C), UNet attention projection and feed-forward (M = 4096).
Swift routes: onednn-bf16 and kernel-bf16 (x rounded to bf16 inside the timing, W converted once),
engine-fp32 (the engine's gemm over OpenBLAS), onednn-fp32. torch: bf16 x and W (conversion not timed),
and f32. Each figure is the best wall time of R runs after one warm-up, as GFLOP/s (2*M*N*K / s).

Threads: torch.set_num_threads(N); SDSCLIP_THREADS=N and OMP_NUM_THREADS=N (oneDNN's OpenMP team).

Run (from the repository root):
    HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/bench/bench_bf16.py [--threads 2] [--repeats 5]
        [--no-build] [--scratch-path .build-release]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchlib  # tools/bench, the script's own folder, is first on sys.path

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHAPES = [  # (label, M, N, K)
    ("CLIP fc1 768->3072", 100, 3072, 768),
    ("CLIP fc2 3072->768", 100, 768, 3072),
    ("CLIP proj 768->768", 100, 768, 768),
    ("UNet conv 320 @64^2", 4096, 320, 320 * 9),
    ("UNet conv 640 @32^2", 1024, 640, 640 * 9),
    ("UNet conv 1280 @16^2", 256, 1280, 1280 * 9),
    ("UNet attn proj 320", 4096, 320, 320),
    ("UNet ff 320->2560", 4096, 2560, 320),
]
SWIFT_ROUTES = ["onednn-bf16", "kernel-bf16", "engine-fp32", "onednn-fp32"]


build = benchlib.build


def steal():
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])  # 8th number of the cpu line


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def torch_rates(torch, m, n, k, repeats):
    rates = {}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(m, k, generator=gen)
    w = torch.randn(n, k, generator=gen) * 0.02
    for name, (a, b) in {"torch-bf16": (x.bfloat16(), w.bfloat16()), "torch-fp32": (x, w)}.items():
        with torch.no_grad():
            torch.matmul(a, b.t())
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                torch.matmul(a, b.t())
                best = min(best, time.perf_counter() - start)
        rates[name] = 2.0 * m * n * k / best / 1e9
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--scratch-path", default=".build-release")
    args = parser.parse_args()
    binary = (os.path.join(ROOT, args.scratch_path, "release", "sdsclip-bench") if args.no_build else build(args.scratch_path))
    import torch
    torch.set_num_threads(args.threads)
    env = dict(os.environ, SDSCLIP_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))

    print(f"load before: {loadavg()}")
    steal_before = steal()
    columns = SWIFT_ROUTES + ["torch-bf16", "torch-fp32"]
    rows = []
    for label, m, n, k in SHAPES:
        out = subprocess.run([binary, "bf16-gemm", str(m), str(n), str(k), str(args.repeats)], env=env,
                             check=True, capture_output=True, text=True)
        rates = {r["route"]: r["gflops"] for r in (json.loads(line) for line in out.stdout.splitlines() if line.startswith("{"))}
        rates.update(torch_rates(torch, m, n, k, args.repeats))
        rows.append((label, m, n, k, rates))
        print(f"  {label}: " + ", ".join(f"{c} {rates.get(c, float('nan')):.0f}" for c in columns), file=sys.stderr)
    steal_ticks = steal() - steal_before
    print(f"load after: {loadavg()}; host steal during the run: {steal_ticks} ticks (USER_HZ)")
    print(f"threads {args.threads}, best of {args.repeats}, GFLOP/s")
    print("| shape | M | N | K | " + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(columns))
    for label, m, n, k, rates in rows:
        print(f"| {label} | {m} | {n} | {k} | " + " | ".join(f"{rates.get(c, float('nan')):.0f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
