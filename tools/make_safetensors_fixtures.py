#!/usr/bin/env python3
"""Generates fixtures/safetensors/ with the real torch, safetensors and transformers.

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_safetensors_fixtures.py
Deterministic (seeded); re-running gives byte-identical files.

Files:
  all_dtypes.safetensors        every dtype we read, incl. 0-d, [2,0], F8 both kinds, U16/U32/U64
  all_dtypes_expected.json      per tensor: dtype, shape, exact values (ints exact, floats as the
                                exact double torch gives for .double(); "nan"/"inf"/"-inf" strings),
                                plus the header's key order
  conversions.safetensors       torch's .float() of all 65536 F16 and BF16 bit patterns and all
                                256 F8 patterns (as I32 bit patterns), and a few thousand tricky
                                F32 inputs with torch's .half() / .bfloat16() results (bit patterns)
  writer_reference.safetensors  save_file output for mixed dtypes, awkward names and metadata;
                                our writer must reproduce it byte for byte
  views.safetensors             a base tensor plus torch's contiguous results of strided views and
                                casts, for the writer's gather/cast paths
  sharded/                      transformers save_pretrained with a small max_shard_size
                                (model-0000x-of-0000y.safetensors + model.safetensors.index.json)
  sharded_full.safetensors      the same model's state dict in one file
  detect_zip.pt, detect_legacy.pt  torch.save outputs (zip and legacy) for format detection
"""
import json
import math
import os
import shutil
import struct

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "safetensors")


