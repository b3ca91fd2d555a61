#!/usr/bin/env bash
# Builds the offline, CPU-only Python reference stack (torch, transformers, diffusers, open_clip)
# used to generate fixtures and run interop checks. Never needed at run time or by `swift test`.
# Usage: tools/pyref_setup.sh [VENV_DIR]   (default: .pyref in the repository root)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${1:-$ROOT/.pyref}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, transformers, diffusers, open_clip, safetensors" 2>/dev/null; then
  echo "reference stack ready at $VENV"; exit 0
fi
python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
# The +cpu pin keeps every resolve on the local CPU wheel; without it pip pulls ~3 GB of CUDA wheels.
echo "torch==2.13.0+cpu" > "$CONSTRAINTS"
"$PIP" install -q -c "$CONSTRAINTS" "torch==2.13.0+cpu"
"$PIP" install -q -c "$CONSTRAINTS" transformers diffusers open_clip_torch safetensors ftfy regex pillow numpy
# PyPI's torchvision is a CUDA build; guard its two fake-op registrations so it imports on CPU torch.
TV=$("$VENV/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')/torchvision/_meta_registrations.py
sed -i -E 's/^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)$/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' "$TV"
if "$PIP" list 2>/dev/null | grep -i -E '^(nvidia-|cuda-|triton)'; then echo "CUDA packages crept in" >&2; exit 1; fi
HF_HUB_OFFLINE=1 "$VENV/bin/python" -c "
import torch, torchvision, transformers, diffusers, open_clip, safetensors
print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'open_clip', open_clip.__version__)
"
echo "reference stack ready at $VENV"
