#!/usr/bin/env bash
# Installs the Debian packages sdsclip builds against: OpenBLAS (GEMM), zlib (TorchScript code records,
# the tokenizer vocabulary, PNG writing), libjpeg-turbo and libpng (image decoding), libarchive (webdataset shards),
# Open MPI (data-parallel finetune under mpirun; the library is linked, mpirun runs the tests), oneDNN (a bf16
# GEMM route). Idempotent; needs root or sudo.
set -euo pipefail
PACKAGES=(libopenblas-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev libarchive-dev libopenmpi-dev openmpi-bin libdnnl-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
