#!/usr/bin/env python3
"""Generates the file-format conformance corpus in formats/ (valid and invalid/malicious cases).

Valid cases are written by the real libraries (torch.save, torch.jit, safetensors) or, for a few
hand-built files, checked by loading them with torch (weights_only=True) / safetensors. For every
valid case the tensors *as the library reads them back* are stored, made contiguous, in
formats/expected/<case>.safetensors, with the same names and dtypes.

Invalid cases are built byte by byte (struct-level zip writer, hand-written pickle opcodes). Each
one carries exactly one defect on top of a known-good base, so the expected error is specific.
Malicious pickles are never unpickled here.

formats/manifest.json lists every case with its expected outcome; the Swift conformance test and
tools/interop.sh iterate it.

Run:  HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_formats.py
Deterministic except for the TorchScript archives (torch writes a random serialization id).
"""
import io
import json
import os
import shutil
import struct
import sys
import types
import zlib
from collections import OrderedDict

import numpy as np
import torch
import safetensors
import safetensors.torch
from safetensors.torch import save_file, load_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats")
ROOT = os.path.normpath(ROOT)
VALID = os.path.join(ROOT, "valid")
INVALID = os.path.join(ROOT, "invalid")
EXPECTED = os.path.join(ROOT, "expected")

CASES = []

DTYPE_NAMES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8",
    torch.float8_e5m2: "F8_E5M2", torch.float8_e4m3fn: "F8_E4M3",
    torch.int16: "I16", torch.uint16: "U16", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int32: "I32", torch.uint32: "U32", torch.float32: "F32", torch.complex64: "C64",
    torch.float64: "F64", torch.int64: "I64", torch.uint64: "U64",
}


def rel(path):
    return os.path.relpath(path, ROOT)


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# Expected tensors

def flatten_state(obj):
    """The reader policy of formats.md §2.6: unwrap `state_dict` repeatedly, then flatten
    string-keyed dicts with '.', skipping non-string keys and non-tensor values."""
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    out = OrderedDict()

    def walk(d, prefix):
        for k, v in d.items():
            if not isinstance(k, str):
                continue
            name = prefix + k
            if isinstance(v, torch.Tensor):
                assert name not in out, name
                out[name] = v
            elif isinstance(v, dict):
                walk(v, name + ".")
    walk(obj, "")
    return out


def raw_bytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def add_valid(name, path, tensors, fmt, description, prefix=None, metadata=None, check_against=None):
    """Records a valid case; `tensors` is what the real library read back from `path`."""
    expected = OrderedDict()
    for k, t in tensors.items():
        t = t.detach()
        if type(t) is not torch.Tensor:
            t = t.as_subclass(torch.Tensor)
        assert t.dtype in DTYPE_NAMES, (name, k, t.dtype)
        expected[k] = t.clone(memory_format=torch.contiguous_format).contiguous()
    if check_against is not None:  # the library read back exactly what we meant to write
        assert set(check_against) == set(expected), (name, set(check_against) ^ set(expected))
        for k, t in check_against.items():
            a = expected[k]
            assert a.dtype == t.dtype and a.shape == t.shape, (name, k)
            assert raw_bytes(a) == raw_bytes(t), (name, k)
    exp_path = os.path.join(EXPECTED, name + ".safetensors")
    os.makedirs(EXPECTED, exist_ok=True)
    save_file(dict(expected), exp_path)
    entry = OrderedDict(
        name=name, kind="valid", path=rel(path), description=description,
        expected=rel(exp_path), format=fmt,
        tensors=[OrderedDict(name=k, dtype=DTYPE_NAMES[t.dtype], shape=list(t.shape)) for k, t in expected.items()],
    )
    if prefix is not None:
        entry["prefix"] = prefix
    if metadata is not None:
        entry["metadata"] = metadata
    CASES.append(entry)


class ANY(tuple):
    """Any one of these substrings will do (where a reader may legitimately stop at either of two spots)."""
    def __new__(cls, *items):
        return super().__new__(cls, items)


def add_invalid(name, path, kind, contains, description, reference=None):
    assert kind in ("io", "format", "unsupported", "unsafe", "limit", "corrupt")
    entry = OrderedDict(name=name, kind="invalid", path=rel(path), description=description, error_kind=kind)
    if isinstance(contains, ANY):
        entry["message_contains_any"] = list(contains)
    else:
        entry["message_contains"] = contains
    if reference is not None:
        entry["reference_behaviour"] = reference
    CASES.append(entry)


# ---------------------------------------------------------------------------------------------
# Sample tensors

