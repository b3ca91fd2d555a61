#!/usr/bin/env python3
"""Generates the weights I/O benchmark checkpoint (seeded, cached): >= 1 GiB of fp32 in ~1000 tensors
with an SD-UNet-like mix of shapes (3x3 convs, 1x1 convs, attention/feed-forward linears, norms and
biases), written both as safetensors (`safetensors.torch.save_file`) and as a torch zip (`torch.save`).

Outputs (never committed; /bench-data/ is gitignored):
  bench-data/weights-1g.safetensors
  bench-data/weights-1g.pt
  bench-data/weights-views.pt  (128 MiB of transposed fp32 views, `w.t()`, as torch saves them)
  bench-data/weights-1g.json   (tensor count, total bytes, the seed; written last, marks the cache valid)

Usage: make_bench_checkpoint.py [--out bench-data] [--force]
Re-running is a no-op when the files exist and the JSON matches this script's parameters.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

SEED = 20240917
MIN_BYTES = 1 << 30
TARGET_TENSORS = 1000


def unet_like_shapes():
    """Name -> shape, in the order a diffusers UNet's state_dict lists them (blocks at several widths)."""
    shapes = {}
    widths = [192, 384, 704, 704]  # ~1.10 GiB with the fixed 1280-wide time and 768-wide text inputs
    block = 0

    def resnet(prefix, cin, cout):
        shapes[f"{prefix}.norm1.weight"] = (cin,)
        shapes[f"{prefix}.norm1.bias"] = (cin,)
        shapes[f"{prefix}.conv1.weight"] = (cout, cin, 3, 3)
        shapes[f"{prefix}.conv1.bias"] = (cout,)
        shapes[f"{prefix}.time_emb_proj.weight"] = (cout, 1280)
        shapes[f"{prefix}.time_emb_proj.bias"] = (cout,)
        shapes[f"{prefix}.norm2.weight"] = (cout,)
        shapes[f"{prefix}.norm2.bias"] = (cout,)
        shapes[f"{prefix}.conv2.weight"] = (cout, cout, 3, 3)
        shapes[f"{prefix}.conv2.bias"] = (cout,)
        if cin != cout:
            shapes[f"{prefix}.conv_shortcut.weight"] = (cout, cin, 1, 1)
            shapes[f"{prefix}.conv_shortcut.bias"] = (cout,)

    def attention(prefix, c):
        shapes[f"{prefix}.norm.weight"] = (c,)
        shapes[f"{prefix}.norm.bias"] = (c,)
        shapes[f"{prefix}.proj_in.weight"] = (c, c, 1, 1)
        shapes[f"{prefix}.proj_in.bias"] = (c,)
        t = f"{prefix}.transformer_blocks.0"
        for attn, kv in (("attn1", c), ("attn2", 768)):
            shapes[f"{t}.{attn}.to_q.weight"] = (c, c)
            shapes[f"{t}.{attn}.to_k.weight"] = (c, kv)
            shapes[f"{t}.{attn}.to_v.weight"] = (c, kv)
            shapes[f"{t}.{attn}.to_out.0.weight"] = (c, c)
            shapes[f"{t}.{attn}.to_out.0.bias"] = (c,)
        for n in ("norm1", "norm2", "norm3"):
            shapes[f"{t}.{n}.weight"] = (c,)
            shapes[f"{t}.{n}.bias"] = (c,)
        shapes[f"{t}.ff.net.0.proj.weight"] = (8 * c, c)
        shapes[f"{t}.ff.net.0.proj.bias"] = (8 * c,)
        shapes[f"{t}.ff.net.2.weight"] = (c, 4 * c)
        shapes[f"{t}.ff.net.2.bias"] = (c,)
        shapes[f"{prefix}.proj_out.weight"] = (c, c, 1, 1)
        shapes[f"{prefix}.proj_out.bias"] = (c,)

    shapes["conv_in.weight"] = (320, 4, 3, 3)
    shapes["conv_in.bias"] = (320,)
    shapes["time_embedding.linear_1.weight"] = (1280, 320)
    shapes["time_embedding.linear_1.bias"] = (1280,)
    shapes["time_embedding.linear_2.weight"] = (1280, 1280)
    shapes["time_embedding.linear_2.bias"] = (1280,)
    # Repeat down/up stacks until the tensor count reaches the target; the widths make the size.
    previous = 320
    while len(shapes) < TARGET_TENSORS - 40:
        for level, c in enumerate(widths):
            if len(shapes) >= TARGET_TENSORS - 40:
                break
            prefix = f"blocks.{block}"
            resnet(f"{prefix}.resnets.0", previous, c)
            if level < 3:
                attention(f"{prefix}.attentions.0", c)
            previous = c
            block += 1
    shapes["conv_norm_out.weight"] = (previous,)
    shapes["conv_norm_out.bias"] = (previous,)
    shapes["conv_out.weight"] = (4, previous, 3, 3)
    shapes["conv_out.bias"] = (4,)
    return shapes


def params(shapes):
    return {"seed": SEED, "tensors": len(shapes),
            "bytes": sum(4 * torch.Size(s).numel() for s in shapes.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--out", default=os.path.join(root, "bench-data"))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    shapes = unet_like_shapes()
    want = params(shapes)
    assert want["bytes"] >= MIN_BYTES, f"only {want['bytes']} bytes; widen the mix"
    os.makedirs(args.out, exist_ok=True)
    st_path = os.path.join(args.out, "weights-1g.safetensors")
    pt_path = os.path.join(args.out, "weights-1g.pt")
    info_path = os.path.join(args.out, "weights-1g.json")
    views_path = os.path.join(args.out, "weights-views.pt")
    if args.force or not os.path.exists(views_path):
        generator = torch.Generator().manual_seed(SEED + 1)
        views = {f"proj.{i}.weight": torch.randn(1024, 2048, generator=generator).t() for i in range(16)}
        torch.save(views, views_path + ".tmp")
        os.replace(views_path + ".tmp", views_path)
    if not args.force and os.path.exists(info_path) and os.path.exists(st_path) and os.path.exists(pt_path):
        with open(info_path) as f:
            if json.load(f) == want:
                print(f"cached: {st_path}, {pt_path} ({want['tensors']} tensors, {want['bytes'] / 2**30:.2f} GiB)")
                return

    generator = torch.Generator().manual_seed(SEED)
    state = {}
    for name, shape in shapes.items():
        fan_in = max(1, torch.Size(shape[1:]).numel())
        state[name] = torch.randn(shape, generator=generator) / fan_in ** 0.5
    if os.path.exists(info_path):
        os.remove(info_path)
    save_file(state, st_path, metadata={"format": "pt"})
    torch.save(state, pt_path)
    with open(info_path, "w") as f:
        json.dump(want, f)
    print(f"wrote {st_path}, {pt_path} ({want['tensors']} tensors, {want['bytes'] / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
