#!/usr/bin/env python3
"""Builds the seed corpus of one libFuzzer harness (fuzz/Sources/fuzz-NAME) from the project's own
files: formats/, fixtures/ and, when present, ../shared/real-peer/. Standard library only; nothing is
unpickled or imported from the files, they are only read as bytes or unzipped.

usage: tools/fuzz_seeds.py NAME OUT_DIR
"""
import hashlib
import os
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEPARATOR = b"\0--\0"          # FuzzInput.separator in fuzz/Sources/FuzzSupport
MAX_SEED = 256 * 1024         # larger seeds only slow every mutation down


def files(*folders):
    for folder in folders:
        base = os.path.join(ROOT, folder)
        for dirpath, _, names in os.walk(base):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    yield path


def head(path, count):
    with open(path, "rb") as f:
        return f.read(count)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def zip_members(path):
    """{member name: bytes} of a zip, or {} when it is not one Python can read."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()
                    if info.file_size <= MAX_SEED}
    except Exception:
        return {}


SOURCES = ("formats", "fixtures", "../shared/real-peer")


def seeds(name):
    everything = [p for p in files(*SOURCES) if os.path.getsize(p) <= 4 * MAX_SEED]
    if name == "safetensors":
        for p in everything:
            if p.endswith(".safetensors") and os.path.getsize(p) <= MAX_SEED:
                yield read(p)
    elif name == "zip":
        for p in everything:
            if head(p, 2) == b"PK" and os.path.getsize(p) <= MAX_SEED:
                yield read(p)
    elif name in ("pickle", "torchscript"):
        for p in everything:
            if p.endswith(".pkl") and name == "pickle":
                yield read(p)[:MAX_SEED]
            if head(p, 2) != b"PK":
                continue
            members = zip_members(p)
            data = [v for k, v in members.items() if k.endswith("/data.pkl")]
            if name == "pickle":
                yield from data
                yield from (v for k, v in members.items() if k.endswith("/constants.pkl"))
            elif data:
                constants = [v for k, v in members.items() if k.endswith("/constants.pkl")]
                code = [v for k, v in members.items() if "/code/" in k and k.endswith(".py")]
                if constants or code:
                    for source in code or [b""]:
                        yield data[0] + SEPARATOR + (constants[0] if constants else b"") + SEPARATOR + source
    elif name == "config":
        for p in everything:
            # Configurations are small; big JSON (benchmark files) only slows the YAML parser down.
            if p.endswith((".json", ".jsonl", ".yaml", ".yml")) and os.path.getsize(p) <= 32 * 1024:
                yield read(p)
    elif name == "vocabulary":
        for p in everything:
            if os.path.basename(p) == "vocab.json":
                merges = os.path.join(os.path.dirname(p), "merges.txt")
                if os.path.exists(merges):
                    yield read(p) + SEPARATOR + read(merges)
        # The built-in merges file's first lines, plain and as the start of a vocabulary.
        import gzip
        builtin = os.path.join(ROOT, "Sources/Models/Resources/bpe_simple_vocab_16e6.txt.gz")
        text = gzip.decompress(read(builtin))
        yield b"\n".join(text.split(b"\n")[:2000])
    else:
        sys.exit(f"unknown harness '{name}' (safetensors, zip, pickle, torchscript, config, vocabulary)")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    name, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    count = 0
    for seed in seeds(name):
        digest = hashlib.sha1(seed).hexdigest()
        target = os.path.join(out, digest)
        if not os.path.exists(target):
            with open(target, "wb") as f:
                f.write(seed)
            count += 1
    print(f"{name}: {count} new seeds in {out}")


if __name__ == "__main__":
    main()
