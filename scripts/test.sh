#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole Swift test suite (no Python needed).
# Extra arguments go to `swift test` (e.g. --filter CLIPCheckpointTests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
# The suite is XCTest only; --disable-swift-testing drops Swift Testing's empty "0 tests" summary.
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$LOG" || status=$?
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$LOG" | tail -n 1 || true)
if [ -n "$summary" ]; then
  total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
  failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
  echo "swift-tests: $((total - failed)) passed, $failed failed"
fi
exit "$status"
