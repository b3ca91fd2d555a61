#!/usr/bin/env python3
"""Reference fixtures for the engine's stride-1 convolutions from 16 input channels up (3×3: Winograd
F(2×2, 3×3) in Winograd.swift; other kernels: shifted GEMMs, Conv.swift's ShiftedConvolution): several
images, odd sizes, no bias, rectangular kernels, asymmetric padding (applied with F.pad, as the VAE does),
rows of tiles long enough for the 8-tile vector transforms; forward values and torch.autograd gradients.

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_conv_kernel_fixtures.py
Writes fixtures/tensors/conv_kernels.safetensors. Same conventions as make_tensor_fixtures.py.
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fixturelib import record_op, seeded_randn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tensors", "conv_kernels.safetensors")
gen = torch.Generator().manual_seed(320)


randn = seeded_randn(gen)


def add(tensors, name, fn, inputs):
    record_op(tensors, name, fn, inputs, randn)


def main():
    t = {}
    add(t, "c16_3x3_p1", lambda x, w, b: F.conv2d(x, w, b, padding=1),
        {"x": randn(2, 16, 9, 11), "w": randn(20, 16, 3, 3, scale=0.1), "b": randn(20)})
    # Padding (top 0, bottom 1, left 2, right 0) around a 2×3 kernel, no bias.
    add(t, "c24_rect_asym", lambda x, w: F.conv2d(F.pad(x, (2, 0, 0, 1)), w),
        {"x": randn(1, 24, 7, 10), "w": randn(8, 24, 2, 3, scale=0.1)})
    add(t, "c32_5x5_p2", lambda x, w, b: F.conv2d(x, w, b, padding=2),
        {"x": randn(1, 32, 6, 5), "w": randn(12, 32, 5, 5, scale=0.05), "b": randn(12)})
    # 3×3 (Winograd route) on an odd 6×35 output: 18 tiles per row (two 8-tile vectors and a tail whose last
    # tile has one column), padding (top 1, bottom 0, left 0, right 2).
    add(t, "c16_3x3_wide_asym", lambda x, w, b: F.conv2d(F.pad(x, (0, 2, 1, 0)), w, b),
        {"x": randn(1, 16, 7, 35), "w": randn(20, 16, 3, 3, scale=0.1), "b": randn(20)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(t, OUT + ".tmp", metadata={"generator": f"tools/make_conv_kernel_fixtures.py, torch {torch.__version__}"})
    os.replace(OUT + ".tmp", OUT)
    print(f"{OUT}: {len(t)} tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    main()