def sample(dtype, shape, gen):
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).to(torch.bool)
    if dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        info = torch.iinfo(dtype)
        lo, hi = max(info.min, -2**31), min(info.max, 2**31 - 1)
        t = torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64).to(dtype)
        if dtype == torch.int64 and t.numel() > 1:
            t.view(-1)[0] = -2**62 - 7  # a value beyond 32 bits
        return t
    if dtype in (torch.uint16, torch.uint32, torch.uint64):
        bits = {torch.uint16: 16, torch.uint32: 32, torch.uint64: 64}[dtype]
        raw = torch.randint(0, 256, (*shape, bits // 8), generator=gen, dtype=torch.int64).to(torch.uint8)
        return raw.view(dtype).reshape(shape)
    if dtype == torch.complex64:
        return torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
    return (torch.randn(shape, generator=gen) * 3).to(dtype)


# ---------------------------------------------------------------------------------------------
# Valid cases written by the real libraries

def torch_valid_cases():
    gen = torch.Generator().manual_seed(1234)

    # Every dtype our DType knows, classic storages and v3 (_rebuild_tensor_v3) ones.
    sd = OrderedDict()
    for dt in DTYPE_NAMES:
        sd["t_" + str(dt).replace("torch.", "")] = sample(dt, (2, 3), gen)
    path = os.path.join(VALID, "zip_all_dtypes.pt")
    torch.save(sd, path)
    add_valid("zip_all_dtypes", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "torch.save to a path of one (2,3) tensor per dtype, including v3 dtypes (float8, uint16/32/64)",
              prefix="zip_all_dtypes", check_against=sd)

    # Views into shared storages, transposes, slices with steps, storage offsets, 0-d, empty, expanded.
    base = sample(torch.float32, (3, 4), gen)
    wide = sample(torch.float16, (4, 6), gen)
    sd = OrderedDict()
    sd["base"] = base
    sd["row1"] = base[1]                       # offset 4, contiguous view
    sd["transposed"] = base.t()                # strides (1, 4)
    sd["column2"] = base[:, 2]                 # stride 4, offset 2
    sd["stepped"] = wide[1:, ::2]              # strides (6, 2), offset 6
    sd["permuted"] = sample(torch.bfloat16, (2, 3, 4), gen).permute(2, 0, 1)
    sd["expanded"] = sample(torch.int32, (3, 1), gen).expand(3, 5)  # zero stride
    sd["scalar"] = torch.tensor(3.25, dtype=torch.float64)          # 0-d
    sd["scalar_i64"] = torch.tensor(-7, dtype=torch.int64)
    sd["empty"] = torch.zeros(2, 0)
    sd["empty_1d"] = torch.zeros(0, dtype=torch.int8)
    sd["unit_dims"] = sample(torch.float32, (1, 3, 1), gen)
    sd["f8_view"] = sample(torch.float8_e4m3fn, (4, 4), gen)[1:3, 1:]  # v3 with offset and strides
    path = os.path.join(VALID, "zip_views.pt")
    torch.save(sd, path)
    add_valid("zip_views", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "views sharing storages: row, transpose, column, stepped slice, permute, zero-stride expand, "
              "0-d, empty and size-1 dims; one fp8 (v3) strided view", prefix="zip_views", check_against=sd)

    # Parameters and tensors with Python attributes.
    p = torch.nn.Parameter(sample(torch.float32, (2, 2), gen))
    p_state = torch.nn.Parameter(sample(torch.float32, (3,), gen), requires_grad=False)
    p_state.tag = "kept"
    t_attr = sample(torch.float16, (2, 2), gen)
    t_attr.note = "attribute"
    sd = OrderedDict(param=p, param_with_state=p_state, tensor_with_attr=t_attr,
                     plain=sample(torch.int16, (5,), gen))
    path = os.path.join(VALID, "zip_parameters.pt")
    torch.save(sd, path)
    add_valid("zip_parameters", path, flatten_state(torch.load(path, weights_only=False)), "torch-zip",
              "nn.Parameter (_rebuild_parameter), Parameter with attributes (_rebuild_parameter_with_state), "
              "tensor with attributes (_rebuild_from_type_v2)", prefix="zip_parameters", check_against=sd)

    # Saved to a buffer: prefix 'archive'.
    sd = OrderedDict(weight=sample(torch.float32, (4, 3), gen), bias=sample(torch.float32, (4,), gen),
                     position_ids=torch.arange(7).unsqueeze(0))
    buf = io.BytesIO()
    torch.save(sd, buf)
    path = os.path.join(VALID, "zip_buffer_prefix.bin")
    write_bytes(path, buf.getvalue())
    add_valid("zip_buffer_prefix", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "torch.save to a buffer: every record is under 'archive/'", prefix="archive", check_against=sd)

    # CRC 0 everywhere.
    import torch.utils.serialization as ser
    ser.config.save.compute_crc32 = False
    try:
        sd = OrderedDict(a=sample(torch.float32, (8,), gen), b=sample(torch.int64, (2, 2), gen))
        path = os.path.join(VALID, "zip_crc0.ckpt")
        torch.save(sd, path)
    finally:
        ser.config.save.compute_crc32 = True
    add_valid("zip_crc0", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "compute_crc32=False: every CRC-32 field is 0 (means 'not computed')", prefix="zip_crc0",
              check_against=sd)

    # Pickle protocol 4 (SHORT_BINUNICODE, FRAME, MEMOIZE, STACK_GLOBAL ...).
    sd = OrderedDict(w=sample(torch.float32, (3, 3), gen), ids=sample(torch.int32, (4,), gen))
    path = os.path.join(VALID, "zip_protocol4.pt")
    torch.save(sd, path, pickle_protocol=4)
    add_valid("zip_protocol4", path, flatten_state(torch.load(path, weights_only=False)), "torch-zip",
              "torch.save with pickle_protocol=4", prefix="zip_protocol4", check_against=sd)

    # Nested plain dicts flatten with '.'.
    inner = OrderedDict(weight=sample(torch.float32, (2, 2), gen))
    obj = {"model": {"encoder": inner, "head": {"bias": sample(torch.float32, (2,), gen)}},
           "step": 12, "name": "nested", "history": [sample(torch.float32, (1,), gen)]}
    path = os.path.join(VALID, "zip_nested_dict.pt")
    torch.save(obj, path)
    add_valid("zip_nested_dict", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "plain nested dicts flatten to 'model.encoder.weight'; ints, strings and lists are skipped",
              prefix="zip_nested_dict")

    # Lightning-style checkpoint: a class GLOBAL as a dict key, numpy scalars (_codecs.encode), state_dict.
    pl = types.ModuleType("pytorch_lightning")
    plc = types.ModuleType("pytorch_lightning.callbacks")
    plm = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        pass
    ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    plm.ModelCheckpoint = ModelCheckpoint
    sys.modules.update({"pytorch_lightning": pl, "pytorch_lightning.callbacks": plc,
                        "pytorch_lightning.callbacks.model_checkpoint": plm})
    state = OrderedDict()
    state["model.diffusion_model.input_blocks.0.0.weight"] = sample(torch.float32, (4, 2, 3, 3), gen)
    state["model.diffusion_model.input_blocks.0.0.bias"] = sample(torch.float32, (4,), gen)
    state["model.alphas_cumprod"] = torch.linspace(0.99, 0.01, 10, dtype=torch.float32)
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(6).unsqueeze(0)
    state["model_ema.num_updates"] = torch.tensor(470000, dtype=torch.int32)
    ckpt = {
        "epoch": 6, "global_step": 470000, "pytorch-lightning_version": "1.4.2",
        "state_dict": state,
        "callbacks": {ModelCheckpoint: {"best_model_score": np.float64(0.25), "monitor": None}},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [],
    }
    path = os.path.join(VALID, "zip_lightning.ckpt")
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=False)  # our own file; needs the stand-in Lightning module
    add_valid("zip_lightning", path, flatten_state(loaded), "torch-zip",
              "Lightning-style checkpoint: ModelCheckpoint class GLOBAL as a dict key, numpy float64 scalar "
              "(numpy ... scalar + _codecs.encode), optimizer_states with int keys; tensors come from state_dict",
              prefix="zip_lightning", check_against=state)
    for m in ("pytorch_lightning.callbacks.model_checkpoint", "pytorch_lightning.callbacks", "pytorch_lightning"):
        del sys.modules[m]

    # Legacy stacked-pickle format, with a view into a shared storage.
    base = sample(torch.float32, (6,), gen)
    sd = OrderedDict(full=base, tail=base[2:], half=sample(torch.float16, (2,), gen),
                     longs=sample(torch.int64, (3,), gen))
    path = os.path.join(VALID, "legacy.pth")
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    add_valid("legacy", path, flatten_state(torch.load(path, weights_only=True)), "torch-legacy",
              "pre-1.6 stacked pickles (_use_new_zipfile_serialization=False), a view with an offset",
              check_against=sd)

    # TorchScript: traced and scripted modules, mixed fp16/fp32 like OpenAI CLIP.
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.register_buffer("scale", torch.tensor([2.0]))

        def forward(self, x):
            return self.norm(self.proj(x)) * self.scale

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.blocks = torch.nn.Sequential(Block(), Block())
            self.positional_embedding = torch.nn.Parameter(torch.randn(4, generator=gen))
            self.register_buffer("steps", torch.tensor(3, dtype=torch.int64))

        def forward(self, x):
            y = self.conv(x).flatten(1)[:, :4] + self.positional_embedding
            return self.blocks(y)

    torch.manual_seed(7)
    net = Net().eval()
    net.blocks[1].proj.weight.data = net.blocks[1].proj.weight.data.half().float()
    example = torch.randn(1, 1, 4, 4, generator=gen)
    with torch.no_grad():
        traced = torch.jit.trace(net, example)
    for mod, label in ((traced, "traced"), (torch.jit.script(net), "scripted")):
        path = os.path.join(VALID, f"torchscript_{label}.pt")
        torch.jit.save(mod, path)
        loaded = torch.jit.load(path, map_location="cpu")
        add_valid(f"torchscript_{label}", path, OrderedDict(loaded.state_dict()), "torchscript",
                  f"{label} TorchScript module (torch.jit.save): nested Sequential, parameters and buffers",
                  prefix=f"torchscript_{label}")

    # Mixed-precision TorchScript: some fp16 parameters.
    class Half(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2).half()
            self.ln = torch.nn.LayerNorm(3)

        def forward(self, x):
            return self.lin(self.ln(x).half())
    path = os.path.join(VALID, "torchscript_mixed.pt")
    torch.jit.save(torch.jit.script(Half()), path)
    loaded = torch.jit.load(path, map_location="cpu")
    add_valid("torchscript_mixed", path, OrderedDict(loaded.state_dict()), "torchscript",
              "scripted module with fp16 Linear and fp32 LayerNorm", prefix="torchscript_mixed")


def safetensors_valid_cases():
    gen = torch.Generator().manual_seed(99)
    sd = OrderedDict()
    for dt in DTYPE_NAMES:
        sd[str(dt).replace("torch.", "")] = sample(dt, (3, 2), gen)
    sd["scalar"] = torch.tensor(1.5)
    sd["empty"] = torch.zeros(0, 4, dtype=torch.float16)
    sd["a.weight"] = sample(torch.float32, (5, 3), gen)
    path = os.path.join(VALID, "st_all_dtypes.safetensors")
    save_file(dict(sd), path, metadata={"format": "pt"})  # one key: Rust orders a map randomly
    with safetensors.safe_open(path, "pt") as f:
        meta = f.metadata()
    add_valid("st_all_dtypes", path, OrderedDict(load_file(path)), "safetensors",
              "safetensors.torch.save_file with every dtype, a 0-d and an empty tensor and __metadata__",
              metadata=meta, check_against=sd)

    # Sharded: index + two shards (transformers-style names).
    folder = os.path.join(VALID, "sharded")
    os.makedirs(folder, exist_ok=True)
    shard1 = OrderedDict({"embeddings.weight": sample(torch.float32, (6, 4), gen),
                          "layers.0.weight": sample(torch.float16, (4, 4), gen)})
    shard2 = OrderedDict({"layers.1.weight": sample(torch.bfloat16, (4, 4), gen),
                          "head.bias": sample(torch.float32, (4,), gen)})
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = OrderedDict()
    total = 0
    for shard, fname in zip((shard1, shard2), names):
        save_file(dict(shard), os.path.join(folder, fname), metadata={"format": "pt"})
        for k, t in shard.items():
            weight_map[k] = fname
            total += t.numel() * t.element_size()
    index = os.path.join(folder, "model.safetensors.index.json")
    with open(index, "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    both = OrderedDict(list(shard1.items()) + list(shard2.items()))
    read = OrderedDict()
    for fname in names:
        read.update(load_file(os.path.join(folder, fname)))
    add_valid("sharded_index", index, read, "sharded-safetensors",
              "model.safetensors.index.json naming two shards", check_against=both)
    add_valid("sharded_folder", folder, read, None,
              "a folder holding a sharded index and its shards (format not asserted: folder or sharded)",
              check_against=both)


# ---------------------------------------------------------------------------------------------
# Hand-built safetensors

def st_bytes(header, data, pad=True, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad and raw_header is None:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_base():
    a = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5
    b = np.array([1, -2, 3, -4], dtype=np.int16)
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    header["alpha"] = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    header["beta"] = {"dtype": "I16", "shape": [4], "data_offsets": [24, 32]}
    return header, a.tobytes() + b.tobytes()


def reference_verdict(path):
    """What the Python safetensors reader does with a file (it is safe to try: no code runs)."""
    try:
        with safetensors.safe_open(path, "pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return "python safetensors 0.8.0 accepts it"
    except Exception as e:  # noqa: BLE001 - we record whatever it says
        return f"python safetensors 0.8.0 rejects it: {type(e).__name__}: {str(e)[:120]}"


def safetensors_handmade_cases():
    header, data = st_base()
    path = os.path.join(VALID, "st_handmade.safetensors")
    write_bytes(path, st_bytes(header, data))
    add_valid("st_handmade", path, OrderedDict(load_file(path)), "safetensors",
              "the hand-built base of the safetensors attack cases", metadata={"format": "pt"})

    # Accepted oddities (formats.md §1.3 item 7).
    h = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": [1, {"k": 2}]},
                    "z": {"dtype": "U8", "shape": [0, 3], "data_offsets": [8, 8]}}).encode()
    raw = b"  \n" + h + b"\t "  # whitespace both sides, unpadded, spaces inside
    path = os.path.join(VALID, "st_lenient_header.safetensors")
    write_bytes(path, st_bytes(None, np.array([1.5, -2.0], np.float32).tobytes(), raw_header=raw))
    add_valid("st_lenient_header", path, OrderedDict(load_file(path)), "safetensors",
              "unpadded header with leading/trailing whitespace, unknown extra field, zero-size tensor; no metadata",
              metadata={})

    def bad(name, kind, contains, description, header=None, data=None, raw=None, whole=None):
        path = os.path.join(INVALID, name + ".safetensors")
        if whole is not None:
            blob = whole
        else:
            blob = st_bytes(header, data if data is not None else st_base()[1], raw_header=raw)
        write_bytes(path, blob)
        add_invalid(name, path, kind, contains, description, reference_verdict(path))

    def mutated(**changes):
        h, _ = st_base()
        h = json.loads(json.dumps(h), object_pairs_hook=OrderedDict)
        for key, value in changes.items():
            h[key] = value
        return h

    base_h, base_d = st_base()
    bad("st_header_too_small", "format", ["header"], "a 5-byte file: shorter than the 8-byte length",
        whole=b"\x10\x00\x00\x00\x00")
    bad("st_header_len_over_limit", "limit", ["header"],
        "header length N = 100,000,001 (> 100 MB cap)",
        whole=struct.pack("<Q", 100_000_001) + b"{}" + b" " * 6)
    bad("st_header_len_past_eof", "corrupt", ["header"], "N = 4096 but the file has 40 bytes after it",
        whole=struct.pack("<Q", 4096) + st_bytes(base_h, base_d)[8:48])
    bad("st_header_len_huge", "limit", ["header"], "N = 2^64 - 1",
        whole=struct.pack("<Q", 2**64 - 1) + b"{}" + b" " * 6)
    bad("st_header_not_utf8", "format", ["UTF-8"], "header bytes are not UTF-8 (0xff inside a key)",
        raw=b'{"alpha\xff":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}' + b" " * 2, data=base_d[:24])
    bad("st_header_not_json", "format", ["JSON"], "header is not JSON",
        raw=b"this is not json at all!", data=b"")
    bad("st_header_top_level_array", "format", ANY("object", "recognised", "recognized"), "header is a JSON array",
        raw=b'[{"dtype":"F32","shape":[2],"data_offsets":[0,8]}]    ', data=b"\0" * 8)
    bad("st_header_truncated_json", "format", ["JSON"], "header JSON ends in the middle of an object",
        raw=b'{"alpha":{"dtype":"F32","shape":[2,3],"data_offsets":[0,', data=base_d[:24])
    dup = (b'{"alpha":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'
           b'"alpha":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}')
    bad("st_duplicate_key", "format", ["duplicate", "alpha"], "the key 'alpha' occurs twice with identical "
        "entries (the reference reader keeps the last one and accepts the file)",
        raw=dup + b" " * (-len(dup) % 8), data=base_d[:24])
    bad("st_unknown_dtype", "format", ["F33"], "dtype 'F33' does not exist",
        header=mutated(alpha={"dtype": "F33", "shape": [2, 3], "data_offsets": [0, 24]}))
    bad("st_unsupported_dtype_f8_e8m0", "unsupported", ["F8_E8M0"],
        "dtype F8_E8M0 exists in safetensors but is not one we read",
        header=mutated(alpha={"dtype": "F8_E8M0", "shape": [24], "data_offsets": [0, 24]}))
    bad("st_negative_shape", "format", ["shape"], "shape [-2, 3]",
        header=mutated(alpha={"dtype": "F32", "shape": [-2, 3], "data_offsets": [0, 24]}))
    bad("st_float_shape", "format", ["shape"], "shape [2.0, 3]",
        raw=json.dumps(mutated()).replace('"shape": [2, 3]', '"shape": [2.0, 3]').encode() + b"  ")
    bad("st_shape_not_array", "format", ["shape"], "shape is the string \"2x3\"",
        header=mutated(alpha={"dtype": "F32", "shape": "2x3", "data_offsets": [0, 24]}))
    bad("st_missing_data_offsets", "format", ["data_offsets"], "tensor 'alpha' lacks data_offsets",
        header=mutated(alpha={"dtype": "F32", "shape": [2, 3]}))
    bad("st_metadata_not_string", "format", ["__metadata__"], "__metadata__ value is the integer 1",
        header=mutated(__metadata__={"format": "pt", "epoch": 1}))
    bad("st_empty_tensor_name", "format", ["name"], "a tensor named ''",
        raw=json.dumps(mutated()).replace('"alpha":', '"":').encode() + b" ")
    bad("st_integer_over_u64", "format", ["alpha", "18446744073709551616"], "an offset of 2^64 (not a u64)",
        raw=json.dumps(mutated()).replace('"data_offsets": [0, 24]', '"data_offsets": [0, 18446744073709551616]')
        .encode())
    bad("st_gap", "corrupt", ["beta"], "2 unused bytes between 'alpha' and 'beta'",
        header=mutated(beta={"dtype": "I16", "shape": [4], "data_offsets": [26, 34]}), data=base_d + b"\0\0")
    bad("st_overlap", "corrupt", ["beta"], "'beta' starts inside 'alpha' (offsets [20, 28])",
        header=mutated(beta={"dtype": "I16", "shape": [4], "data_offsets": [20, 28]}), data=base_d[:28])
    bad("st_aliasing", "corrupt", ["beta"], "'beta' has the same offsets as 'alpha'",
        header=mutated(beta={"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}), data=base_d[:24])
    bad("st_trailing_bytes", "corrupt", ["trailing"], "8 bytes after the last tensor",
        header=base_h, data=base_d + b"\0" * 8)
    bad("st_size_shape_mismatch", "corrupt", ["alpha"], "'alpha' is F32 [2, 3] (24 bytes) but spans 20 bytes",
        header=mutated(alpha={"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]},
                       beta={"dtype": "I16", "shape": [6], "data_offsets": [20, 32]}))
    bad("st_shape_overflow", "corrupt", ["alpha"], "shape [2^32, 2^32, 2^32]: the byte count overflows",
        header=mutated(alpha={"dtype": "F32", "shape": [2**32, 2**32, 2**32], "data_offsets": [0, 24]}))
    bad("st_begin_after_end", "corrupt", ["beta"], "'beta' has offsets [32, 24]",
        header=mutated(beta={"dtype": "I16", "shape": [4], "data_offsets": [32, 24]}))
    bad("st_offsets_past_eof", "corrupt", ["4096"], "'beta' ends at 4096, past the end of the file",
        header=mutated(beta={"dtype": "I16", "shape": [2036], "data_offsets": [24, 4096]}))
    bad("st_truncated_data", "corrupt", ["truncated"], "the file ends 4 bytes early, inside 'beta'",
        header=base_h, data=base_d[:-4])
    bad("st_json_deep_nesting", "limit", ["nest"], "an extra field of 'alpha' nests 10,000 arrays",
        raw=b'{"alpha":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"extra":' + b"[" * 10000 + b"]" * 10000
        + b'}}', data=base_d[:24])


# ---------------------------------------------------------------------------------------------
# Hand-built torch zip archives

class Entry:
    def __init__(self, name, data, method=0, flags=None, crc=None, local_name=None,
                 central_size=None, local_offset=None, compressed=None):
        self.name, self.data, self.method = name, data, method
        self.flags = flags if flags is not None else (0x0808 if data else 0x0800)
        self.crc = zlib.crc32(data) if crc is None else crc
        self.local_name = local_name if local_name is not None else name
        self.central_size = central_size
        self.local_offset = local_offset
        self.compressed = compressed


def torch_zip(entries, entry_count=None, cd_size=None, cd_offset_delta=0, zip64_locator_offset=None,
              drop_eocd=False, saturate_eocd=False):
    """A zip laid out the way torch's miniz writer does it: 64-aligned STORED data behind an 'FB'
    extra, CRC and sizes in data descriptors (flag bit 3), a zip64 end record and locator."""
    out = bytearray()
    offsets = []
    for e in entries:
        payload = e.compressed if e.compressed is not None else e.data
        offset = len(out)
        offsets.append(offset)
        name = e.local_name.encode()
        base = offset + 30 + len(name) + 4
        pad = -base % 64
        extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, e.flags, e.method, 0, 0x21, 0, 0, 0,
                           len(name), len(extra))
        out += name + extra
        assert len(out) % 64 == 0
        out += payload
        if e.flags & 0x8:
            out += struct.pack("<IIII", 0x08074B50, e.crc, len(payload), len(e.data))
    cd_start = len(out)
    for e, offset in zip(entries, offsets):
        payload = e.compressed if e.compressed is not None else e.data
        name = e.name.encode()
        usize = e.central_size if e.central_size is not None else len(e.data)
        csize = e.central_size if e.central_size is not None else len(payload)
        loc = e.local_offset if e.local_offset is not None else offset
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, e.flags, e.method, 0, 0x21,
                           e.crc, csize, usize, len(name), 0, 0, 0, 0, 0, loc)
        out += name
    cd_end = len(out)
    count = len(entries) if entry_count is None else entry_count
    size = (cd_end - cd_start) if cd_size is None else cd_size
    zip64_at = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, count, count, size,
                       cd_start + cd_offset_delta)
    out += struct.pack("<IIQI", 0x07064B50, 0,
                       zip64_at if zip64_locator_offset is None else zip64_locator_offset, 1)
    if not drop_eocd:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                           min(size, 0xFFFFFFFF),
                           0xFFFFFFFF if saturate_eocd else min(cd_start + cd_offset_delta, 0xFFFFFFFF), 0)
    return bytes(out)


class Pickle:
    """Writes pickle opcodes by hand."""

    def __init__(self, proto=2):
        self.b = bytearray()
        if proto is not None:
            self.b += bytes([0x80, proto])

    def op(self, raw):
        self.b += raw
        return self

    def glob(self, module, name):
        return self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def str(self, s):
        s = s.encode("utf-8")
        return self.op(b"X" + struct.pack("<I", len(s)) + s)

    def int(self, v):
        if 0 <= v < 256:
            return self.op(b"K" + bytes([v]))
        if 0 <= v < 65536:
            return self.op(b"M" + struct.pack("<H", v))
        if -2**31 <= v < 2**31:
            return self.op(b"J" + struct.pack("<i", v))
        n = (v.bit_length() + 8) // 8
        return self.op(b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True))

    def tuple_of(self, items):
        self.op(b"(")
        for v in items:
            self.int(v)
        return self.op(b"t")

    def mark(self):
        return self.op(b"(")

    def stop(self):
        return self.op(b".")

    def bytes(self):
        return bytes(self.b)


def emit_tensor(p, t, storage_tuple=None):
    """`_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())` as torch writes it."""
    p.glob("torch._utils", "_rebuild_tensor_v2").mark()
    if storage_tuple is None:
        p.mark().str("storage").glob("torch", t["storage"]).str(t["key"]).str("cpu").int(t["numel"]).op(b"t")
    else:
        storage_tuple(p)
    p.op(b"Q")
    p.int(t.get("offset", 0)).tuple_of(t["shape"]).tuple_of(t["stride"]).op(b"\x89")
    p.glob("collections", "OrderedDict").op(b")R")
    p.op(b"tR")


def state_pickle(tensors, before_items=None, after_items=None, proto=2):
    p = Pickle(proto)
    p.glob("collections", "OrderedDict").op(b")R").op(b"q\x00").mark()
    if before_items:
        before_items(p)
    for t in tensors:
        p.str(t["name"])
        emit_tensor(p, t)
    if after_items:
        after_items(p)
    p.op(b"u").stop()
    return p.bytes()


BASE_A = np.arange(12, dtype=np.float32) * 0.25 - 1.0            # storage "0": 12 floats
BASE_B = np.array([3, -1, 4, -1, 5, -9], dtype=np.int64)            # storage "1": 6 int64
BASE_TENSORS = [
    dict(name="weight", storage="FloatStorage", key="0", numel=12, offset=0, shape=(3, 4), stride=(4, 1)),
    dict(name="weight_t", storage="FloatStorage", key="0", numel=12, offset=0, shape=(4, 3), stride=(1, 4)),
    dict(name="row", storage="FloatStorage", key="0", numel=12, offset=8, shape=(4,), stride=(1,)),
    dict(name="ids", storage="LongStorage", key="1", numel=6, offset=0, shape=(2, 3), stride=(3, 1)),
]


def archive(pkl, records=None, prefix="archive", extra_entries=(), **zip_kw):
    records = records if records is not None else {"0": BASE_A.tobytes(), "1": BASE_B.tobytes()}
    entries = [Entry(f"{prefix}/data.pkl", pkl), Entry(f"{prefix}/byteorder", b"little")]
    for key, data in records.items():
        entries.append(Entry(f"{prefix}/data/{key}", data))
    entries.append(Entry(f"{prefix}/version", b"3\n"))
    entries.extend(extra_entries)
    return entries


def zip_handmade_cases():
    # The valid base: torch must read it with weights_only=True.
    path = os.path.join(VALID, "zip_handmade.pt")
    write_bytes(path, torch_zip(archive(state_pickle(BASE_TENSORS))))
    add_valid("zip_handmade", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "the hand-built base of the zip and pickle attack cases (miniz layout: FB padding, data "
              "descriptors, zip64 end record); views share storage '0'", prefix="archive")

    # LONG_BINPUT / LONG_BINGET with index 0xFFFFFFFF: legal pickle; a reader must not allocate 4 G slots.
    p = Pickle(2)
    p.glob("collections", "OrderedDict").op(b")R").mark()
    p.str("weight")
    p.glob("torch._utils", "_rebuild_tensor_v2").mark()
    p.mark().str("storage").glob("torch", "FloatStorage").str("0").str("cpu").int(12).op(b"t")
    p.op(b"r\xff\xff\xff\xff")  # LONG_BINPUT 0xFFFFFFFF (memoise the storage id tuple)
    p.op(b"Q").int(0).tuple_of((3, 4)).tuple_of((4, 1)).op(b"\x89").glob("collections", "OrderedDict").op(b")RtR")
    p.str("again")
    p.glob("torch._utils", "_rebuild_tensor_v2").mark()
    p.op(b"j\xff\xff\xff\xff")  # LONG_BINGET 0xFFFFFFFF
    p.op(b"Q").int(4).tuple_of((2, 4)).tuple_of((4, 1)).op(b"\x89").glob("collections", "OrderedDict").op(b")RtR")
    p.op(b"u").stop()
    path = os.path.join(VALID, "zip_memo_ffffffff.pt")
    write_bytes(path, torch_zip(archive(p.bytes(), records={"0": BASE_A.tobytes()})))
    add_valid("zip_memo_ffffffff", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "LONG_BINPUT/LONG_BINGET 0xFFFFFFFF: legal, must not allocate a 4 G-slot memo", prefix="archive")

    # A zip written by Python's zipfile: no data descriptors, no alignment, ordinary STORED entries.
    buf = io.BytesIO()
    import zipfile
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for e in archive(state_pickle(BASE_TENSORS), prefix="plain"):
            z.writestr(zipfile.ZipInfo(e.name, date_time=(2024, 1, 1, 0, 0, 0)), e.data)
    path = os.path.join(VALID, "zip_plain_zipfile.pt")
    write_bytes(path, buf.getvalue())
    add_valid("zip_plain_zipfile", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "written by Python zipfile: sizes in local headers, unaligned data", prefix="plain")

    def bad(name, kind, contains, description, blob, ext=".pt"):
        path = os.path.join(INVALID, name + ext)
        write_bytes(path, blob)
        add_invalid(name, path, kind, contains, description)

    good = state_pickle(BASE_TENSORS)

    # --- zip container attacks
    e = archive(good)
    e[2].flags |= 0x1
    bad("zip_encrypted_flag", "unsupported", ["encrypt"], "data/0 has general-purpose flag bit 0 (encrypted)",
        torch_zip(e))
    e = archive(good, extra_entries=[Entry("archive/../evil.sh", b"echo pwned")])
    bad("zip_name_dotdot", "unsafe", [".."], "an entry named 'archive/../evil.sh'", torch_zip(e))
    e = archive(good, extra_entries=[Entry("/archive/abs", b"x")])
    bad("zip_name_absolute", "unsafe", ["/archive/abs"], "an entry named '/archive/abs' (leading slash)",
        torch_zip(e))
    e = archive(good)
    e[3].local_name = "archive/data/7"
    bad("zip_local_central_name_mismatch", "corrupt", ["data/1"],
        "central directory says 'archive/data/1', its local header says 'archive/data/7'", torch_zip(e))
    e = archive(good)
    e[2].central_size = 1_000_000
    bad("zip_entry_outside_file", "corrupt", ["data/0"], "central size of data/0 is 1,000,000 bytes",
        torch_zip(e))
    e = archive(good)
    blob = torch_zip(e)
    e[2].local_offset = len(blob) + 4096
    bad("zip_local_header_outside_file", "corrupt", ["data/0"], "data/0's local header offset is past EOF",
        torch_zip(e))
    blob = torch_zip(archive(good), cd_size=100_000)
    bad("zip_central_directory_truncated", "corrupt", ["central directory"],
        "end records claim a 100,000-byte central directory", blob)
    blob = torch_zip(archive(good), drop_eocd=True)
    bad("zip_eocd_missing", "format", ["end of central directory"], "no end-of-central-directory record",
        blob)
    blob = torch_zip(archive(good), zip64_locator_offset=10_000_000, saturate_eocd=True)
    bad("zip64_locator_outside", "corrupt", ["zip64"], "the zip64 locator points 10 MB past EOF", blob)
    blob = torch_zip(archive(good), entry_count=200_000)
    bad("zip_entry_count_200k", "limit", ["200000"], "end records claim 200,000 entries (limit 100,000)", blob)
    e = archive(good)
    e.insert(3, Entry("archive/data/0", BASE_A.tobytes()))
    bad("zip_duplicate_name", "corrupt", ["data/0"], "two entries named 'archive/data/0'", torch_zip(e))
    e = archive(good)
    e[2].central_size = 48 + 16 + 64  # data/0 now runs over its descriptor into data/1's local header
    bad("zip_overlapping_entries", "corrupt", ["overlap"],
        "data/0's central size makes its range run into data/1's local header", torch_zip(e))
    e = archive(good, extra_entries=[Entry("other/data/5", b"\0" * 8)])
    bad("zip_entry_outside_prefix", "format", ["other/data/5"], "an entry not under the 'archive/' prefix",
        torch_zip(e))
    e = [x for x in archive(good) if not x.name.endswith("data.pkl")]
    bad("zip_no_data_pkl", "format", ["data.pkl"], "the archive has no data.pkl", torch_zip(e))
    blob = torch_zip(archive(good))
    cut = blob.find(b"archive/data/1") - 30
    bad("zip_truncated_at_record", "format", ["end of central directory"],
        "cut at the local header of data/1 (structural boundary)", blob[:cut])
    bad("zip_truncated_before_central_directory", "format", ["end of central directory"],
        "cut where the central directory starts", blob[:blob.find(b"PK\x01\x02")])

    # --- storages and records
    bad("pkl_short_record", "corrupt", ["40"], "data/0 has 40 bytes, the FloatStorage needs 48",
        torch_zip(archive(good, records={"0": BASE_A.tobytes()[:40], "1": BASE_B.tobytes()})))
    bad("pkl_record_length_mismatch", "corrupt", ["56"], "data/1 has 56 bytes, the LongStorage needs 48",
        torch_zip(archive(good, records={"0": BASE_A.tobytes(), "1": BASE_B.tobytes() + b"\0" * 8})))
    bad("pkl_missing_record", "corrupt", ["data/1"], "the pickle references storage '1'; there is no data/1",
        torch_zip(archive(good, records={"0": BASE_A.tobytes()})))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[2]["offset"] = 10
    bad("pkl_view_out_of_range", "corrupt", ANY("48", "12 element"), "'row' spans elements 10..13 of a 12-element storage",
        torch_zip(archive(state_pickle(ts))))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[1]["stride"] = (1, -4)
    ts[1]["offset"] = 8
    bad("pkl_negative_stride", "corrupt", ["-4"], "'weight_t' has stride (1, -4)",
        torch_zip(archive(state_pickle(ts))))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[2]["storage"] = "IntStorage"
    bad("pkl_dtype_conflict", "corrupt", ANY("int32", "IntStorage"), "storage '0' is FloatStorage for 'weight', IntStorage for 'row'",
        torch_zip(archive(state_pickle(ts))))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[3]["key"] = "../x"
    bad("pkl_storage_key_dotdot", "format", ["../x"], "storage key '../x' (a path outside data/; no such record)",
        torch_zip(archive(state_pickle(ts), records={"0": BASE_A.tobytes()})))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[3]["storage"] = "QInt8Storage"
    bad("pkl_quantized_storage", "unsupported", ["QInt8Storage"], "a quantized storage class",
        torch_zip(archive(state_pickle(ts))))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[3]["storage"] = "FancyStorage"
    bad("pkl_unknown_storage_class", "unsupported", ["FancyStorage"], "storage class torch.FancyStorage",
        torch_zip(archive(state_pickle(ts))))
    ts = [dict(t) for t in BASE_TENSORS]
    ts[0]["shape"] = (1,) * 40
    ts[0]["stride"] = (1,) * 40
    bad("pkl_rank_40", "limit", ["40"], "'weight' has 40 dimensions (limit 32)",
        torch_zip(archive(state_pickle(ts))))
    bad("pkl_name_collision", "corrupt", ["a.b"], "'a.b' is a tensor and also 'a' -> {'b': tensor}",
        torch_zip(archive(state_pickle(
            [dict(BASE_TENSORS[0], name="a.b")],
            after_items=lambda p: (p.str("a").op(b"}").mark().str("b"),
                                   emit_tensor(p, dict(BASE_TENSORS[2])), p.op(b"u"))))))

    # --- pickle attacks (opcode bytes written by hand; never unpickled)
    def with_item(fn, proto=2):
        return torch_zip(archive(state_pickle(BASE_TENSORS, after_items=fn, proto=proto)))

    bad("pkl_posix_system", "unsafe", ["posix.system"], "GLOBAL posix.system + REDUCE('echo pwned')",
        with_item(lambda p: p.str("evil").glob("posix", "system").mark().str("echo pwned").op(b"tR")))
    bad("pkl_os_system_stack_global", "unsafe", ["os.system"], "STACK_GLOBAL os.system (protocol 4) + REDUCE",
        with_item(lambda p: p.str("evil").op(b"\x8c\x02os\x8c\x06system\x93").mark().str("id").op(b"tR"),
                  proto=4))
    bad("pkl_builtins_eval", "unsafe", ["builtins.eval"], "GLOBAL builtins.eval + REDUCE",
        with_item(lambda p: p.str("evil").glob("builtins", "eval").mark().str("1+1").op(b"tR")))
    bad("pkl_subprocess_popen", "unsafe", ["subprocess.Popen"], "GLOBAL subprocess.Popen + REDUCE",
        with_item(lambda p: p.str("evil").glob("subprocess", "Popen").mark().mark().str("id").op(b"l").op(b"tR")))
    bad("pkl_posix_system_root", "unsafe", ["posix.system"],
        "data.pkl is only posix.system('id'), the whole root object",
        torch_zip(archive(Pickle(2).glob("posix", "system").mark().str("id").op(b"tR").stop().bytes())))
    bad("pkl_inst_opcode", "unsafe", ["INST"], "INST collections OrderedDict (protocol 0 call opcode)",
        with_item(lambda p: p.str("x").mark().op(b"icollections\nOrderedDict\n")))
    bad("pkl_ext1", "unsafe", ["EXT1"], "EXT1 0x01 (extension registry)",
        with_item(lambda p: p.str("x").op(b"\x82\x01")))
    bad("pkl_protocol0_text", "unsupported", ["PUT"], "a protocol-0 text pickle '(dp0\\n...'",
        torch_zip(archive(b"(dp0\nVw\np1\nI1\ns.")))
    bad("pkl_missing_stop", "corrupt", ["STOP"], "data.pkl ends without STOP",
        torch_zip(archive(good[:-1])))
    bad("pkl_bytes_after_stop", "corrupt", ["STOP"], "4 bytes follow STOP", torch_zip(archive(good + b"NNN.")))
    bad("pkl_pop_empty_stack", "corrupt", ["stack"], "POP on an empty stack",
        torch_zip(archive(Pickle(2).op(b"0").op(b"}").stop().bytes())))
    bad("pkl_binget_unset_memo", "corrupt", ["memo"], "BINGET 7, never stored",
        with_item(lambda p: p.str("x").op(b"h\x07")))
    bad("pkl_setitems_odd", "corrupt", ["SETITEMS"], "SETITEMS with 3 items after MARK",
        torch_zip(archive(Pickle(2).op(b"}").mark().str("a").int(1).str("b").op(b"u").stop().bytes())))
    bad("pkl_append_on_dict", "corrupt", ["APPEND"], "APPEND onto a dict",
        torch_zip(archive(Pickle(2).op(b"}").int(1).op(b"a").stop().bytes())))
    bad("pkl_setitem_on_list", "corrupt", ["SETITEM"], "SETITEM onto a list",
        torch_zip(archive(Pickle(2).op(b"]").str("k").int(1).op(b"s").stop().bytes())))
    deep = Pickle(2).op(b"]" * 10000 + b"a" * 9999).stop().bytes()
    bad("pkl_deep_nesting", "limit", ["nest"], "10,000 lists nested by APPEND", torch_zip(archive(deep)))
    deep_mark = Pickle(2).op(b"(" * 10000).op(b"t" * 10000).stop().bytes()
    bad("pkl_deep_marks", "limit", ["nest"], "10,000 nested MARK ... TUPLE", torch_zip(archive(deep_mark)))
    bad("pkl_binunicode_past_end", "corrupt", ["BINUNICODE"],
        "BINUNICODE declares 1 MiB (under the 64 MiB cap); the pickle has a few bytes left",
        torch_zip(archive(Pickle(2).op(b"X\x00\x00\x10\x00abc").stop().bytes())))
    bad("pkl_truncated_after_global", "corrupt", ["data.pkl"], "data.pkl ends right after a GLOBAL",
        torch_zip(archive(good[:good.find(b"_rebuild_tensor_v2\n") + len(b"_rebuild_tensor_v2\n")])))
    bad("pkl_persid_not_storage", "format", ["BINPERSID"], "BINPERSID over ('module!', FloatStorage, ...): not a storage id",
        torch_zip(archive(state_pickle([dict(BASE_TENSORS[0])]).replace(b"X\x07\x00\x00\x00storage",
                                                                       b"X\x07\x00\x00\x00module!"))))
    bad("pkl_unknown_opcode", "corrupt", ["opcode"], "byte 0xFF where an opcode is expected",
        with_item(lambda p: p.str("x").op(b"\xff")))
    qt = dict(BASE_TENSORS[0])
    bad("pkl_rebuild_qtensor", "unsupported", ["_rebuild_qtensor"], "a tensor built by _rebuild_qtensor",
        torch_zip(archive(state_pickle([qt]).replace(b"_rebuild_tensor_v2", b"_rebuild_qtensor"))))


# ---------------------------------------------------------------------------------------------
# Part C of issue 11: pickle globals (allowlist / unknown / dangerous) and DEFLATE members.

def raw_deflate(data, level=9):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def legacy_container(object_pickle, storages):
    """A pre-1.6 torch file written by hand: magic, protocol 1001, sys_info, `object_pickle`, the
    storage-key list, then each storage as an int64 element count and its bytes (formats.md §4)."""
    out = bytearray(Pickle(2).op(b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")).stop().bytes())
    out += Pickle(2).int(1001).stop().bytes()
    info = Pickle(2).op(b"}").mark().str("protocol_version").int(1001).str("little_endian").op(b"\x88")
    info.str("type_sizes").op(b"}").mark().str("short").int(2).str("int").int(4).str("long").int(4).op(b"u")
    out += info.op(b"u").stop().bytes()
    out += object_pickle
    keys = Pickle(2).op(b"]").mark()
    for key, _, _ in storages:
        keys.str(key)
    out += keys.op(b"e").stop().bytes()
    for _, numel, data in storages:
        out += struct.pack("<q", numel) + data
    return bytes(out)


def legacy_state_pickle(after_items, proto=2):
    """{'weight': FloatStorage '0' viewed as 3×4} + `after_items`, in the legacy 6-tuple id form."""
    p = Pickle(proto)
    p.op(b"}").mark().str("weight")
    p.glob("torch._utils", "_rebuild_tensor_v2").mark()
    p.mark().str("storage").glob("torch", "FloatStorage").str("0").str("cpu").int(12).op(b"N").op(b"t").op(b"Q")
    p.int(0).tuple_of((3, 4)).tuple_of((4, 1)).op(b"\x89").glob("collections", "OrderedDict").op(b")RtR")
    after_items(p)
    return p.op(b"u").stop().bytes()


def stack_global(p, module, name):
    """Protocol-4 STACK_GLOBAL: module and name as SHORT_BINUNICODE strings (dotted names allowed)."""
    for text in (module, name):
        raw = text.encode()
        p.op(b"\x8c" + bytes([len(raw)]) + raw)
    return p.op(b"\x93")


# Dotted names that Python resolves attribute by attribute (protocol 4), and names that run code,
# load native code, import modules or write files. (module, name, what the message must name)
DANGEROUS_GLOBALS = [
    ("genericpath", "os.system", "os.system"),
    ("torch", "os.system", "os.system"),
    ("collections", "_sys.exit", "sys.exit"),
    ("_ctypes", "dlopen", "_ctypes.dlopen"),
    ("_xxsubinterpreters", "run_string", "_xxsubinterpreters.run_string"),
    ("logging.config", "dictConfig", "logging.config.dictConfig"),
    ("torch.storage", "_load_from_bytes", "torch.storage._load_from_bytes"),
    ("torch.utils.cpp_extension", "load_inline", "torch.utils.cpp_extension.load_inline"),
    ("importlib.machinery", "SourceFileLoader", "importlib.machinery.SourceFileLoader"),
    ("_frozen_importlib_external", "SourceFileLoader", "_frozen_importlib_external.SourceFileLoader"),
    ("pathlib", "Path.write_text", "pathlib.Path.write_text"),
    ("codecs", "open", "codecs.open"),
    ("numpy", "save", "numpy.save"),
    ("zipfile", "ZipFile", "zipfile.ZipFile"),
    ("sqlite3", "connect", "sqlite3.connect"),
    ("tarfile", "open", "tarfile.open"),
]


def set_unknown_globals(name, globals_):
    """Records, for a valid case, the globals the reader must list as unknown (and --strict refuse)."""
    for c in CASES:
        if c["name"] == name:
            c["unknown_globals"] = sorted(globals_)
            return
    raise KeyError(name)


def pickle_allowlist_cases():
    def bad(name, kind, contains, description, blob, ext=".pt"):
        path = os.path.join(INVALID, name + ext)
        write_bytes(path, blob)
        add_invalid(name, path, kind, contains, description)

    # --- dangerous globals, each in a torch zip and in a legacy file (protocol 4, STACK_GLOBAL + REDUCE)
    for module, name, shown in DANGEROUS_GLOBALS:
        slug = (module + "_" + name).replace(".", "_").strip("_").lower()

        def evil(p, module=module, name=name):
            p.str("evil")
            stack_global(p, module, name).mark().str("echo pwned").op(b"tR")

        bad("pkl_global_" + slug, "unsafe", [module + "." + name, shown],
            f"torch zip; STACK_GLOBAL '{module}' '{name}' + REDUCE (resolves to {shown})",
            torch_zip(archive(state_pickle(BASE_TENSORS, after_items=evil, proto=4))))
        bad("legacy_global_" + slug, "unsafe", [module + "." + name, shown],
            f"legacy file; STACK_GLOBAL '{module}' '{name}' + REDUCE in the object pickle (resolves to {shown})",
            legacy_container(legacy_state_pickle(evil, proto=4), [("0", 12, BASE_A.tobytes())]), ext=".pth")
    # Python walks dotted names once a PROTO 4 opcode has been seen, and PROTO may come anywhere in the
    # stream: dotted names are refused whatever protocol the header claims.
    bad("pkl_global_dotted_protocol2", "unsafe", ["genericpath.os.system"],
        "GLOBAL 'genericpath' 'os.system' in a pickle whose header says protocol 2",
        torch_zip(archive(state_pickle(BASE_TENSORS, after_items=lambda p: (
            p.str("evil"), p.glob("genericpath", "os.system").mark().str("id").op(b"tR"))))))

    # --- unknown globals: Lightning-like checkpoints stay readable, their globals are listed
    fake = {}

    def module(name):
        m = types.ModuleType(name)
        fake[name] = m
        return m

    parsing = module("pytorch_lightning.utilities.parsing")
    for parent in ("pytorch_lightning", "pytorch_lightning.utilities"):
        module(parent)

    class AttributeDict(dict):
        pass
    AttributeDict.__module__, AttributeDict.__qualname__ = parsing.__name__, "AttributeDict"
    parsing.AttributeDict = AttributeDict
    dictconfig = module("omegaconf.dictconfig")
    module("omegaconf")

    class DictConfig:
        def __init__(self, content):
            self._content = content
    DictConfig.__module__, DictConfig.__qualname__ = dictconfig.__name__, "DictConfig"
    dictconfig.DictConfig = DictConfig

    class Outer:  # a nested class: protocol 4 writes the qualname 'Outer.Inner'
        class Inner:
            pass
    Outer.__module__, Outer.__qualname__ = parsing.__name__, "Outer"
    Outer.Inner.__module__, Outer.Inner.__qualname__ = parsing.__name__, "Outer.Inner"
    parsing.Outer = Outer
    sys.modules.update(fake)
    import argparse

    gen = torch.Generator().manual_seed(11)
    state = OrderedDict()
    state["model.encoder.weight"] = sample(torch.float32, (3, 4), gen)
    state["model.encoder.bias"] = sample(torch.float16, (3,), gen)
    hparams = AttributeDict(lr=1e-4, layers=2)
    ckpt = {
        "epoch": 1, "global_step": 20, "pytorch-lightning_version": "2.1.0", "state_dict": state,
        "hyper_parameters": hparams, "hparams_namespace": argparse.Namespace(lr=1e-4, name="run"),
        "config": DictConfig({"model": {"width": 4}}),
    }
    lightning_unknown = ["argparse.Namespace", "omegaconf.dictconfig.DictConfig",
                         "pytorch_lightning.utilities.parsing.AttributeDict"]
    path = os.path.join(VALID, "zip_lightning_hparams.ckpt")
    torch.save(ckpt, path)
    add_valid("zip_lightning_hparams", path, flatten_state(torch.load(path, weights_only=False)), "torch-zip",
              "Lightning-like checkpoint with AttributeDict hyper_parameters, argparse.Namespace and an omegaconf "
              "DictConfig: readable, its globals listed as unknown", prefix="zip_lightning_hparams", check_against=state)
    set_unknown_globals("zip_lightning_hparams", lightning_unknown)
    path = os.path.join(VALID, "legacy_lightning_hparams.ckpt")
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    add_valid("legacy_lightning_hparams", path, flatten_state(torch.load(path, weights_only=False)), "torch-legacy",
              "the same Lightning-like checkpoint in the legacy format", check_against=state)
    set_unknown_globals("legacy_lightning_hparams", lightning_unknown)
    path = os.path.join(VALID, "zip_nested_class_protocol4.pt")
    torch.save({"w": state["model.encoder.weight"], "meta": Outer.Inner()}, path, pickle_protocol=4)
    add_valid("zip_nested_class_protocol4", path, flatten_state(torch.load(path, weights_only=False)), "torch-zip",
              "protocol 4: a nested class written as the dotted qualname 'Outer.Inner' (unknown, not dangerous)",
              prefix="zip_nested_class_protocol4")
    set_unknown_globals("zip_nested_class_protocol4", ["pytorch_lightning.utilities.parsing.Outer.Inner"])
    for name in fake:
        del sys.modules[name]
    set_unknown_globals("zip_handmade", [])
    set_unknown_globals("legacy", [])
    set_unknown_globals("zip_lightning", ["pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"])

    # --- DEFLATE members: a real torch.save file re-packed by Python's zipfile (torch.load reads it)
    gen = torch.Generator().manual_seed(12)
    sd = OrderedDict(weight=sample(torch.float32, (8, 16), gen), bias=sample(torch.float16, (8,), gen),
                     ids=torch.arange(10, dtype=torch.int64), zeros=torch.zeros(300, dtype=torch.float32))
    sd["weight_t"] = sd["weight"].t()
    buf = io.BytesIO()
    torch.save(sd, buf)
    import zipfile
    repacked = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, \
            zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0)), src.read(info.filename),
                         compress_type=zipfile.ZIP_DEFLATED)
    path = os.path.join(VALID, "zip_deflate_repacked.pt")
    write_bytes(path, repacked.getvalue())
    with zipfile.ZipFile(path) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    add_valid("zip_deflate_repacked", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "a torch.save file re-packed by Python zipfile with every member DEFLATE-compressed (data.pkl and "
              "data/*): inflated, bounded by the declared sizes, CRC checked", prefix="archive", check_against=sd)
    set_unknown_globals("zip_deflate_repacked", [])

    # The miniz-layout base with data/0 alone deflated (was refused before issue 11).
    e = archive(state_pickle(BASE_TENSORS))
    e[2] = Entry("archive/data/0", BASE_A.tobytes(), method=8, compressed=raw_deflate(BASE_A.tobytes()))
    path = os.path.join(VALID, "zip_deflate_data_record.pt")
    write_bytes(path, torch_zip(e))
    add_valid("zip_deflate_data_record", path, flatten_state(torch.load(path, weights_only=True)), "torch-zip",
              "the hand-built base with data/0 DEFLATE-compressed (method 8) behind torch's data descriptor",
              prefix="archive")

    e = archive(state_pickle(BASE_TENSORS))
    e[2] = Entry("archive/data/0", BASE_A.tobytes(), method=8, compressed=raw_deflate(BASE_A.tobytes()))
    e[2].crc ^= 0x5A5A
    bad("zip_deflate_bad_crc", "corrupt", ["data/0", "CRC"], "data/0 is DEFLATE and its CRC-32 is wrong",
        torch_zip(e))
    e = archive(state_pickle(BASE_TENSORS))
    e[2] = Entry("archive/data/0", BASE_A.tobytes(), method=8, compressed=raw_deflate(BASE_A.tobytes())[:-6])
    bad("zip_deflate_truncated_stream", "corrupt", ["data/0", "DEFLATE"], "data/0's DEFLATE stream is cut short",
        torch_zip(e))
    e = archive(state_pickle(BASE_TENSORS))
    e[2] = Entry("archive/data/0", BASE_A.tobytes(), method=8, compressed=raw_deflate(BASE_A.tobytes() + b"\0" * 8))
    bad("zip_deflate_longer_than_declared", "corrupt", ["data/0", "more than the declared 48"],
        "data/0 declares 48 bytes but its DEFLATE stream inflates to 56", torch_zip(e))
    zeros = bytes(64 << 20)
    bomb_tensor = [dict(name="bomb", storage="FloatStorage", key="0", numel=16 << 20, offset=0, shape=(16 << 20,),
                        stride=(1,))]
    e = archive(state_pickle(bomb_tensor), records={"0": b""})
    e[2] = Entry("archive/data/0", zeros, method=8, compressed=raw_deflate(zeros))
    bad("zip_deflate_bomb", "limit", ["data/0", "zip bomb"],
        "data/0 is 64 MiB of zeros deflated to 64 KB (1000×): refused before anything is inflated",
        torch_zip(e))
    e = archive(state_pickle(BASE_TENSORS))
    e[0] = Entry("archive/data.pkl", e[0].data, method=12, compressed=e[0].data)
    bad("zip_bzip2_data_pkl", "unsupported", ["data.pkl", "method 12"],
        "data.pkl uses compression method 12 (bzip2), which torch cannot read either", torch_zip(e))


