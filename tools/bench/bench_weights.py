#!/usr/bin/env python3
"""Weights I/O benchmark: the Swift reader/converter and the Python reference, side by side in one run.

Checkpoint: tools/bench/make_bench_checkpoint.py (>= 1 GiB fp32, ~1000 tensors, SD-UNet-like shapes),
as safetensors and as a torch zip, generated once under bench-data/ (gitignored).

What is measured (best of --repeats, page cache warmed first by reading both files once):
- read: open the file and, for every tensor, get its values as float32 and sum them (one float32 sum per
  tensor, totalled in float64). The sum makes every byte pass through the CPU; the totals of both sides
  must agree (a sanity check that they read the same data).
    Swift:  `sdsclip-bench weights-read PATH` (WeightsReader.open; zero-copy mmap, single thread)
    Python: safetensors.safe_open + get_tensor(name).sum() for the safetensors file;
            torch.load(mmap=True, weights_only=True) + t.sum() for the torch zip;
            torch.set_num_threads(1), the same thread count as Swift.
- convert: read the checkpoint, write one safetensors file.
    Swift:  `sdsclip-bench weights-convert IN OUT` (WeightsConverter.convert, what `sdsclip convert`
            runs: temp file + rename; packed tensors copied file to file by the kernel, no fsync).
    Python: torch.load(IN, weights_only=True) + safetensors.torch.save_file(sd, OUT) (for the
            safetensors input: safetensors.torch.load_file + save_file). No fsync.
  A second row per input compares equal durability: Swift `sdsclip convert --fsync` (fsync of file and
  folder) against the Python route followed by os.fsync.
  The two outputs must be byte-identical. The previous output is deleted before each run (untimed).
  A third case converts 128 MiB of transposed views (torch zip; Python packs them with .contiguous()).
- peak RSS: each route runs in a fresh process; its VmHWM (peak resident set, which counts mapped file
  pages it touched) as a fraction of the checkpoint's file size.
- --cold (root only): the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every
  timed run, so both sides read the checkpoint from disk, as when converting a file that is not in
  memory. Each run is then its own process (no warm-up); the figure is the best of --repeats runs.

Ratios are Python seconds / Swift seconds, so > 1 means Swift is faster.
Targets (issue "Weights I/O"): read ratio >= 1 against safe_open for both formats; convert ratio >= 2;
convert peak RSS < 25% of the file size.

Usage: tools/bench/bench_weights.py [--repeats N] [--cold] [--bin PATH/TO/sdsclip-bench] [--data bench-data]
Without --bin it builds the release product with the scratch path .build-release.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ---------------------------------------------------------------- child side (one route per process)

def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def child(route, args, repeats, cold):
    import torch
    torch.set_num_threads(1)
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    def read_safetensors(path):
        total = 0.0
        with safe_open(path, "pt") as f:
            for name in f.keys():
                total += float(f.get_tensor(name).float().sum())
        return total

    def read_torch(path):
        state = torch.load(path, mmap=True, weights_only=True)
        return sum(float(t.float().sum()) for t in state.values())

    def convert(source, output, durable):
        if source.endswith(".safetensors"):
            state = load_file(source)
        else:
            state = torch.load(source, weights_only=True)
        # Views (transposes) must be packed before save_file; a no-op for packed tensors.
        save_file({k: v.contiguous() for k, v in state.items()}, output, metadata={"format": "pt"})
        if durable:  # what the Swift writer guarantees before its rename: the data is on disk
            fd = os.open(output, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    best = float("inf")
    checksum = None
    if route in ("read-safetensors", "read-torch"):
        body = read_safetensors if route == "read-safetensors" else read_torch
        if not cold:
            body(args[0])  # warm-up, as the Swift side does
        for _ in range(repeats):
            start = time.perf_counter()
            checksum = body(args[0])
            best = min(best, time.perf_counter() - start)
    elif route in ("convert", "convert-fsync"):
        for _ in range(repeats):
            if os.path.exists(args[1]):
                os.remove(args[1])
            start = time.perf_counter()
            convert(args[0], args[1], durable=route == "convert-fsync")
            best = min(best, time.perf_counter() - start)
    else:
        raise SystemExit(f"unknown route {route}")
    print(json.dumps({"seconds": best, "checksum": checksum, "peak_rss": peak_rss(), "threads": 1}))


# ---------------------------------------------------------------- driver

def run_json(command):
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def drop_page_cache():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(command, repeats, cold):
    """command(repeats, cold) -> argv. Warm: one process, best of `repeats` inside it. Cold: `repeats`
    processes of one run each, the page cache dropped before each; the best time, the highest RSS."""
    if not cold:
        return run_json(command(repeats, False))
    runs = []
    for _ in range(repeats):
        drop_page_cache()
        runs.append(run_json(command(1, True)))
    best = dict(min(runs, key=lambda run: run["seconds"]))
    best["peak_rss"] = max(run["peak_rss"] for run in runs)
    return best


def python_route(route, *args, repeats, cold=False):
    return timed(lambda n, c: [sys.executable, os.path.abspath(__file__), "--child", route, "--repeats", str(n),
                               *(["--cold"] if c else []), *args], repeats, cold)


def swift_read(binary, path, repeats, cold=False):
    return timed(lambda n, c: [binary, "weights-read", path, str(n), *(["cold"] if c else [])], repeats, cold)


def swift_convert(binary, source, output, repeats, durable=False, cold=False):
    return timed(lambda n, c: [binary, "weights-convert", source, output, str(n), "keep", "durable" if durable else "atomic"],
                 repeats, cold)


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(16 << 20), fb.read(16 << 20)
            if x != y:
                return False
            if not x:
                return True


def build_bench():
    scratch = os.path.join(ROOT, ".build-release")
    subprocess.run(["swift", "build", "-c", "release", "--product", "sdsclip-bench", "--scratch-path", scratch],
                   cwd=ROOT, check=True, stdout=sys.stderr)
    bin_path = subprocess.run(["swift", "build", "-c", "release", "--scratch-path", scratch, "--show-bin-path"],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(bin_path, "sdsclip-bench")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bin", help="a built sdsclip-bench (default: build the release product)")
    parser.add_argument("--data", default=os.path.join(ROOT, "bench-data"))
    parser.add_argument("--cold", action="store_true", help="drop the page cache before every timed run (root only)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        return child(args.child, rest, args.repeats, args.cold)
    if args.cold and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        raise SystemExit("--cold drops the page cache before every run (echo 3 > /proc/sys/vm/drop_caches): run it as root")

    subprocess.run([sys.executable, os.path.join(HERE, "make_bench_checkpoint.py"), "--out", args.data],
                   check=True, stdout=sys.stderr)
    binary = args.bin or build_bench()
    st = os.path.join(args.data, "weights-1g.safetensors")
    pt = os.path.join(args.data, "weights-1g.pt")
    cold, n = args.cold, args.repeats
    if cold:
        print(f"cold page cache (dropped before every run); best of {n} runs; 1 thread on both sides", file=sys.stderr)
    else:
        for path in (st, pt):
            warm(path)
        print(f"page cache warmed (both files read once); best of {n}; 1 thread on both sides", file=sys.stderr)
    rows = []  # (label, file size, swift result, python result, python label)
    failures = []

    def add(label, size, swift, python, python_label, check_sum=True):
        rows.append((label, size, swift, python, python_label))
        if check_sum and abs(swift["checksum"] - python["checksum"]) > 0.05 + 1e-4 * abs(python["checksum"]):
            failures.append(f"{label}: checksums differ: Swift {swift['checksum']}, Python {python['checksum']}")

    size_st, size_pt = os.path.getsize(st), os.path.getsize(pt)
    swift_st = swift_read(binary, st, n, cold)
    py_st = python_route("read-safetensors", st, repeats=n, cold=cold)
    add("read safetensors", size_st, swift_st, py_st, "safe_open")
    swift_pt = swift_read(binary, pt, n, cold)
    py_pt = python_route("read-torch", pt, repeats=n, cold=cold)
    add("read torch zip", size_pt, swift_pt, py_pt, "torch.load(mmap)")
    add("read torch zip", size_pt, swift_pt, py_st, "safe_open (.safetensors)")

    out_swift = os.path.join(args.data, "out-swift.safetensors")
    out_python = os.path.join(args.data, "out-python.safetensors")
    views = os.path.join(args.data, "weights-views.pt")
    if not cold:
        warm(views)
    for source, size, python_label in ((pt, size_pt, "torch.load+save_file"), (st, size_st, "load_file+save_file"),
                                       (views, os.path.getsize(views), "torch.load+contiguous+save")):
        swift = swift_convert(binary, source, out_swift, n, cold=cold)
        python = python_route("convert", source, out_python, repeats=n, cold=cold)
        label = "convert " + {pt: "torch zip", st: "safetensors", views: "views (.t())"}[source]
        add(label, size, swift, python, python_label, check_sum=False)
        if not same_bytes(out_swift, out_python):
            failures.append(f"{label}: Swift and Python outputs differ")
        # Equal durability on both sides (fsync before done): the file system's share of the time.
        swift_durable = swift_convert(binary, source, out_swift, n, durable=True, cold=cold)
        durable = python_route("convert-fsync", source, out_python, repeats=n, cold=cold)
        add(label + " (fsync)", size, swift_durable, durable, python_label + "+fsync", check_sum=False)
        for path in (out_swift, out_python):
            os.remove(path)

    print(f"{'work':<26} {'Python route':<26} {'Swift s':>8} {'Python s':>9} {'ratio':>6} "
          f"{'Swift RSS':>10} {'Python RSS':>11}")
    for label, size, swift, python, python_label in rows:
        print(f"{label:<26} {python_label:<26} {swift['seconds']:8.3f} {python['seconds']:9.3f} "
              f"{python['seconds'] / swift['seconds']:6.2f} {swift['peak_rss'] / size:10.1%} {python['peak_rss'] / size:11.1%}")
    print(f"(file sizes: safetensors {size_st / 2**30:.2f} GiB, torch zip {size_pt / 2**30:.2f} GiB; "
          f"{'cold' if cold else 'warm'} page cache; ratio = Python s / Swift s; RSS = peak resident set / file size)")
    for failure in failures:
        print("FAIL: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
