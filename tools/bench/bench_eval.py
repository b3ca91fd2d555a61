#!/usr/bin/env python3
"""`sdsclip eval` throughput on a Winoground-size benchmark vs open_clip's evaluation loop, in one run.

Both sides score the same 400 Winoground-style items (800 PNG images of Winoground's typical size, 800
captions) with the same ViT-B/32 (random weights, seeded, QuickGELU as OpenAI's) from the same
open_clip folder (`open_clip_config.json` + `open_clip_model.safetensors`), end to end: read and
decode every image, CLIP-preprocess it, tokenize every caption, embed both in batches of 32, and
compute the text/image/group scores. Times include model loading on both sides (printed apart for
torch; for Swift it is the first stage of the command).

  Swift  the release `sdsclip eval MODEL winoground:DIR --resamples 1 --batch-size 32` (one process,
         SDSCLIP_THREADS=N OPENBLAS_NUM_THREADS=N), wall time of the process.
  torch  open_clip.create_model_and_transforms('local-dir:MODEL') and its tokenizer; a plain loop
         (PIL open + the preprocess transform per image, a DataLoader-free batch of 32, encode_image /
         encode_text under no_grad, normalised dot products): what open_clip's own zero-shot and
         retrieval code does; torch.set_num_threads(N).

Each run also prints the CPU steal over it (time the hypervisor gave this virtual machine's CPUs to others,
which no load average shows; on a shared host it varies from run to run). The two sides' scores are printed so their agreement is visible (they see the same pixels; small
resampling differences between Pillow's and sdsclip's preprocessing are ≤ 1 grey level).

Run (from the repository root):
    HF_HUB_OFFLINE=1 .pyref/bin/python tools/bench/bench_eval.py [--threads 2] [--items 400] [--runs 1]
        [--work /tmp/sdsclip-bench-eval] [--no-build] [--scratch-path .build-release] [--bin SDSCLIP]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import benchlib  # tools/bench, the script's own folder, is first on sys.path

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORDS = ["red", "blue", "green", "small", "large", "dog", "cat", "cup", "table", "person", "car", "tree",
         "left", "right", "above", "below", "holding", "wearing", "near", "behind"]


def cpu_ticks():
    """(steal, total) clock ticks from /proc/stat: time the hypervisor gave this VM's CPUs to others."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_since(before):
    after = cpu_ticks()
    return 100.0 * (after[0] - before[0]) / max(after[1] - before[1], 1)


def build(scratch):
    return benchlib.build(scratch, product="sdsclip")