def object_pickle_middle(blob):
    """Offset halfway through the 4th pickle of a legacy file (pickletools only walks opcodes)."""
    import pickletools
    f = io.BytesIO(blob)
    for _ in range(3):
        for _ in pickletools.genops(f):
            pass
    start = f.tell()
    for _ in pickletools.genops(f):
        pass
    return (start + f.tell()) // 2


def torch_unsupported_cases():
    """Files torch writes and reads that use features we deliberately refuse."""
    def bad(name, kind, contains, description, obj, **kw):
        path = os.path.join(INVALID, name + ".pt")
        torch.save(obj, path, **kw)
        add_invalid(name, path, kind, contains, description, "torch.load reads it")

    bad("torch_float8_e4m3fnuz", "unsupported", ["float8_e4m3fnuz"], "a v3 dtype our DType lacks",
        {"x": torch.zeros(4).to(torch.float8_e4m3fnuz)})
    bad("torch_complex128", "unsupported", ["ComplexDouble"], "ComplexDoubleStorage (no safetensors dtype)",
        {"x": torch.zeros(2, dtype=torch.complex128)})
    bad("torch_quantized", "unsupported", ANY("_rebuild_qtensor", "QInt8Storage", "quantized"),
        "a quantize_per_tensor tensor (the reader may stop at the QInt8Storage or at _rebuild_qtensor)",
        {"x": torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)})
    bad("torch_sparse", "unsupported", ["_rebuild_sparse_tensor"], "a sparse COO tensor",
        {"x": torch.eye(3).to_sparse()})

    # Legacy format truncated in the raw storages and inside the object pickle.
    buf = io.BytesIO()
    torch.save({"a": torch.arange(16, dtype=torch.float32), "b": torch.ones(3, dtype=torch.float16)}, buf,
               _use_new_zipfile_serialization=False)
    blob = buf.getvalue()
    for name, cut, kind, contains, desc in (
            ("legacy_truncated_storages", len(blob) - 10, "corrupt", ["storage"],
             "legacy file cut 10 bytes before the end of its raw storages"),
            ("legacy_truncated_pickle", object_pickle_middle(blob), "corrupt", ["truncated"],
             "legacy file cut in the middle of its object pickle (the 4th of 5)")):
        path = os.path.join(INVALID, name + ".pth")
        write_bytes(path, blob[:cut])
        add_invalid(name, path, kind, contains, desc)

    for name, blob, kind, contains, desc in (
            ("empty_file", b"", "format", ["empty"], "a 0-byte file"),
            ("random_bytes", bytes((i * 73 + 11) % 256 for i in range(256)), "format", ["format"],
             "256 bytes that are no known format")):
        path = os.path.join(INVALID, name + ".bin")
        write_bytes(path, blob)
        add_invalid(name, path, kind, contains, desc)


