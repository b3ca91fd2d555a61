#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole Swift test suite (no Python needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
