#!/usr/bin/env bash
# Runs one libFuzzer harness for SECONDS: tools/fuzz.sh NAME SECONDS [libFuzzer flags...]
#   NAME: safetensors | zip | pickle | torchscript | config | vocabulary  (fuzz/Sources/fuzz-NAME)
# Builds fuzz/ (release, -sanitize=fuzzer,address), seeds fuzz/corpus/NAME from formats/, fixtures/
# and ../shared/real-peer/ (tools/fuzz_seeds.py), and fuzzes with one job. The corpus grows across
# runs; crashers land in fuzz/artifacts/NAME/ and the script exits non-zero. Each crasher then becomes a
# formats/ case (tools/make_formats.py) with its expected outcome.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -lt 2 ]; then
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  exit 64
fi
NAME=$1 SECONDS_TO_RUN=$2
shift 2
case "$NAME" in safetensors|zip|pickle|torchscript|config|vocabulary) ;; *) echo "fuzz.sh: unknown harness '$NAME'" >&2; exit 64 ;; esac
[[ "$SECONDS_TO_RUN" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number" >&2; exit 64; }

BUILD_LOG=$(mktemp)
# A failed build must stop the run: an older binary would fuzz code that is no longer there.
if ! (cd fuzz && swift build -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
      --product "fuzz-$NAME" > "$BUILD_LOG" 2>&1); then
  grep -v "Cannot export local symbol" "$BUILD_LOG" | grep -E "error" >&2
  rm -f "$BUILD_LOG"
  echo "fuzz.sh: the build of fuzz-$NAME failed" >&2
  exit 1
fi
grep -E "^Build" "$BUILD_LOG" || true
rm -f "$BUILD_LOG"
BINARY=$ROOT/fuzz/.build/release/fuzz-$NAME

CORPUS=$ROOT/fuzz/corpus/$NAME ARTIFACTS=$ROOT/fuzz/artifacts/$NAME
mkdir -p "$CORPUS" "$ARTIFACTS"
python3 tools/fuzz_seeds.py "$NAME" "$CORPUS"
LOG=$ROOT/fuzz/artifacts/$NAME.log
MAX_LEN=262144
[ "$NAME" = config ] && MAX_LEN=32768
# Swift's own backtracer is off so a trap reaches libFuzzer as a deadly signal. 2 GiB and 10 s per
# input bound the harness as the readers' own limits bind the tool: a slow or hungry input is a crasher too.
status=0
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0:malloc_context_size=0 "$BINARY" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -timeout=10 \
  -max_len=$MAX_LEN -print_final_stats=1 -artifact_prefix="$ARTIFACTS/" "$@" "$CORPUS" 2>&1 | tee "$LOG" \
  | grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|stat::" || status=$?
rm -rf "/dev/shm/sdsclip-fuzz-"* 2>/dev/null || true
crashers=$(find "$ARTIFACTS" -type f | wc -l)
final=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$LOG" | tail -1 || true)
echo "fuzz-$NAME: ${final:-no final stats} · crashers in $ARTIFACTS: $crashers"
[ "$crashers" -eq 0 ] || exit 1
