#!/usr/bin/env python3
"""Writes the torch checkpoint fixtures for Tests/WeightsIOTests/Torch*.swift.

Run with the reference venv:  HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_torch_fixtures.py
Every checkpoint X.pt comes with
  X.expected.safetensors  every tensor the Swift reader must produce, made contiguous (byte-exact reference)
  X.expected.json         per tensor: torch dtype, shape, stride and storage offset as torch reports them
"""
import io
import json
import os
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "torch")
torch.manual_seed(20240611)


def write_expected(stem, tensors):
    """tensors: name -> tensor as the reader should report it (strides and offsets kept)."""
    meta = {}
    for name, t in tensors.items():
        meta[name] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "stride": list(t.stride()),
            "offset": t.storage_offset(),
        }
    with open(os.path.join(OUT, stem + ".expected.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    # safetensors refuses shared or strided memory: give it packed copies.
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()},
              os.path.join(OUT, stem + ".expected.safetensors"))


def every_dtype_state():
    base = torch.randn(3, 4)
    sd = {
        "f64": torch.randn(2, 3, dtype=torch.float64),
        "f32": torch.randn(5),
        "f16": torch.randn(2, 2).half(),
        "bf16": torch.randn(3).bfloat16(),
        "i64": torch.tensor([1, -2, 2**40, -(2**62)], dtype=torch.int64),
        "i32": torch.tensor([7, -8, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(2, dtype=torch.complex64),
        # v3 dtypes: untyped storage + explicit dtype
        "f8e4m3": torch.randn(4).to(torch.float8_e4m3fn),
        "f8e5m2": torch.randn(3).to(torch.float8_e5m2),
        "u16": torch.tensor([1, 65535, 300], dtype=torch.uint16),
        "u32": torch.tensor([1, 2**32 - 1], dtype=torch.uint32),
        "u64": torch.tensor([3, 2**63 + 5], dtype=torch.uint64),
        # views sharing one storage
        "base": base,
        "base_row1": base[1],
        "base_t": base.t(),
        "base_col2": base[:, 2],
        "expanded": torch.randn(3, 1).expand(3, 4),  # zero stride
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "param": torch.nn.Parameter(torch.randn(2, 3)),
        "param_frozen": torch.nn.Parameter(torch.randn(2), requires_grad=False),
    }
    with_attr = torch.randn(2, 2)
    with_attr.note = "has a python attribute"  # -> _rebuild_from_type_v2
    sd["with_attr"] = with_attr
    f8view = torch.randn(6).to(torch.float8_e4m3fn)
    sd["f8_view"] = f8view[2:5]
    return sd


def save_state_dicts():
    sd = every_dtype_state()
    # Saved to a path: the archive prefix is the file's basename.
    torch.save(sd, os.path.join(OUT, "state_all.pt"))
    write_expected("state_all", sd)
    # Saved to a buffer: the prefix is "archive".
    buf = io.BytesIO()
    torch.save(sd, buf)
    with open(os.path.join(OUT, "state_buffer.pt"), "wb") as f:
        f.write(buf.getvalue())
    # CRC-32 not computed (zeros everywhere).
    torch.utils.serialization.config.save.compute_crc32 = False
    small = {"w": torch.randn(3, 2), "b": torch.arange(4, dtype=torch.int64)}
    torch.save(small, os.path.join(OUT, "state_nocrc.pt"))
    torch.utils.serialization.config.save.compute_crc32 = True
    write_expected("state_nocrc", small)
    # Protocol 4 pickle (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL).
    torch.save(small, os.path.join(OUT, "state_proto4.pt"), pickle_protocol=4)


def save_lightning():
    # A stand-in for pytorch_lightning's ModelCheckpoint: the pickle only records its module and name.
    mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__ = mod.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    mod.ModelCheckpoint = ModelCheckpoint
    for name in ["pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[mod.__name__] = mod

    inner = {
        "model.diffusion_model.conv.weight": torch.randn(2, 1, 3, 3),
        "model.diffusion_model.conv.bias": torch.randn(2),
        "first_stage_model": {"encoder.weight": torch.randn(2, 2)},
        "cond_stage_model.position_ids": torch.arange(5).unsqueeze(0),
        "model_ema.decay": torch.tensor(0.9999),
        "model_ema.num_updates": torch.tensor(12, dtype=torch.int32),
    }
    ckpt = {
        "epoch": 6,
        "global_step": 470000,
        "pytorch-lightning_version": "1.4.2",
        "callbacks": {ModelCheckpoint: {"best_model_score": np.float64(0.25),
                                        "monitor": "val/loss", "blob": b"\x00\xffbytes"}},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [],
        "state_dict": {"state_dict": inner},  # nested twice, as some ControlNet files are
    }
    torch.save(ckpt, os.path.join(OUT, "lightning.ckpt"))
    flat = {}
    for k, v in inner.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                flat[k + "." + k2] = v2
        else:
            flat[k] = v
    write_expected("lightning", flat)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.ln = torch.nn.LayerNorm(3)
        self.register_buffer("scale", torch.tensor([2.0, 3.0, 4.0]))
        self.attn_mask = torch.triu(torch.ones(3, 3))  # plain tensor attribute, not state
        self.register_buffer("cache", torch.zeros(2), persistent=False)  # buffer outside state_dict()

    def forward(self, x):
        return self.ln(self.fc(x)) * self.scale + self.attn_mask.sum()


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(Block(), torch.nn.ReLU())
        self.proj = torch.nn.Parameter(torch.randn(3, 2).half())
        self.register_buffer("context_length", torch.tensor(77))
        self.head = torch.nn.Linear(2, 2, bias=False)

    def forward(self, x):
        return self.head((self.blocks(x) @ self.proj.float()))


def save_torchscript():
    net = Net().eval()
    traced = torch.jit.trace(net, torch.randn(2, 4))
    torch.jit.save(traced, os.path.join(OUT, "traced.pt"))
    write_expected("traced", dict(traced.state_dict()))
    scripted = torch.jit.script(Net().eval())
    torch.jit.save(scripted, os.path.join(OUT, "scripted.pt"))
    write_expected("scripted", dict(scripted.state_dict()))


def save_whole_module():
    # torch.save(model): the root is the pickled module object itself (classes stay inert symbols).
    net = Net().eval()
    torch.save(net, os.path.join(OUT, "module.pt"))
    write_expected("module", dict(net.state_dict()))


def save_legacy():
    base = torch.randn(2, 3)
    sd = {
        "w": base,
        "w_t": base.t(),
        "half": torch.randn(2).half(),
        "ids": torch.arange(3, dtype=torch.int64),
        "nested": {"b": torch.randn(1)},
    }
    torch.save(sd, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    write_expected("legacy", {"w": sd["w"], "w_t": sd["w_t"], "half": sd["half"], "ids": sd["ids"],
                              "nested.b": sd["nested"]["b"]})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    save_state_dicts()
    save_lightning()
    save_torchscript()
    save_whole_module()
    save_legacy()
    # Round-trip check with torch itself so the expectations are what torch.load returns.
    for name in ["state_all.pt", "state_nocrc.pt", "lightning.ckpt", "legacy.pt"]:
        torch.load(os.path.join(OUT, name), weights_only=False)
    print("wrote", sorted(os.listdir(OUT)))
