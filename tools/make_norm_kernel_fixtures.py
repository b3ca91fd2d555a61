#!/usr/bin/env python3
"""Reference fixtures for the engine's normalisation kernels (CTensorKernels blocked sums and affine
normalisation, AVX2 when available): groups longer than one 1024-element summation block with a ragged
tail, a non-zero mean (the two-pass statistics must not lose it), and a LayerNorm row width that is not
a multiple of 8; forward values and torch.autograd gradients.

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_norm_kernel_fixtures.py
Writes fixtures/tensors/norm_kernels.safetensors. Same conventions as make_tensor_fixtures.py.
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fixturelib import record_op, seeded_randn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tensors", "norm_kernels.safetensors")
gen = torch.Generator().manual_seed(32)


randn = seeded_randn(gen)


def add(tensors, name, fn, inputs):
    record_op(tensors, name, fn, inputs, randn)


def main():
    t = {}
    # 4 groups of 8 channels × 400 pixels = 3200 elements: three full summation blocks and a 128 tail.
    add(t, "group_norm_long", lambda x, w, b: F.group_norm(x, 4, w, b, eps=1e-5),
        {"x": randn(1, 32, 20, 20, scale=2.0, offset=3.0), "w": randn(32), "b": randn(32)})
    add(t, "layer_norm_771", lambda x, w, b: F.layer_norm(x, (771,), w, b, eps=1e-5),
        {"x": randn(3, 771, scale=0.5, offset=-1.5), "w": randn(771), "b": randn(771)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(t, OUT + ".tmp", metadata={"generator": f"tools/make_norm_kernel_fixtures.py, torch {torch.__version__}"})
    os.replace(OUT + ".tmp", OUT)
    print(f"{OUT}: {len(t)} tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    main()
