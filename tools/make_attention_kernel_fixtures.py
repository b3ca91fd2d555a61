#!/usr/bin/env python3
"""Reference fixtures for the engine's blocked attention kernels (CTensorKernels): shapes chosen to hit
every register-block and tail path (query rows not a multiple of 6, key counts not a multiple of 16,
several key blocks, value depths 40 / 24 / 80 / 12, masks), forward values and torch.autograd gradients.

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_attention_kernel_fixtures.py
Writes fixtures/tensors/attention_kernels.safetensors. Same conventions as make_tensor_fixtures.py:
`<case>.input.<name>`, `<case>.output`, `<case>.upstream`, `<case>.grad.<name>`; inputs drawn in float32,
references computed by torch in float64 and rounded once.
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fixturelib import record_op, seeded_randn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tensors", "attention_kernels.safetensors")
gen = torch.Generator().manual_seed(4096)


randn = seeded_randn(gen)


def add(tensors, name, q, k, v, mask=None, causal=False, scale=None):
    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.double(),
                                              is_causal=causal, scale=scale)
    record_op(tensors, name, attend, {"q": q, "k": k, "v": v}, randn,
              constants=None if mask is None else {"mask": mask})


def main():
    t = {}
    # Head dim 40 (SD 1.x's first level): 2×5-vector value blocks, key blocks of 102 + 98, an 8-key ragged panel.
    add(t, "d40", randn(1, 2, 29, 40), randn(1, 2, 200, 40), randn(1, 2, 200, 40))
    # Value depth 24 ≠ key depth 64, with an additive mask broadcast over heads.
    mask = torch.where(torch.rand((2, 1, 13, 70), generator=gen) > 0.8, torch.tensor(-1e4), torch.tensor(0.0)) \
        + randn(2, 1, 13, 70, scale=0.5)
    add(t, "d64_v24_mask", randn(2, 3, 13, 64), randn(2, 3, 70, 64), randn(2, 3, 70, 24), mask=mask)
    # Depth 80 (32 + 32 + 16 value strips), causal (−∞ entries), queries scaled ×2 for peaked rows.
    add(t, "d80_causal", randn(1, 2, 23, 80, scale=2.0), randn(1, 2, 23, 80), randn(1, 2, 23, 80), causal=True)
    # Value depth 12 (not a multiple of 8: the GEMM fallback for values), 7 keys (one ragged panel only).
    add(t, "d12_short", randn(3, 1, 9, 12), randn(3, 1, 7, 12), randn(3, 1, 7, 12))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(t, OUT + ".tmp", metadata={"generator": f"tools/make_attention_kernel_fixtures.py, torch {torch.__version__}"})
    os.replace(OUT + ".tmp", OUT)
    print(f"{OUT}: {len(t)} tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    main()
