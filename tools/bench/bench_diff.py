#!/usr/bin/env python3
"""`sdsclip diff` against a Python safe_open loop computing the same report, side by side in one run.

Checkpoints: two SD1.5-size random checkpoints (diffusers UNet2DConditionModel and AutoencoderKL with SD1.5's
configs, transformers CLIPTextModel ViT-L/14; fp32, 1,1xx tensors, 4.3 GB each), seeded differently so
every value differs, written once with safetensors.torch.save_file under bench-data/ (gitignored).
Names are prefixed by component (unet., vae., text_encoder.).

What is timed (best of --repeats; the page cache is warmed by reading both files first, and both sides see
the same warm cache):
  Swift:  `sdsclip diff A B --json > /dev/null` (the release binary; mmap, 2 threads, streamed)
  Python: safe_open on both files; for every name in both: get_tensor on each side, then as float32
          max |b - a| (NaN-aware), the count of elements that differ (NaN equals NaN) and max |a|; names only
          in one side listed. torch.set_num_threads(--threads). This is the report `diff --json` prints.
The two reports must agree: same names, the same changed counts, max-abs within 1e-6 relative.
Peak RSS (VmHWM) of each side is printed too; note that it counts the file pages each side touched.
Each run prints the host's CPU steal over it: on this shared VM it moves results by up to 2x.

Ratio = Python seconds / Swift seconds (> 1: Swift is faster). Target (issue "CLI people can script
against"): >= 1.

Usage: tools/bench/bench_diff.py [--repeats N] [--threads 2] [--bin PATH/TO/sdsclip] [--data bench-data]
Without --bin it builds the release product with the scratch path .build-release.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def stat_ticks():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[7], sum(fields)


def steal_since(before):
    steal, total = stat_ticks()
    return 100.0 * (steal - before[0]) / max(total - before[1], 1)


def make_checkpoints(folder):
    """A.safetensors and B.safetensors (seeds 1 and 2), cached; returns their paths."""
    paths = [os.path.join(folder, f"sd15-random-{side}.safetensors") for side in "ab"]
    if all(os.path.exists(p) for p in paths):
        return paths
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    os.makedirs(folder, exist_ok=True)
    for seed, path in zip((1, 2), paths):
        torch.manual_seed(seed)
        state = {}
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        state.update({f"unet.{k}": v.contiguous() for k, v in unet.state_dict().items()})
        del unet
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            layers_per_block=2, sample_size=512)
        state.update({f"vae.{k}": v.contiguous() for k, v in vae.state_dict().items()})
        del vae
        text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"))
        state.update({f"text_encoder.{k}": v.contiguous() for k, v in text.state_dict().items()})
        del text
        temporary = path + ".partial"
        save_file(state, temporary)
        os.replace(temporary, path)
        print(f"wrote {path} ({os.path.getsize(path) / 2**30:.2f} GiB, {len(state)} tensors)", file=sys.stderr)
    return paths


def python_report(a, b, threads):
    import torch
    from safetensors import safe_open
    torch.set_num_threads(threads)
    report = {"onlyInA": [], "onlyInB": [], "inBoth": []}
    with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
        names_a, names_b = list(fa.keys()), set(fb.keys())
        set_a = set(names_a)
        report["onlyInA"] = [n for n in names_a if n not in names_b]
        report["onlyInB"] = sorted(n for n in names_b if n not in set_a)
        for name in names_a:
            if name not in names_b:
                continue
            ta, tb = fa.get_tensor(name), fb.get_tensor(name)
            entry = {"name": name, "shapeA": list(ta.shape), "shapeB": list(tb.shape)}
            if ta.shape == tb.shape:
                xa, xb = ta.float(), tb.float()
                both_nan = xa.isnan() & xb.isnan()
                changed = (xa != xb) & ~both_nan
                delta = (xb - xa).abs()
                entry["changedElements"] = int(changed.sum())
                entry["maxAbs"] = float(delta.nan_to_num(nan=0.0).max()) if delta.numel() else 0.0
                entry["maxAbsA"] = float(xa.abs().nan_to_num(nan=0.0).max()) if xa.numel() else 0.0
            report["inBoth"].append(entry)
    return report


def child_python(a, b, threads, out):
    start = time.perf_counter()
    report = python_report(a, b, threads)
    seconds = time.perf_counter() - start
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "report": report,
                   "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}, f)


def run_swift(binary, a, b):
    start = time.perf_counter()
    process = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "diff", a, b, "--json"],
                             capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    peak = int(process.stderr.strip().splitlines()[-1]) * 1024
    return seconds, json.loads(process.stdout), peak


def run_python(a, b, threads):
    out = os.path.join(ROOT, "bench-data", "bench-diff-python.json")
    subprocess.run([sys.executable, __file__, "--child", a, b, str(threads), out], check=True)
    with open(out) as f:
        result = json.load(f)
    os.unlink(out)
    return result["seconds"], result["report"], result["peak_rss"]


def check_agreement(swift, python):
    assert [t["name"] for t in swift["onlyInA"]] == python["onlyInA"], "only-in-A lists differ"
    assert sorted(t["name"] for t in swift["onlyInB"]) == python["onlyInB"], "only-in-B lists differ"
    by_name = {p["name"]: p for p in swift["inBoth"]}
    assert len(by_name) == len(python["inBoth"]), "in-both counts differ"
    worst = 0.0
    for entry in python["inBoth"]:
        mine = by_name[entry["name"]]
        if "changedElements" not in entry:
            assert mine["values"] is None, entry["name"]
            continue
        values = mine["values"]
        assert values["changedElements"] == entry["changedElements"], (entry["name"], values, entry)
        for key in ("maxAbs", "maxAbsA"):
            scale = max(abs(entry[key]), 1e-30)
            worst = max(worst, abs(values[key] - entry[key]) / scale)
    assert worst <= 1e-6, f"max-abs differs by {worst:.2e} relative"
    return worst


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_python(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bin")
    parser.add_argument("--data", default=os.path.join(ROOT, "bench-data"))
    args = parser.parse_args()
    binary = args.bin
    if binary is None:
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", ".build-release", "--product", "sdsclip"],
                       cwd=ROOT, check=True)
        binary = os.path.join(ROOT, ".build-release", "release", "sdsclip")
    a, b = make_checkpoints(args.data)
    for path in (a, b):   # warm the page cache for both sides alike
        with open(path, "rb") as f:
            while f.read(64 << 20):
                pass
    size = os.path.getsize(a) + os.path.getsize(b)
    print(f"checkpoints: 2 x {os.path.getsize(a) / 2**30:.2f} GiB; {args.threads} threads; load {os.getloadavg()[0]:.1f}")
    best = {"swift": None, "python": None}
    for repeat in range(args.repeats):
        for side in ("swift", "python") if repeat % 2 == 0 else ("python", "swift"):
            before = stat_ticks()
            if side == "swift":
                seconds, report, peak = run_swift(binary, a, b)
                swift_report = report
            else:
                seconds, report, peak = run_python(a, b, args.threads)
                python_report_ = report
            print(f"  {side:6s} {seconds:7.2f} s  {size / seconds / 2**30:5.2f} GiB/s  peak RSS {peak / 2**30:.2f} GiB  "
                  f"(steal {steal_since(before):.0f} %)")
            if best[side] is None or seconds < best[side][0]:
                best[side] = (seconds, peak)
    worst = check_agreement(swift_report, python_report_)
    ratio = best["python"][0] / best["swift"][0]
    print(f"reports agree (changed counts equal, max-abs within {worst:.1e} relative)")
    print(f"best: Swift {best['swift'][0]:.2f} s, Python {best['python'][0]:.2f} s, ratio {ratio:.2f}x "
          f"(target >= 1); peak RSS Swift {best['swift'][1] / 2**30:.2f} GiB, Python {best['python'][1] / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