def exact_value(x):
    """JSON-safe exact value of one element (python scalar)."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x  # repr of a Python float round-trips exactly


def values_of(t):
    if t.dtype == torch.uint64:
        return [int(v) for v in t.flatten().view(torch.int64).numpy().view(np.uint64).tolist()]
    if t.dtype in (torch.uint16, torch.uint32):
        return [int(v) for v in t.flatten().to(torch.int64).tolist()]
    if t.dtype == torch.bool:
        return [int(v) for v in t.flatten().tolist()]
    if t.is_floating_point():
        return [exact_value(float(v)) for v in t.flatten().double().tolist()]
    return [int(v) for v in t.flatten().tolist()]


def header_order(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


def all_dtypes():
    g = torch.Generator().manual_seed(1)
    f8_codes = torch.tensor([0x00, 0x01, 0x07, 0x08, 0x38, 0x7E, 0x7F, 0x80, 0xB9, 0xFE, 0xFF, 0x7C, 0xFC, 0x7D],
                            dtype=torch.uint8)
    tensors = {
        "bool_mask": torch.tensor([True, False, True, True, False]),
        "u8.bytes": torch.tensor([[0, 1, 127], [128, 254, 255]], dtype=torch.uint8),
        "i8.bytes": torch.tensor([-128, -1, 0, 127], dtype=torch.int8),
        "u16.values": torch.tensor([0, 1, 32768, 65535], dtype=torch.uint16),
        "i16.values": torch.tensor([-32768, -1, 0, 32767], dtype=torch.int16),
        "u32.values": torch.tensor([0, 1, 2**31, 2**32 - 1], dtype=torch.uint32),
        "i32.values": torch.tensor([-2**31, -1, 0, 2**31 - 1], dtype=torch.int32),
        "u64.values": torch.from_numpy(np.array([0, 1, 2**53 + 1, 2**63, 2**64 - 1], dtype=np.uint64)),
        "i64.values": torch.tensor([-2**63, -1, 0, 2**53 + 1, 2**63 - 1], dtype=torch.int64),
        "f16.weight": torch.cat([torch.randn(6, generator=g),
                                 torch.tensor([65504.0, -0.0, 6e-8, float("inf"), float("nan")])]).half().reshape(11),
        "bf16.weight": torch.cat([torch.randn(4, generator=g) * 1e20,
                                  torch.tensor([1e-40, -float("inf")])]).bfloat16().reshape(2, 3),
        "f32.matrix": torch.randn(3, 4, generator=g),
        "f32.scalar": torch.tensor(3.25),
        "f32.empty": torch.zeros(2, 0),
        "f64.values": torch.tensor([math.pi, -1e300, 5e-324, 1.0 / 3.0], dtype=torch.float64),
        "f8e4m3.codes": f8_codes.clone().view(torch.float8_e4m3fn),
        "f8e5m2.codes": f8_codes.clone().view(torch.float8_e5m2),
        "i64.scalar": torch.tensor(-7, dtype=torch.int64),
    }
    path = os.path.join(OUT, "all_dtypes.safetensors")
    save_file(tensors, path, metadata={"format": "pt"})  # one key: the reference orders metadata by a HashMap
    expected = {
        "header_order": header_order(path),
        "metadata": {"format": "pt"},
        "tensors": {name: {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": values_of(t)}
                    for name, t in tensors.items()},
    }
    with open(os.path.join(OUT, "all_dtypes_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


def tricky_f32():
    """F32 inputs around F16/BF16 rounding boundaries, subnormals, overflow and NaN payloads."""
    g = torch.Generator().manual_seed(2)
    parts = []
    # Every F16 value's neighbours: exact midpoints and ±1 F32 ulp around them (ties go to even).
    h = torch.randint(0, 0x7C00, (400,), generator=g, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
    h_next = (h.half().view(torch.int16) + 1).view(torch.float16).float()
    mid = (h + h_next) / 2
    for delta in (-1, 0, 1):
        parts.append((mid.view(torch.int32) + delta).view(torch.float32))
    # BF16 midpoints: low 16 bits 0x8000, and ±1.
    b = torch.randint(0, 0x7F80_0000, (400,), generator=g, dtype=torch.int32) & ~0xFFFF
    for low in (0x7FFF, 0x8000, 0x8001, 0x0001, 0xFFFF):
        parts.append((b | low).view(torch.float32))
    # F16 subnormals and underflow: around 2^-24, 2^-25, 2^-14.
    edges = torch.tensor([2.0**-24, 2.0**-25, 2.0**-26, 1.5 * 2.0**-25, 2.0**-14, 2.0**-15, 65504.0, 65519.0,
                          65519.99, 65520.0, 65535.9, 65536.0, 1e10, 3.4e38, 1e-45, 0.0, -0.0, 1.0, -1.0])
    parts.append(torch.cat([edges, -edges]).float())
    parts.append(edges.float().view(torch.int32).add(1).view(torch.float32))
    parts.append(edges.float().view(torch.int32).add(-1).view(torch.float32))
    # Log-uniform magnitudes over the whole F32 range, both signs.
    mag = torch.exp(torch.empty(1200).uniform_(-100, 88, generator=g))
    sign = torch.where(torch.rand(1200, generator=g) < 0.5, -1.0, 1.0)
    parts.append(mag * sign)
    # Specials: ±inf, NaNs with payloads and signs.
    specials = torch.tensor([0x7F800000, -0x00800000, 0x7FC00000, -0x00400000, 0x7F800001, 0x7FBFFFFF,
                             0x7FC12345, -0x003EDCBB, 0x00000001, 0x007FFFFF, -0x7FFFFFFF], dtype=torch.int64)
    parts.append(specials.to(torch.int32).view(torch.float32))
    return torch.cat([p.flatten().float() for p in parts])


def conversions():
    patterns16 = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    patterns8 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    x = tricky_f32()
    tensors = {
        "f16_to_f32_bits": patterns16.view(torch.float16).float().view(torch.int32),
        "bf16_to_f32_bits": patterns16.view(torch.bfloat16).float().view(torch.int32),
        "f8e4m3_to_f32_bits": patterns8.view(torch.float8_e4m3fn).float().view(torch.int32),
        "f8e5m2_to_f32_bits": patterns8.view(torch.float8_e5m2).float().view(torch.int32),
        "f32_inputs_bits": x.view(torch.int32),
        "f32_to_f16_bits": x.half().view(torch.int16),
        "f32_to_bf16_bits": x.bfloat16().view(torch.int16),
    }
    save_file(tensors, os.path.join(OUT, "conversions.safetensors"))


def writer_reference():
    g = torch.Generator().manual_seed(3)
    tensors = {
        "z.last": torch.randn(2, 3, generator=g),
        "a.weight": torch.randn(4, generator=g),
        "B.upper": torch.randn(1, generator=g).half(),
        "emb.ü": torch.randn(2, 2, generator=g).bfloat16(),
        'quote"and\\slash\tname': torch.arange(3, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
        "bytes": torch.tensor([1, 2, 3], dtype=torch.uint8),
        "f8": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn),
        "scalar": torch.tensor(1.5, dtype=torch.float64),
        "empty": torch.zeros(0, 5),
        "i32": torch.tensor([[7]], dtype=torch.int32),
    }
    save_file(tensors, os.path.join(OUT, "writer_reference.safetensors"), metadata={"format": "pt"})


def views():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.37 - 1.1
    base64 = base.double() * 1.0000001
    tensors = {
        "base": base,
        "base64": base64,
        "transposed": base.t().contiguous(),                 # strides [1, 4]
        "column_slice": base[:, 1::2].contiguous(),          # strides [4, 2], offset 1
        "broadcast_row": base[1:2].expand(3, 4).contiguous(),  # strides [0, 1], offset 4
        "flipped_rows": base.flip(0).contiguous(),           # strides [-4, 1], offset 8
        "base_f16": base.half(),
        "base_bf16": base.bfloat16(),
        "transposed_f16": base.t().half().contiguous(),
        "base64_f32": base64.float(),
        "base_f16_to_f32": base.half().float(),
    }
    save_file(tensors, os.path.join(OUT, "views.safetensors"))


def sharded():
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(4)
    config = CLIPTextConfig(vocab_size=100, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=8, projection_dim=8,
                            bos_token_id=98, eos_token_id=99, pad_token_id=1)
    model = CLIPTextModel(config).eval()
    folder = os.path.join(OUT, "sharded")
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder, max_shard_size="12KB")
    os.remove(os.path.join(folder, "config.json"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, "sharded_full.safetensors"), metadata={"format": "pt"})


def detection():
    """Real torch files for content-based format detection."""
    state = {"w": torch.arange(4, dtype=torch.float32)}
    torch.save(state, os.path.join(OUT, "detect_zip.pt"))
    torch.save(state, os.path.join(OUT, "detect_legacy.pt"), _use_new_zipfile_serialization=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    detection()
    all_dtypes()
    conversions()
    writer_reference()
    views()
    sharded()
    for root, _, files in os.walk(OUT):
        for name in sorted(files):
            path = os.path.join(root, name)
            assert os.path.getsize(path) < 2_000_000, path
            print(f"{os.path.getsize(path):9d}  {os.path.relpath(path, OUT)}")


if __name__ == "__main__":
    main()
