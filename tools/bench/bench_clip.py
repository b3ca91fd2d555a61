#!/usr/bin/env python3
"""CLIP throughput, Swift (sdsclip-bench clip-image / clip-text) vs open_clip on PyTorch CPU, in one run.

Both sides: ViT-B/32 and ViT-B/16 at real size with random weights and QuickGELU (OpenAI's models), eval /
no-grad, the same batch, the same thread count set explicitly (torch.set_num_threads(N); SDSCLIP_THREADS=N and
OPENBLAS_NUM_THREADS=N for Swift), best of R timed runs after one warm-up. Image inputs are [B, 3, 224, 224]
random pixels; text inputs are B rows of 77 token ids with 7-26 real tokens. open_clip's encode_text always runs
all 77 positions. Swift's clip-text is its embedding path, which stops at the last end token (exact: attention
is causal); clip-text-states runs all 77 positions (what SD conditioning needs), the same work as torch's.

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_clip.py [--threads 2] [--repeats 5] [--no-build]
        [--scratch-path .build-release] [--cases clip-image:b32:1,clip-text:b32:8]

Prints one table: case, Swift throughput, torch throughput, ratio (Swift/torch; > 1 means Swift is faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import benchlib  # tools/bench, the script's own folder, is first on sys.path

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_CASES = ["clip-image:b32:1", "clip-image:b32:8", "clip-image:b16:1", "clip-image:b16:8",
                 "clip-text:b32:1", "clip-text:b32:8", "clip-text-states:b32:1", "clip-text-states:b32:8"]
OPEN_CLIP_NAMES = {"b32": "ViT-B-32", "b16": "ViT-B-16"}


build = benchlib.build


def run_swift(binary, kind, model, batch, repeats, threads):
    env = dict(os.environ, SDSCLIP_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([binary, kind, model, str(batch), str(repeats)], env=env, check=True,
                         capture_output=True, text=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"sdsclip-bench {kind} printed no measurement:\n{out.stdout}\n{out.stderr}")
    return lines[-1]


def token_rows(batch, context=77):
    """The same rows sdsclip-bench uses (ModelBench.tokenRows)."""
    rows = []
    for row in range(batch):
        words = 5 + (row * 7) % 20
        ids = [49406] + [400 + (i * 131 + row * 17) % 40000 for i in range(words)] + [49407]
        rows.append(ids + [0] * (context - len(ids)))
    return rows


class TorchCLIP:
    """open_clip models, built once per size."""

    def __init__(self):
        self.models = {}

    def model(self, name):
        import open_clip
        if name not in self.models:
            model = open_clip.create_model(OPEN_CLIP_NAMES[name], pretrained=None, force_quick_gelu=True)
            self.models[name] = model.eval()
        return self.models[name]

    def run(self, kind, name, batch, repeats):
        import torch
        model = self.model(name)
        torch.manual_seed(0)
        if kind == "clip-image":
            size = model.visual.image_size[0] if isinstance(model.visual.image_size, tuple) else model.visual.image_size
            inputs = torch.randn(batch, 3, size, size)
            body = lambda: model.encode_image(inputs)  # noqa: E731
        else:
            inputs = torch.tensor(token_rows(batch), dtype=torch.int64)
            body = lambda: model.encode_text(inputs)  # noqa: E731
        with torch.inference_mode():
            body()
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                body()
                best = min(best, time.perf_counter() - start)
        return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scratch-path", default=os.path.join(ROOT, ".build-release"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release binary")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated KIND:MODEL:BATCH")
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    if args.no_build:
        binary = os.path.join(args.scratch_path, "release", "sdsclip-bench")
    else:
        binary = build(args.scratch_path)
    torch_side = TorchCLIP()
    rows = []
    for case in args.cases.split(","):
        kind, model, batch = case.split(":")
        batch = int(batch)
        swift = run_swift(binary, kind, model, batch, args.repeats, args.threads)
        swift_rate = batch / swift["seconds"]
        torch_rate = batch / torch_side.run(kind, model, batch, args.repeats)
        unit = swift["unit"]
        rows.append((f"{kind} {model} batch {batch}", swift_rate, torch_rate, unit))
        print(f"{rows[-1][0]}: swift {swift_rate:.2f} {unit}, torch {torch_rate:.2f} {unit}", file=sys.stderr)

    print(f"\nCLIP throughput, {args.threads} thread(s), best of {args.repeats} (torch {torch.__version__})")
    print(f"{'case':<26} {'swift':>12} {'torch':>12} {'ratio':>7}")
    for name, swift_rate, torch_rate, unit in rows:
        print(f"{name:<26} {swift_rate:>8.2f}/s   {torch_rate:>8.2f}/s  {swift_rate / torch_rate:>6.2f}x")
    print("(throughput in images/s or texts/s; ratio = Swift / torch, > 1 means Swift is faster)")


if __name__ == "__main__":
    main()
