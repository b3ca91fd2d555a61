#!/usr/bin/env python3
"""Tensor engine, Swift (sdsclip-bench) vs PyTorch CPU, in one run at one thread count.

Cases (the "Tensor engine" issue's), the same shapes and work on both sides:
  linear      F.linear 768->3072 with bias on [8, 50, 768], forward (no grad)
  attention   F.scaled_dot_product_attention on q, k, v [1, 8, 4096, 40], forward (no grad)
  conv3x3     F.conv2d 320->320, 3x3, padding 1, bias, on [1, 320, 64, 64], forward (no grad)
  groupnorm   F.group_norm, 32 groups, affine, on [1, 320, 64, 64], forward (no grad)
  vit-stack   12-layer ViT-B/32 encoder stack (transformers CLIPEncoder: width 768, 12 heads, MLP 3072,
              QuickGELU, pre-LN) on [8, 50, 768]: forward + backward of a fixed random output gradient,
              gradients for every parameter and the input (grads reset to None before each run)
and the reference GEMM rate: `sdsclip-bench sgemm-rate M N K` times cblas_sgemm with OpenBLAS single-threaded,
with OpenBLAS's own N threads, and through the engine's blocked split on N workers. The best of those is
"the measured OpenBLAS sgemm rate"; GEMM efficiency = the case's GFLOP/s / that rate. conv3x3 runs as
Winograd F(2x2, 3x3), so its GFLOP/s (direct-convolution FLOPs / time) is an effective rate, marked *.

Threads: torch.set_num_threads(N) here and SDSCLIP_THREADS=N for Swift (default N = 2, all cores here).
Each figure is the best wall time of R runs after one warm-up; the CPU seconds of that run (all threads)
are shown too, since on a shared machine they are the steadier number. The load average is printed before
and after; compare runs only at similar load.

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_tensors.py [--threads 2] [--repeats 10]
        [--no-build] [--scratch-path .build-release-h11] [--cases linear,attention] [--gemm 1024,1024,1024]

Prints one table: case, Swift ms, torch ms, ratio (torch time / Swift time; >= 1 means Swift is at least as
fast), Swift GFLOP/s and GEMM efficiency for the GEMM-bound cases.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchlib  # tools/bench, the script's own folder, is first on sys.path

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CASES = ["linear", "attention", "conv3x3", "groupnorm", "vit-stack"]
GEMM_BOUND = {"linear", "conv3x3", "vit-stack"}
# conv3x3 runs as Winograd F(2x2, 3x3) (2.25x fewer multiply-adds than the direct convolution); its GFLOP/s
# and efficiency count the direct convolution's 2*O*C*9*H*W FLOPs, i.e. they are effective rates.
EFFECTIVE_RATE = {"conv3x3"}
# Fewer repeats for the long cases (seconds per run), more for the sub-millisecond ones (noise).
REPEATS_SCALE = {"linear": 5, "groupnorm": 20, "attention": 0.5, "vit-stack": 0.3}


build = benchlib.build


def run_swift(binary, arguments, threads):
    env = dict(os.environ, SDSCLIP_THREADS=str(threads))
    out = subprocess.run([binary] + [str(a) for a in arguments], env=env, check=True, capture_output=True, text=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"sdsclip-bench {arguments[0]} printed no measurement:\n{out.stdout}\n{out.stderr}")
    return lines


def measure(body, repeats):
    """Best wall seconds of `repeats` runs after one warm-up, and the process CPU seconds of that run."""
    body()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        body()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best[0]:
            best = (wall, cpu)
    return best


def torch_case(name, repeats):
    import torch
    import torch.nn.functional as F
    g = torch.Generator().manual_seed(0)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    if name == "vit-stack":
        from transformers import CLIPVisionConfig
        from transformers.models.clip.modeling_clip import CLIPEncoder
        config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                  num_attention_heads=12, hidden_act="quick_gelu", layer_norm_eps=1e-5)
        config._attn_implementation = "sdpa"
        encoder = CLIPEncoder(config).train()
        x = randn(8, 50, 768).requires_grad_(True)
        grad = randn(8, 50, 768)

        def body():
            encoder.zero_grad(set_to_none=True)
            x.grad = None
            out = encoder(inputs_embeds=x)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            hidden.backward(grad)
        return measure(body, repeats)

    if name == "linear":
        x, w, b = randn(8, 50, 768), randn(3072, 768, scale=0.02), randn(3072)
        body = lambda: F.linear(x, w, b)  # noqa: E731
    elif name == "attention":
        q, k, v = randn(1, 8, 4096, 40), randn(1, 8, 4096, 40), randn(1, 8, 4096, 40)
        body = lambda: F.scaled_dot_product_attention(q, k, v)  # noqa: E731
    elif name == "conv3x3":
        x, w, b = randn(1, 320, 64, 64), randn(320, 320, 3, 3, scale=0.02), randn(320)
        body = lambda: F.conv2d(x, w, b, padding=1)  # noqa: E731
    elif name == "groupnorm":
        x, w, b = randn(1, 320, 64, 64), randn(320), randn(320)
        body = lambda: F.group_norm(x, 32, w, b, 1e-5)  # noqa: E731
    else:
        raise ValueError(name)
    with torch.inference_mode():
        return measure(body, repeats)


def torch_sgemm(m, n, k, repeats):
    import torch
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    with torch.inference_mode():
        wall, _ = measure(lambda: torch.mm(a, b, out=out), repeats)
    return 2.0 * m * n * k / wall / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scratch-path", default=os.path.join(ROOT, ".build-release-h11"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release binary")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--gemm", default="1024,1024,1024", help="M,N,K of the reference sgemm rate")
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    binary = os.path.join(args.scratch_path, "release", "sdsclip-bench") if args.no_build else build(args.scratch_path)
    load_before = os.getloadavg()

    m, n, k = (int(v) for v in args.gemm.split(","))
    sgemm = run_swift(binary, ["sgemm-rate", m, n, k, 3 * args.repeats], args.threads)
    rates = {(row["route"], row["threads"]): row["gflops"] for row in sgemm}
    # The best route at N threads; never below the 1-thread rate (on a loaded machine the N-thread runs can
    # come out slower than one thread, which would make every efficiency look better than it is).
    reference = max(rates.values())
    torch_mm = torch_sgemm(m, n, k, args.repeats)

    rows = []
    for name in args.cases.split(","):
        repeats = max(2, round(args.repeats * REPEATS_SCALE.get(name, 1)))
        swift = run_swift(binary, [name, repeats], args.threads)[-1]
        torch_wall, torch_cpu = torch_case(name, repeats)
        rows.append((name, swift, torch_wall, torch_cpu))
        print(f"{name}: swift {swift['seconds'] * 1e3:.2f} ms, torch {torch_wall * 1e3:.2f} ms", file=sys.stderr)
    load_after = os.getloadavg()

    print(f"\nTensor engine, {args.threads} thread(s), best of --repeats {args.repeats} "
          f"(torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()})")
    print(f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min), {os.cpu_count()} cores")
    print(f"sgemm {m}x{n}x{k} GFLOP/s: " + ", ".join(
        f"{route} {threads}t {rate:.1f}" for (route, threads), rate in sorted(rates.items()))
        + f"; torch.mm {args.threads}t {torch_mm:.1f}; reference = {reference:.1f}")
    header = (f"{'case':<11} {'swift ms':>9} {'torch ms':>9} {'ratio':>6} {'swift cpu ms':>12} {'torch cpu ms':>12} "
              f"{'cpu ratio':>9} {'GFLOP/s':>8} {'GEMM eff':>8}")
    print(header)
    for name, swift, torch_wall, torch_cpu in rows:
        gflops = swift.get("gflops")
        marker = "*" if name in EFFECTIVE_RATE else "%"
        efficiency = f"{gflops / reference * 100:>7.0f}{marker}" if name in GEMM_BOUND and gflops else f"{'-':>8}"
        print(f"{name:<11} {swift['seconds'] * 1e3:>9.2f} {torch_wall * 1e3:>9.2f} {torch_wall / swift['seconds']:>6.2f} "
              f"{swift['cpu_seconds'] * 1e3:>12.1f} {torch_cpu * 1e3:>12.1f} {torch_cpu / swift['cpu_seconds']:>9.2f} "
              f"{gflops if gflops else 0:>8.1f} {efficiency}")
    print("ratio = torch / Swift wall time (>= 1: Swift at least as fast); cpu ratio the same for process CPU time;"
          " GEMM eff = Swift GFLOP/s / reference sgemm rate (* = effective: direct-convolution FLOPs over a Winograd run)")


if __name__ == "__main__":
    main()
