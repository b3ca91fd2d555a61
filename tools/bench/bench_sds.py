#!/usr/bin/env python3
"""One SDS-CLIP training step at real sizes, Swift (sdsclip-bench sds-step) vs a torch reference, in one run.

Both sides, random weights, float32, eval mode (no dropout anywhere):
  CLIP      ViT-B/32, 224² images, 77 text positions, QuickGELU. Swift: the known-model table (CLIPModel from
            RandomParameterSource); torch: transformers CLIPModel(CLIPConfig()) (its defaults are ViT-B/32), SDPA.
            LayerNorm scales 1, biases 0 on both sides (realistic: what trained CLIP LayerNorms start from).
  trainable every LayerNorm of both towers + the pooled latent map h_w = Linear(512 -> 4·S·S); all else frozen.
  teacher   SD1.5-size UNet, frozen. Swift: UNetConfiguration.sd1; torch: diffusers
            UNet2DConditionModel(sample_size=S, cross_attention_dim=768). Conditioning: random [B, 77, 768]
            states, precomputed (as the trainer caches the text encoder's output).
  the step  zero grads; L_CLIP (symmetric InfoNCE, temperature clamped at 100) + λ·L_SDS (λ 0.5); backward; AdamW
            step (lr 1e-5 CLIP / 1e-4 h_w, weight decay 0.1 on h_w's matrix, betas 0.9/0.98, eps 1e-6), as
            SDSStep + OptimizerSettings compute it. The UNet runs in micro-batches of 1 on both sides: each
            sample's ∂L_SDS/∂z0 is computed on a detached copy of its z0 (`full`: backward through the frozen
            UNet to that copy; `sds`: DreamFusion's w(t)·(ε̂ − ε)·2/N with the UNet under no_grad), then one
            backward of L_CLIP + λ·Σ z0·∂L_SDS/∂z0 through h_w and CLIP. Timesteps are fixed, spread over the
            schedule; the work does not depend on them.
  batches   B = 1 and B = 4, as the fine-tune issue asks (at B = 1 the InfoNCE over one pair is exactly 0 on both
            sides, so the step is L_SDS's; `finetune` itself asks for B >= 2).

Inputs: random pixels, token rows with 7-26 real tokens (SOT ... EOT, zero padding). The text tower is <1% of
the step; transformers runs all 77 positions, Swift stops at the last end token (exact: attention is causal).

Every measurement runs in its own process (Swift: the sdsclip-bench release binary; torch: this script with
--torch-case), so each peak RSS (VmHWM at the end) is one case on one side, weights included. The same thread
count on both sides (default 2): SDSCLIP_THREADS=N OPENBLAS_NUM_THREADS=N for Swift, torch.set_num_threads(N)
and OMP_NUM_THREADS=N for torch. Each figure is the best of R timed steps after one warm-up step; with --runs K
every case is measured K times per side (alternating sides) and the table shows the best and the spread.
The load average is printed before and after, and each run's CPU steal (time the hypervisor gave this
virtual machine's CPUs to others: a shared host slows a run without any local load); each run's log line also gives the process CPU seconds of the
timed step (about threads × wall when the cores were free; torch's OpenMP workers spin, so its CPU time
includes waiting).

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_sds.py [--threads 2] [--repeats 2] [--runs 1]
        [--no-build] [--scratch-path .build-release] [--cases full:1,full:4,sds:1,sds:4] [--latent 64]
        [--sides swift,torch[,torch-fp32]] [--precision fp32|bf16|auto]

--precision bf16 runs sdsclip-bench with bf16 compute (sdsclip's --precision) and torch under CPU autocast
bf16 (every forward in `torch.autocast("cpu", dtype=torch.bfloat16)`, backward outside it); the side
torch-fp32 adds torch in float32 as a second reference column.

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
CASES = ["full:1", "full:4", "sds:1", "sds:4"]
GIB = float(1 << 30)
LAMBDA = 0.5
SOT, EOT = 49406, 49407


def cpu_ticks():
    """(steal, total) clock ticks of all CPUs from /proc/stat: steal is time the hypervisor gave this
    machine's virtual CPUs to someone else, which no load average shows."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


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