def sharded_invalid_cases():
    gen = torch.Generator().manual_seed(5)
    shard = {"w": sample(torch.float32, (2, 2), gen), "v": sample(torch.float32, (3,), gen)}

    def make(name, weight_map, files, kind, contains, desc, raw_index=None):
        folder = os.path.join(INVALID, name)
        os.makedirs(folder, exist_ok=True)
        for fname, tensors in files.items():
            save_file(tensors, os.path.join(folder, fname))
        index = os.path.join(folder, "model.safetensors.index.json")
        with open(index, "w") as f:
            f.write(raw_index if raw_index is not None else json.dumps({"metadata": {}, "weight_map": weight_map}))
        add_invalid(name, index, kind, contains, desc)

    make("sharded_missing_shard", {"shard_w": "a.safetensors", "shard_v": "b.safetensors"}, {"a.safetensors": {"shard_w": shard["w"]}},
         "io", ["b.safetensors"], "the index names b.safetensors, which does not exist")
    make("sharded_wrong_shard", {"shard_w": "a.safetensors", "shard_v": "a.safetensors"},
         {"a.safetensors": {"shard_w": shard["w"]}, "b.safetensors": {"shard_v": shard["v"]}},
         "corrupt", ["shard_v"], "the index puts 'shard_v' in a.safetensors; it is in b.safetensors")
    make("sharded_path_traversal", {"shard_w": "../a.safetensors"}, {"a.safetensors": {"shard_w": shard["w"]}},
         "unsafe", [".."], "the index names '../a.safetensors'")
    make("sharded_index_not_json", {}, {"a.safetensors": {"shard_w": shard["w"]}}, "format", ["JSON"],
         "the index is not JSON", raw_index="weight_map: w -> a.safetensors")
    make("sharded_no_weight_map", {}, {"a.safetensors": {"shard_w": shard["w"]}}, "format", ["weight_map"],
         "the index has no weight_map", raw_index=json.dumps({"metadata": {"total_size": 16}}))


