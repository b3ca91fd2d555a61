#!/usr/bin/env python3
"""Fixtures for StridedGather's tiled path: torch views whose rows are strided and whose columns are
packed in the storage (transposes, permutes), big enough to span two bands of rows (256 bytes of rows per band) plus a ragged rest,
in every element size. Written with torch.save; the expected packed tensors (`.contiguous()`) with
safetensors' save_file.

Outputs: fixtures/gather/transposed_views.pt, fixtures/gather/transposed_views.expected.safetensors
"""
import os

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "gather")


def main():
    g = torch.Generator().manual_seed(7)
    f32 = torch.randn(37, 150, generator=g)
    f16 = torch.randn(45, 300, generator=g).half()
    u8 = torch.randint(0, 256, (21, 600), generator=g, dtype=torch.uint8)
    i64 = torch.randint(-2**40, 2**40, (19, 70), generator=g, dtype=torch.int64)
    conv = torch.randn(24, 18, 3, 3, generator=g)
    batch = torch.randn(3, 40, 150, generator=g)
    state = {
        "f32_t": f32.t(),                          # [150, 37], strides (1, 150): 4-byte bands of 64 rows
        "f16_t": f16.t(),                          # 2-byte bands of 128 rows
        "u8_t": u8.t(),                            # 1-byte bands of 256 rows
        "i64_t": i64.t(),                          # 8-byte bands of 32 rows
        "f32_t_slice": f32.t()[5:140, 3:30],       # offset start, row stride 1, column stride 150
        "batch_t": batch.transpose(1, 2),          # [3, 150, 40]: bands must not cross the batch axis
        "conv_perm": conv.permute(2, 3, 1, 0),     # [3, 3, 18, 24]: columns strided, rows packed
        "f32": f32,                                # packed, for contrast
    }
    os.makedirs(OUT, exist_ok=True)
    torch.save(state, os.path.join(OUT, "transposed_views.pt"))
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(OUT, "transposed_views.expected.safetensors"))
    for k, v in state.items():
        print(k, tuple(v.shape), v.stride(), v.dtype)


if __name__ == "__main__":
    main()