def run_swift(binary, gradient, batch, side, repeats, threads, precision):
    env = dict(os.environ, SDSCLIP_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [binary, "sds-step", gradient, str(batch), str(repeats), str(side), "1", precision]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"sdsclip-bench sds-step failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, "sdsclip-bench sds-step")


def run_torch(gradient, batch, side, repeats, threads, precision):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-case", f"{gradient}:{batch}", "--latent", str(side),
           "--repeats", str(repeats), "--threads", str(threads), "--precision", precision]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"torch {gradient}:{batch} failed ({out.returncode}):\n{out.stderr}")
    return last_json(out.stdout, out.stderr, f"torch {gradient}:{batch}")


def token_rows(batch, context):
    """sdsclip-bench's ModelBench.tokenRows: SOT, 5-24 words, EOT, zero padding."""
    rows = []
    for row in range(batch):
        words = 5 + (row * 7) % 20
        ids = [SOT] + [400 + (i * 131 + row * 17) % 40000 for i in range(words)] + [EOT]
        rows.append(ids + [0] * (context - len(ids)))
    return rows


def timesteps(batch):
    """sdsclip-bench's SDSBench.timesteps."""
    return [980 - (960 * i) // max(batch - 1, 1) for i in range(batch)]


def torch_case(gradient, batch, side, repeats, threads, precision, micro=1):
    """Child process: one torch measurement of the step, printed as a JSON line. precision bf16: every
    forward under CPU autocast (bf16 matrix products and convolutions, float32 weights and gradients)."""
    import contextlib
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DConditionModel
    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    clip = CLIPModel(CLIPConfig()).eval()  # transformers' defaults: ViT-B/32, QuickGELU, projection 512
    clip.requires_grad_(False)
    norms = [p for m in clip.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()]
    for p in norms:
        p.requires_grad_(True)
    latent_map = torch.nn.Linear(clip.config.projection_dim, 4 * side * side)  # pooled h_w, trainable
    # diffusers' defaults are the SD1.5 UNet except the text width (default 1280; SD1.5's is 768).
    unet = UNet2DConditionModel(sample_size=side, cross_attention_dim=768).eval().requires_grad_(False)
    # SD's training schedule: scaled_linear betas 0.00085…0.012 over 1000 steps (diffusers' DDPMScheduler).
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)

    # OptimizerSettings' groups: decay on matrices only (the LayerNorms and biases have none).
    groups = [dict(params=[p for p in norms if p.ndim >= 2], lr=1e-5, weight_decay=0.1),
              dict(params=[p for p in norms if p.ndim < 2], lr=1e-5, weight_decay=0.0),
              dict(params=[latent_map.weight], lr=1e-4, weight_decay=0.1),
              dict(params=[latent_map.bias], lr=1e-4, weight_decay=0.0)]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], betas=(0.9, 0.98), eps=1e-6)

    size = clip.config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size)
    ids = torch.tensor(token_rows(batch, clip.config.text_config.max_position_embeddings))
    context = torch.randn(batch, 77, 768)
    noise = torch.randn(batch, 4, side, side)
    t = torch.tensor(timesteps(batch))
    a = alphas_cumprod[t].view(batch, 1, 1, 1)
    labels = torch.arange(batch)
    losses = {}

    def autocast():
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        optimizer.zero_grad(set_to_none=True)
        forward_clip_and_sds()
        latent_gradient = torch.cat(state["gradients"])
        (state["loss_clip"] + LAMBDA * (state["z0"] * latent_gradient).sum()).backward()
        optimizer.step()
        losses.update(loss_clip=state["loss_clip"].item(), loss_sds=state["loss_sds"])

    state = {}

    def forward_clip_and_sds():
        with autocast():
            vision = clip.vision_model(pixel_values=pixels)
            image = clip.visual_projection(vision.pooler_output)
            text = clip.text_projection(clip.text_model(input_ids=ids).pooler_output)
            scale = clip.logit_scale.exp().clamp(max=100)
            logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
            loss_clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            z0 = latent_map(image).view(batch, 4, side, side)

        # ∂L_SDS/∂z0 per micro-batch, on a detached z0 (SDSStep.sdsGradient); epsilon prediction: target = ε.
        total = z0.numel()
        detached = z0.detach()
        gradients, loss_sds = [], 0.0
        for start in range(0, batch, micro):
            part = slice(start, min(start + micro, batch))
            ap, eps, share = a[part], noise[part], detached[part].numel() / total
            if gradient == "full":
                leaf = detached[part].clone().requires_grad_(True)
                with autocast():
                    prediction = unet(ap.sqrt() * leaf + (1 - ap).sqrt() * eps, t[part], encoder_hidden_states=context[part]).sample
                    loss = F.mse_loss(prediction, eps)
                loss_sds += loss.item() * share
                (loss * share).backward()
                gradients.append(leaf.grad.float())
            else:
                with torch.no_grad(), autocast():
                    prediction = unet(ap.sqrt() * detached[part] + (1 - ap).sqrt() * eps, t[part],
                                      encoder_hidden_states=context[part]).sample
                    difference = prediction.float() - eps
                    loss_sds += (difference * difference).mean().item() * share
                    gradients.append(((1 - ap) * 2 / total * difference).float())
        state.update(loss_clip=loss_clip.float(), loss_sds=loss_sds, z0=z0.float(), gradients=gradients)

    step()  # warm-up
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if wall < best:
            best, best_cpu = wall, cpu
    print(json.dumps({"case": "sds-step", "gradient": gradient, "batch": batch, "latent": [batch, 4, side, side],
                      "seconds": best, "cpu_seconds": best_cpu, "repeats": repeats, **losses,
                      "checksum": latent_map.weight.grad.abs().sum().item(),
                      "trainable": sum(p.numel() for g in groups for p in g["params"]),
                      "peak_rss_bytes": peak_rss_bytes(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "precision": precision}), flush=True)


def parse_case(text):
    gradient, _, batch = text.partition(":")
    if gradient not in ("full", "sds") or not batch.isdigit() or int(batch) < 1:
        raise ValueError(f"case '{text}': expected full:B or sds:B with B >= 1")
    return gradient, int(batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per process (best is kept)")
    parser.add_argument("--runs", type=int, default=1, help="processes per case and side (best and spread shown)")
    parser.add_argument("--latent", type=int, default=64, help="latent side S")
    parser.add_argument("--scratch-path", default=os.path.join(ROOT, ".build-release"))
    parser.add_argument("--no-build", action="store_true", help="use the existing release binary")
    parser.add_argument("--cases", default=",".join(CASES), help="GRADIENT:BATCH,… (full|sds, B >= 1)")
    parser.add_argument("--sides", default="swift,torch", help="which sides to run: swift, torch (both at --precision), "
                        "torch-fp32 (torch in float32, the reference when --precision is bf16)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                        help="Swift: sdsclip's --precision; torch: bf16 = CPU autocast bf16 (auto = bf16 on torch)")
    parser.add_argument("--torch-case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.torch_case:
        gradient, batch = parse_case(args.torch_case)
        torch_case(gradient, batch, args.latent, args.repeats, args.threads, "bf16" if args.precision == "auto" else args.precision)
        return

    try:
        cases = [parse_case(c) for c in args.cases.split(",")]
    except ValueError as error:
        parser.error(str(error))
    sides = args.sides.split(",")
    if not set(sides) <= {"swift", "torch", "torch-fp32"}:
        parser.error("--sides takes swift, torch and/or torch-fp32")
    binary = None
    if "swift" in sides:
        binary = os.path.join(args.scratch_path, "release", "sdsclip-bench") if args.no_build else build(args.scratch_path)

    load_before = os.getloadavg()
    results = {}  # (case, side) -> [measurement, …]
    for run in range(args.runs):
        for gradient, batch in cases:
            for side in sides:
                steal_before = cpu_ticks()
                if side == "swift":
                    m = run_swift(binary, gradient, batch, args.latent, args.repeats, args.threads, args.precision)
                elif side == "torch":
                    m = run_torch(gradient, batch, args.latent, args.repeats, args.threads, args.precision)
                else:
                    m = run_torch(gradient, batch, args.latent, args.repeats, args.threads, "fp32")
                steal_after = cpu_ticks()
                steal = 100.0 * (steal_after[0] - steal_before[0]) / max(steal_after[1] - steal_before[1], 1)
                results.setdefault((gradient, batch, side), []).append(m)
                print(f"run {run + 1}: {gradient}:{batch} {side} {m['seconds']:.2f} s (CPU {m['cpu_seconds']:.1f} s), "
                      f"{m['peak_rss_bytes'] / GIB:.2f} GiB, L_CLIP {m['loss_clip']:.4f} L_SDS {m['loss_sds']:.4f} "
                      f"(load {os.getloadavg()[0]:.1f}, steal {steal:.0f} %)", file=sys.stderr)
    load_after = os.getloadavg()

    torch_version = next((m[0].get("torch") for k, m in results.items() if k[2] == "torch"), "?")
    print(f"\nSDS-CLIP step (CLIP ViT-B/32 + SD1.5 UNet teacher, latent {args.latent}², random weights, UNet "
          f"micro-batch 1), {args.threads} thread(s) each side, best of {args.repeats} after a warm-up, "
          f"{args.runs} run(s) per side (torch {torch_version})")
    print(f"load average (1/5/15 min): before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} cores")

    def cell(gradient, batch, side):
        ms = results.get((gradient, batch, side))
        if not ms:
            return None, "–", "–"
        seconds = [m["seconds"] for m in ms]
        spread = f" ({min(seconds):.2f}–{max(seconds):.2f})" if len(ms) > 1 else ""
        return min(seconds), f"{min(seconds):.2f}{spread}", f"{max(m['peak_rss_bytes'] for m in ms) / GIB:.2f}"

    reference = "torch-fp32" in sides
    header = f"{'case':<10} {'swift s':>18} {'torch s':>18} {'ratio':>7} {'swift GiB':>10} {'torch GiB':>10}"
    if reference:
        header += f" {'torch fp32 s':>18} {'ratio':>7} {'fp32 GiB':>9}"
    print(f"Swift and torch at --precision {args.precision}" + (" (torch bf16 = CPU autocast)" if args.precision != "fp32" else ""))
    print(header)
    for gradient, batch in cases:
        sw, sw_text, sw_gib = cell(gradient, batch, "swift")
        th, th_text, th_gib = cell(gradient, batch, "torch")
        ratio = f"{th / sw:.2f}x" if sw and th else "–"
        line = f"{gradient + ' B=' + str(batch):<10} {sw_text:>18} {th_text:>18} {ratio:>7} {sw_gib:>10} {th_gib:>10}"
        if reference:
            fp, fp_text, fp_gib = cell(gradient, batch, "torch-fp32")
            line += f" {fp_text:>18} {(f'{fp / sw:.2f}x' if sw and fp else '–'):>7} {fp_gib:>9}"
        print(line)
    print("(ratio = best torch seconds / best Swift seconds, >= 1 means Swift is at least as fast; seconds in "
          "parentheses: the spread over runs; GiB = the largest peak RSS of the process, weights included)")


if __name__ == "__main__":
    main()