def write_model(folder):
    """A seeded random ViT-B/32 as an open_clip local-dir folder."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    config_path = os.path.join(folder, "open_clip_config.json")
    if os.path.exists(config_path):
        return
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None, force_quick_gelu=True)
    tensors = {name: value.detach().contiguous() for name, value in model.state_dict().items()}
    save_file(tensors, os.path.join(folder, "open_clip_model.safetensors"))
    model_cfg = dict(open_clip.get_model_config("ViT-B-32"))
    model_cfg["quick_gelu"] = True
    preprocess = {"size": 224, "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
                  "interpolation": "bicubic", "resize_mode": "shortest"}
    with open(config_path + ".tmp", "w") as handle:
        json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess}, handle, indent=2)
    os.replace(config_path + ".tmp", config_path)


def write_benchmark(folder, items):
    """`items` Winoground rows over 2·items PNGs: smooth scenes that compress like photos' PNGs do."""
    from PIL import Image, ImageDraw
    examples = os.path.join(folder, "examples.jsonl")
    if os.path.exists(examples) and sum(1 for _ in open(examples)) == items:
        return
    rng = random.Random(0)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rows = []
    for item in range(items):
        for image in range(2):
            width, height = rng.choice([(640, 480), (512, 512), (800, 600), (480, 640)])
            picture = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
            draw = ImageDraw.Draw(picture)
            for _ in range(6):
                x0, y0 = rng.randrange(width), rng.randrange(height)
                box = [x0, y0, x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2)]
                (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=tuple(rng.randrange(256) for _ in range(3)))
            picture.save(os.path.join(folder, "images", f"ex_{item}_img_{image}.png"))
        words = rng.sample(WORDS, 6)
        first = f"a {words[0]} {words[1]} {words[2]} a {words[3]} {words[4]}"
        second = f"a {words[3]} {words[4]} {words[2]} a {words[0]} {words[1]}"
        rows.append({"id": item, "caption_0": first, "caption_1": second, "image_0": f"ex_{item}_img_0",
                     "image_1": f"ex_{item}_img_1", "tag": "Object", "secondary_tag": "", "num_main_preds": 1,
                     "collapsed_tag": "Object"})
    with open(examples + ".tmp", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    os.replace(examples + ".tmp", examples)


def run_swift(binary, model, benchmark, threads):
    env = dict(os.environ, SDSCLIP_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    report = os.path.join(benchmark, "swift-report.json")
    start = time.perf_counter()
    subprocess.run([binary, "eval", model, f"winoground:{benchmark}", "--resamples", "1", "--batch-size", "32",
                    "--json", report], env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with open(report) as handle:
        scores = json.load(handle)
    overall = {}
    for benchmark_result in scores["benchmarks"]:
        for score in benchmark_result["scores"]:
            if score["scope"] == "all":
                overall[score["metric"]] = score["models"][0]["correct"]
    return seconds, overall


def run_torch(model_folder, benchmark, threads):
    import torch
    torch.set_num_threads(threads)
    import open_clip
    from PIL import Image
    start = time.perf_counter()
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_folder}")
    model.eval()
    loaded = time.perf_counter()
    rows = [json.loads(line) for line in open(os.path.join(benchmark, "examples.jsonl"))]
    images = sorted({row[f"image_{k}"] for row in rows for k in range(2)})
    captions = sorted({row[f"caption_{k}"] for row in rows for k in range(2)})
    image_rows, text_rows = {}, {}
    with torch.no_grad():
        for start_index in range(0, len(images), 32):
            names = images[start_index:start_index + 32]
            batch = torch.stack([preprocess(Image.open(os.path.join(benchmark, "images", name + ".png")).convert("RGB"))
                                 for name in names])
            features = model.encode_image(batch)
            features = features / features.norm(dim=-1, keepdim=True)
            image_rows.update(zip(names, features))
        for start_index in range(0, len(captions), 32):
            texts = captions[start_index:start_index + 32]
            features = model.encode_text(tokenizer(texts))
            features = features / features.norm(dim=-1, keepdim=True)
            text_rows.update(zip(texts, features))
    correct = {"text": 0, "image": 0, "group": 0}
    for row in rows:
        s = lambda c, i: float(text_rows[row[f"caption_{c}"]] @ image_rows[row[f"image_{i}"]])
        text = s(0, 0) > s(1, 0) and s(1, 1) > s(0, 1)
        image = s(0, 0) > s(0, 1) and s(1, 1) > s(1, 0)
        correct["text"] += text
        correct["image"] += image
        correct["group"] += text and image
    return time.perf_counter() - start, loaded - start, correct


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--work", default="/tmp/sdsclip-bench-eval")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--scratch-path", default=".build-release")
    parser.add_argument("--bin", help="an sdsclip binary to run (e.g. a debug build, to check the script)")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    model, benchmark = os.path.join(args.work, "model"), os.path.join(args.work, f"winoground-{args.items}")
    write_model(model)
    write_benchmark(benchmark, args.items)
    if args.bin:
        binary = args.bin
    elif args.no_build:
        binary = os.path.join(ROOT, args.scratch_path, "release", "sdsclip")
    else:
        binary = build(args.scratch_path)
    if args.torch_only:
        seconds, load, correct = run_torch(model, benchmark, args.threads)
        print(json.dumps({"seconds": seconds, "load": load, "correct": correct}))
        return

    results = {"swift": [], "torch": []}
    for run in range(args.runs):
        subprocess.run(["sync"], check=False)
        before = cpu_ticks()
        seconds, overall = run_swift(binary, model, benchmark, args.threads)
        results["swift"].append(seconds)
        print(f"run {run + 1}: swift {seconds:.2f} s, correct {overall} (load {os.getloadavg()[0]:.1f}, "
              f"steal {steal_since(before):.0f} %)", file=sys.stderr)
        before = cpu_ticks()
        # torch in its own process, so neither side inherits the other's caches or threads.
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--torch-only", "--no-build", "--work", args.work,
                              "--items", str(args.items), "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        results["torch"].append(measured["seconds"])
        print(f"run {run + 1}: torch {measured['seconds']:.2f} s (model load {measured['load']:.2f} s), correct "
              f"{measured['correct']} (load {os.getloadavg()[0]:.1f}, steal {steal_since(before):.0f} %)", file=sys.stderr)

    swift, torch_seconds = min(results["swift"]), min(results["torch"])
    print(f"\n`eval` on {args.items} Winoground-size items (ViT-B/32, batch 32, {args.threads} threads), best of {args.runs}")
    print(f"{'side':<8}{'seconds':>10}{'items/s':>10}")
    print(f"{'swift':<8}{swift:>10.2f}{args.items / swift:>10.1f}")
    print(f"{'torch':<8}{torch_seconds:>10.2f}{args.items / torch_seconds:>10.1f}")
    print(f"ratio (torch / swift seconds): {torch_seconds / swift:.2f}x")


if __name__ == "__main__":
    main()