# ---------------------------------------------------------------------------------------------
# Part A of issue 11: inputs that used to crash the tool or blow up its time and memory.

def crash_and_blowup_cases():
    # Zero-element tensors whose other dimensions overflow any stride product: safetensors and
    # torch load them (as empty tensors), so we must too. The expected file is the input itself
    # (no data bytes; torch cannot re-save shapes whose strides overflow).
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    header["empty_wide"] = {"dtype": "F32", "shape": [0, 2**32, 2**32], "data_offsets": [0, 0]}
    header["empty_deep"] = {"dtype": "F16", "shape": [0, 3, 1, 2**62], "data_offsets": [0, 0]}
    header["one"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    blob = st_bytes(header, np.array([2.5], np.float32).tobytes())
    path = os.path.join(VALID, "st_zero_elements_huge_dims.safetensors")
    write_bytes(path, blob)
    exp_path = os.path.join(EXPECTED, "st_zero_elements_huge_dims.safetensors")
    write_bytes(exp_path, blob)
    with safetensors.safe_open(path, "pt") as f:  # the reference reads the header and the data
        assert list(f.keys()) == sorted(k for k in header if k != "__metadata__")
        assert f.get_tensor("one").tolist() == [2.5]
    CASES.append(OrderedDict(
        name="st_zero_elements_huge_dims", kind="valid", path=rel(path),
        description="zero-element tensors [0, 2^32, 2^32] and [0, 3, 1, 2^62] (their stride products overflow; "
                    "safetensors reads the header, torch builds the first) beside one real tensor",
        expected=rel(exp_path), format="safetensors",
        tensors=[OrderedDict(name=k, dtype=v["dtype"], shape=v["shape"]) for k, v in header.items() if k != "__metadata__"],
        metadata={"format": "pt"}))

    # Model reports (`inspect`) on degenerate shapes: the files are valid weights; the CLI test
    # checks that inspect explains instead of trapping.
    def model_case(name, tensors, description):
        path = os.path.join(VALID, name + ".safetensors")
        save_file(tensors, path, metadata={"format": "pt"})
        add_valid(name, path, OrderedDict(load_file(path)), "safetensors", description, metadata={"format": "pt"})

    unet = "model.diffusion_model."
    model_case("st_sd_downsampler_at_block0", {
        unet + "input_blocks.0.0.op.weight": torch.zeros(2), unet + "input_blocks.1.0.in_layers.0.weight": torch.zeros(2),
        unet + "output_blocks.0.0.in_layers.0.weight": torch.zeros(2)},
        "an LDM UNet whose first downsampler is input_blocks.0 (layers per block would be -1); inspect reports it")
    model_case("st_sd_block_index_int_min", {
        unet + "input_blocks.-9223372036854775808.0.op.weight": torch.zeros(2),
        unet + "input_blocks.1.0.in_layers.0.weight": torch.zeros(2)},
        "an LDM UNet block numbered -2^63; inspect reports it")
    model_case("st_clip_empty_position_embedding", {
        "vision_model.embeddings.patch_embedding.weight": torch.zeros(4, 3, 2, 2),
        "vision_model.embeddings.position_embedding.weight": torch.zeros(0, 4),
        "vision_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(8, 4),
        "text_projection.weight": torch.zeros(4, 4),
        "text_model.embeddings.token_embedding.weight": torch.zeros(10, 4),
        "text_model.embeddings.position_embedding.weight": torch.zeros(5, 4),
        "text_model.encoder.layers.0.mlp.fc1.weight": torch.zeros(8, 4)},
        "a CLIP whose vision position embedding has 0 rows; inspect reports it")

    # "Billion laughs" on names: sub-dicts shared through the memo are walked once per reference.
    def bad(name, kind, contains, description, blob):
        path = os.path.join(INVALID, name + ".pt")
        write_bytes(path, blob)
        add_invalid(name, path, kind, contains, description)

    tensor = dict(storage="FloatStorage", key="0", numel=12, offset=0, shape=(3, 4), stride=(4, 1))

    def laughs(levels, keys, leaf_keys, key_bytes=None):
        """A leaf dict of `leaf_keys` → one shared tensor, then `levels` dicts, each mapping every
        key in `keys` to the dict below (memo GETs, so each level costs a few bytes)."""
        p = Pickle(2)
        slots = iter(range(1 << 30))
        put = lambda: p.op(b"r" + struct.pack("<I", next_slot.append(next(slots)) or next_slot[-1]))
        next_slot = []
        get = lambda slot: p.op(b"j" + struct.pack("<I", slot))
        key_slots = []
        for k in (keys if key_bytes else []):  # long keys: pickled once, fetched from the memo
            p.str(k * key_bytes)
            put()
            key_slots.append(next_slot[-1])
            p.op(b"0")
        p.op(b"}")
        put()
        below = next_slot[-1]
        p.mark().str(leaf_keys[0])
        emit_tensor(p, tensor)
        put()
        shared_tensor = next_slot[-1]
        for k in leaf_keys[1:]:
            p.str(k)
            get(shared_tensor)
        p.op(b"u0")
        for _ in range(levels):
            p.op(b"}")
            put()
            level = next_slot[-1]
            p.mark()
            for i, k in enumerate(keys):
                if key_bytes:
                    get(key_slots[i])
                else:
                    p.str(k)
                get(below)
            p.op(b"u0")
            below = level
        get(below)
        return torch_zip(archive(p.stop().bytes(), records={"0": BASE_A.tobytes()}))

    bad("pkl_shared_dicts_deep", "limit", ["names exceed", "shared"],
        "40 levels of dicts each holding the one below twice: 2^40 names from 2 KB", laughs(40, ["a", "b"], ["w"]))

    # Shared dicts of int-keyed entries: nothing is named, but every reference is walked again.
    p = Pickle(2)
    p.op(b"}r" + struct.pack("<I", 0)).mark()
    for i in range(1000):
        p.op(b"M" + struct.pack("<H", i) + b"N")
    p.op(b"u0")
    for level in (1, 2):
        p.op(b"}r" + struct.pack("<I", level)).mark()
        for i in range(100):
            p.str(f"d{i}").op(b"j" + struct.pack("<I", level - 1))
        p.op(b"u0")
    p.op(b"j" + struct.pack("<I", 2)).stop()
    bad("pkl_shared_dicts_visits", "limit", ["visited", "shared"],
        "100 × 100 references to one dict of 1000 int-keyed entries: 10 M entries to walk from 6 KB, none named",
        torch_zip(archive(p.bytes(), records={})))
    bad("pkl_shared_dicts_long_keys", "limit", ["names exceed", "shared"],
        "14 levels of {K1: below, K2: below} with 30 KB keys: 16 Ki names of 420 KB each",
        laughs(14, ["k", "q"], ["w"], key_bytes=30_000))
    bad("pkl_shared_dicts_wide", "limit", ["tensor names", "shared"],
        "a dict of 1000 references to one tensor, referenced 300 times: 300 K names from 16 KB",
        laughs(1, [f"r{i}" for i in range(300)], [f"t{i}" for i in range(1000)]))

    # TorchScript sources inflated from a few KB of DEFLATE each (torch stores them uncompressed).
    code = b"\n" * (16 << 20)
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = packed.compress(code) + packed.flush()
    entries = archive(state_pickle(BASE_TENSORS)) + [Entry("archive/constants.pkl", b"\x80\x02).")]
    for i in range(16):
        entries.append(Entry(f"archive/code/__torch__/bomb{i}.py", code, method=8, compressed=deflated))
    bad("ts_code_inflation", "limit", ["TorchScript sources", "bomb0"],
        "16 code/ members of 16 MiB of newlines, each a 16 KB DEFLATE stream (256 MiB of text from 260 KB)",
        torch_zip(entries))


README_INTRO = """# formats/: the file-format conformance corpus

Generated by `tools/make_formats.py` (run it with the reference venv:
`HF_HUB_OFFLINE=1 .pyref/bin/python tools/make_formats.py`); do not edit by hand. This README's
tables are written by the generator too.

- `valid/`: files written by the real libraries (torch {torch}, safetensors {safetensors}), plus a few
  hand-built ones that torch (`weights_only=True`) or Python safetensors load.
- `expected/<case>.safetensors`: for each valid case, the tensors *as the library read them back*
  (`torch.load`, `torch.jit.load(...).state_dict()`, `safetensors.torch.load_file`), made contiguous,
  with the same names and dtypes. Every dtype our `DType` knows can be stored by Python safetensors,
  so no byte views were needed; dtypes outside that set (float8 fnuz, complex128, quantized, sparse)
  appear only as `unsupported` invalid cases.
- `invalid/`: malformed and malicious files. Each is a known-good base (`st_handmade`,
  `zip_handmade`, a real torch or legacy file) with exactly one defect, so the expected error is
  specific. Zips are laid out byte by byte the way torch's miniz writer does it; malicious pickles are
  written opcode by opcode and never unpickled in Python.
- `manifest.json`: one entry per case. Valid: `path`, `expected`, `format` (a `WeightFormat` raw
  value; `null` = not asserted), `prefix` (the torch archive prefix, expected in
  `WeightStore.metadata["prefix"]`), `metadata` (safetensors `__metadata__`, each pair must be
  present), `tensors` (name, dtype, shape) and, for torch files, `unknown_globals` (the pickle globals
  the reader must list as unknown and `--strict` refuse; `[]` = all allowlisted). Invalid: `error_kind` (a `WeightsError.Kind`) and
  `message_contains` (all must occur, case-insensitively, in the error's description
  `file: location: message`) or `message_contains_any` (one must occur, where a reader may
  legitimately stop at either of two places). Safetensors attacks also record what Python
  safetensors does with the file (`reference_behaviour`).

Used by `Tests/WeightsIOTests/ConformanceTests.swift` (reads every case; valid cases must match the
expected tensors byte for byte and survive a write/read round trip; invalid cases must throw the
expected kind within 2 s) and `tools/interop.sh` (runs `sdsclip convert` on every case and checks the
outputs with Python safetensors; invalid cases must exit 1...127 with a message and leave no file).

## Conventions

- Tensor names follow formats.md §2.6: unwrap `state_dict` (repeatedly), flatten nested string-keyed
  dicts with `.`, skip non-string keys and non-tensor values (lists, ints, strings, Lightning
  callbacks). TorchScript names are `state_dict()` keys.
- How an expected error kind was chosen: `format` = the container or header cannot be parsed or
  breaks a rule of its grammar (not JSON, a wrong JSON type or value, no end-of-central-directory,
  entries outside the prefix, no data.pkl, a persistent id or storage key of the wrong shape); `corrupt` = a recognised container whose content is
  damaged or disagrees with itself (offsets, sizes, record lengths, references, extents, duplicate
  entries, and every malformed pickle stream: bad opcode, stack/memo misuse, truncation, bytes
  after STOP); `unsupported` = valid for torch/safetensors but a feature we refuse (compression
  other than DEFLATE, encryption, quantized/sparse tensors, dtypes outside `DType`, protocol-0 text opcodes);
  `unsafe` = a construct a Python loader would turn into code or a path escape (dangerous GLOBALs,
  also reached through dotted names such as `torch.os.system`, INST, EXT1, zip member and shard names with `..` or a leading `/`); `limit` = a
  safety limit (header size, nesting depth, entry count, rank); `io` = a file that cannot be opened
  (a missing shard).
- Message substrings are compared case-insensitively, with `-` read as a space.
- `zip_memo_ffffffff` is a **valid** case: `LONG_BINPUT 0xFFFFFFFF` is legal pickle (torch loads it);
  the reader must handle it without allocating a 4 G-slot memo.
- Not byte-stable on regeneration: the TorchScript archives (torch writes a random serialization id)
  and the legacy files (their storage keys are memory addresses); every other file is reproducible.
"""


def write_readme():
    lines = [README_INTRO.format(torch=torch.__version__, safetensors=safetensors.__version__)]
    lines.append("## Valid cases\n")
    lines.append("| case | file | format | what it exercises |\n| --- | --- | --- | --- |")
    for c in CASES:
        if c["kind"] == "valid":
            lines.append(f"| `{c['name']}` | `{c['path']}` | {c.get('format') or '(any)'} | {c['description']} |")
    lines.append("\n## Invalid cases\n")
    lines.append("| case | expected kind | text must contain | defect |\n| --- | --- | --- | --- |")
    for c in CASES:
        if c["kind"] == "invalid":
            subs = c.get("message_contains") or c.get("message_contains_any")
            joiner = " and " if "message_contains" in c else " or "
            shown = joiner.join("`" + x.replace("|", "/") + "`" for x in subs)
            lines.append(f"| `{c['name']}` | {c['error_kind']} | {shown} | {c['description'].replace('|', '/')} |")
    with open(os.path.join(ROOT, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    for d in (VALID, INVALID, EXPECTED):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    torch_valid_cases()
    safetensors_valid_cases()
    safetensors_handmade_cases()
    zip_handmade_cases()
    pickle_allowlist_cases()
    torch_unsupported_cases()
    sharded_invalid_cases()
    crash_and_blowup_cases()

    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for c in CASES:
        full = os.path.join(ROOT, c["path"])
        if os.path.isfile(full):
            assert os.path.getsize(full) < 1_000_000, c["path"]
    manifest = OrderedDict(
        generator="tools/make_formats.py",
        versions=OrderedDict(torch=torch.__version__, safetensors=safetensors.__version__, numpy=np.__version__),
        error_kinds=["io", "format", "unsupported", "unsafe", "limit", "corrupt"],
        cases=CASES,
    )
    with open(os.path.join(ROOT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    write_readme()
    valid = sum(c["kind"] == "valid" for c in CASES)
    total = 0
    for dirpath, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(dirpath, x)) for x in files)
    print(f"{valid} valid, {len(CASES) - valid} invalid cases, {total} bytes in formats/")


if __name__ == "__main__":
    main()
