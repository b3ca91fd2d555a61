#!/usr/bin/env bash
# Builds the release CLI and installs it as PREFIX/bin/sdsclip (default PREFIX: ~/.local).
#   scripts/install.sh                 # → ~/.local/bin/sdsclip
#   PREFIX=/usr/local scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-$HOME/.local}
scripts/install-deps.sh
swift build -c release --product sdsclip
BIN="$(swift build -c release --show-bin-path)/sdsclip"
mkdir -p "$PREFIX/bin"
# install(1) writes a new file and renames it, so a running sdsclip is never overwritten in place.
install -m 755 "$BIN" "$PREFIX/bin/sdsclip"
echo "installed $PREFIX/bin/sdsclip ($("$PREFIX/bin/sdsclip" --version 2>/dev/null || echo built))"
case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo "note: $PREFIX/bin is not on PATH; add it, e.g. export PATH=\"$PREFIX/bin:\$PATH\"" ;; esac
