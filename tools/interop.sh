#!/usr/bin/env bash
# Interop checks against the real Python libraries; CI runs this after the Swift tests (.ci/run).
# Builds (or finds) the reference venv, builds the release CLI, then runs `sdsclip convert` on every
# case of the conformance corpus (formats/manifest.json) and checks the results with Python safetensors.
# Usage: tools/interop.sh [--only CASE ...]
# Environment: PYREF (venv folder, default .pyref), SCRATCH_PATH (SwiftPM scratch path, default .build).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${PYREF:-$ROOT/.pyref}
SCRATCH=${SCRATCH_PATH:-$ROOT/.build}

tools/pyref_setup.sh "$VENV" >&2
swift build -c release --product sdsclip --scratch-path "$SCRATCH" >&2
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/sdsclip"

HF_HUB_OFFLINE=1 "$VENV/bin/python" tools/interop_convert.py --cli "$BIN" --formats "$ROOT/formats" "$@"

# --- Stable Diffusion: `convert --layout diffusers` output loaded by diffusers from_pretrained ---------------
# (owner: SD models/loading; tools/interop_sd_convert.py). Runs after the corpus check above.
HF_HUB_OFFLINE=1 "$VENV/bin/python" tools/interop_sd_convert.py --cli "$BIN" --fixtures "$ROOT/fixtures/sd"

# --- SDS-CLIP fine-tune: the distilled CLIP (OUT/final) loaded by transformers CLIPModel.from_pretrained ------
# (owner: SDSTraining; tools/interop_finetune.py).
HF_HUB_OFFLINE=1 "$VENV/bin/python" tools/interop_finetune.py --cli "$BIN"

# --- CLIP export: `sdsclip export --layout hf|openclip` loaded by transformers and open_clip -----------------
# (owner: export; tools/interop_export.py).
HF_HUB_OFFLINE=1 "$VENV/bin/python" tools/interop_export.py --cli "$BIN"
