#!/usr/bin/env python3
"""Interop check of `sdsclip convert` against the real Python safetensors library.

For every case in formats/manifest.json:
- valid: `sdsclip convert CASE OUT.safetensors` must succeed, Python safetensors must load OUT, and
  its names, dtypes, shapes and bytes must equal the generator's expected tensors
  (formats/expected/<case>.safetensors); nothing but OUT may be left in the output folder.
- valid cases with many dtypes (CAST_CASES) are also converted with --dtype f32/f16/bf16: float tensors
  must equal torch's `.to(dtype)` of the expected tensors bit for bit; other dtypes must be kept.
- invalid: `convert` must exit with a status in 1...127 (not a signal, not 0), print a message on
  stderr, finish within the time limit and leave no file behind (no output, no temp file).

Usage: interop_convert.py --cli PATH/TO/sdsclip [--formats formats] [--only NAME ...]
Prints one line per failure and a closing `interop: N passed, M failed`; exit status 1 on failure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file

CAST_CASES = ("st_all_dtypes", "zip_all_dtypes", "zip_views")
CASTS = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
TIME_LIMIT = 30  # seconds per conversion; the corpus files are tiny, so this only catches hangs


def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def check_valid(cli, formats, case, workdir):
    out = os.path.join(workdir, "out.safetensors")
    proc = subprocess.run([cli, "convert", "--quiet", os.path.join(formats, case["path"]), out],
                          capture_output=True, text=True, timeout=TIME_LIMIT)
    if proc.returncode != 0:
        return f"convert exited {proc.returncode}: {proc.stderr.strip()[:300]}"
    left = sorted(os.listdir(workdir))
    if left != ["out.safetensors"]:
        return f"output folder holds {left}, expected only out.safetensors"
    if case.get("torch_builds_all") is False:
        return check_header_and_buildable(out, os.path.join(formats, case["expected"]))
    try:
        with safe_open(out, "pt") as f:
            names = list(f.keys())
        got = load_file(out)
    except Exception as e:  # noqa: BLE001 - report whatever Python safetensors says
        return f"Python safetensors cannot load the output: {type(e).__name__}: {e}"
    want = load_file(os.path.join(formats, case["expected"]))
    if set(names) != set(want):
        return f"names differ: missing {sorted(set(want) - set(names))}, unexpected {sorted(set(names) - set(want))}"
    for name, w in want.items():
        g = got[name]
        if g.dtype != w.dtype:
            return f"'{name}': dtype {g.dtype}, expected {w.dtype}"
        if tuple(g.shape) != tuple(w.shape):
            return f"'{name}': shape {tuple(g.shape)}, expected {tuple(w.shape)}"
        if raw(g) != raw(w):
            return f"'{name}': bytes differ"
    return None


def header_entries(path):
    """name -> (dtype, shape) from a safetensors header, read as plain JSON."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    return {k: (v["dtype"], v["shape"]) for k, v in header.items() if k != "__metadata__"}


def check_header_and_buildable(out, expected):
    """For files holding tensors torch cannot build (shapes whose stride products overflow): the
    output's header must list the expected names, dtypes and shapes, and every tensor torch can build
    must have the expected bytes."""
    got, want = header_entries(out), header_entries(expected)
    if got != want:
        return f"header entries differ: {got} vs {want}"
    with safe_open(out, "pt") as fo, safe_open(expected, "pt") as fe:
        for name in want:
            try:
                w = fe.get_tensor(name)
            except RuntimeError:
                continue  # torch cannot build it; the header comparison covers it
            if raw(fo.get_tensor(name)) != raw(w):
                return f"'{name}': bytes differ"
    return None


def check_casts(cli, formats, case, workdir):
    want = load_file(os.path.join(formats, case["expected"]))
    for flag, target in CASTS.items():
        out = os.path.join(workdir, f"out-{flag}.safetensors")
        proc = subprocess.run([cli, "convert", "--quiet", "--dtype", flag, os.path.join(formats, case["path"]), out],
                              capture_output=True, text=True, timeout=TIME_LIMIT)
        if proc.returncode != 0:
            return f"convert --dtype {flag} exited {proc.returncode}: {proc.stderr.strip()[:300]}"
        got = load_file(out)
        if set(got) != set(want):
            return f"--dtype {flag}: names differ"
        for name, w in want.items():
            ref = w.to(target) if w.dtype.is_floating_point else w
            g = got[name]
            if g.dtype != ref.dtype or tuple(g.shape) != tuple(ref.shape):
                return f"--dtype {flag}: '{name}' is {g.dtype} {tuple(g.shape)}, torch gives {ref.dtype} {tuple(ref.shape)}"
            if raw(g) != raw(ref):
                bad = (g.reshape(-1).view(torch.uint8 if g.element_size() == 1 else torch.int16 if g.element_size() == 2
                                          else torch.int32 if g.element_size() == 4 else torch.int64)
                       != ref.reshape(-1).view(torch.uint8 if g.element_size() == 1 else torch.int16 if g.element_size() == 2
                                               else torch.int32 if g.element_size() == 4 else torch.int64))
                i = int(bad.nonzero()[0])
                return (f"--dtype {flag}: '{name}' ({w.dtype} -> {target}) differs from torch at element {i}: "
                        f"source {w.reshape(-1)[i].item()!r}, ours {g.reshape(-1)[i].item()!r}, torch {ref.reshape(-1)[i].item()!r}")
        os.remove(out)
    return None


def check_invalid(cli, formats, case, workdir):
    out = os.path.join(workdir, "out.safetensors")
    proc = subprocess.run([cli, "convert", "--quiet", os.path.join(formats, case["path"]), out],
                          capture_output=True, text=True, timeout=TIME_LIMIT)
    problems = []
    if not 1 <= proc.returncode <= 127:
        problems.append(f"exit status {proc.returncode} (want 1...127)")
    if not proc.stderr.strip():
        problems.append("no message on stderr")
    left = os.listdir(workdir)
    if left:
        problems.append(f"left files behind: {left}")
    return "; ".join(problems) + f" — stderr: {proc.stderr.strip()[:200]}" if problems else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cli", required=True)
    parser.add_argument("--formats", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats"))
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    formats = os.path.normpath(args.formats)
    with open(os.path.join(formats, "manifest.json")) as f:
        cases = json.load(f)["cases"]
    if args.only:
        cases = [c for c in cases if c["name"] in args.only]

    passed = failed = 0
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="interop-") as workdir:
            check = check_valid if case["kind"] == "valid" else check_invalid
            try:
                problem = check(args.cli, formats, case, workdir)
                if problem is None and case["kind"] == "valid" and case["name"] in CAST_CASES:
                    os.remove(os.path.join(workdir, "out.safetensors"))
                    problem = check_casts(args.cli, formats, case, workdir)
            except subprocess.TimeoutExpired:
                problem = f"convert still running after {TIME_LIMIT} s (hang)"
        if problem:
            failed += 1
            print(f"FAIL {case['kind']} {case['name']}: {problem}")
        else:
            passed += 1
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
