"""Shared by the benchmark drivers: the repository root and the release build of a Swift product."""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def build(scratch, product="sdsclip-bench"):
    """Builds `product` in release mode under `scratch` and returns the path of the executable."""
    cmd = ["swift", "build", "-c", "release", "--product", product, "--scratch-path", scratch]
    print("+ " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, check=True)
    out = subprocess.run(cmd + ["--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True)
    return os.path.join(out.stdout.strip(), product)
