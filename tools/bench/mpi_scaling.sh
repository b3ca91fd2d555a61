#!/usr/bin/env bash
# Data-parallel scaling of `sdsclip finetune` on this host: ranks 1, 2, 4 (mpirun --oversubscribe),
# per-rank batch fixed (weak scaling), one compute thread per rank (SDSCLIP_THREADS=1).
# Prints one table row per rank count: samples/s of the whole job (steps after the first, which loads
# caches), and the all-reduce share of step time on rank 0 (metrics.jsonl's allreduce_s over the step
# times from elapsed_s). Models: the demo fixtures (fixtures/demo/clip, fixtures/demo/sd); see the
# README's "Data parallelism" for what that measures and what it does not.
# Usage: tools/bench/mpi_scaling.sh [BINARY] [STEPS]   (BINARY default .build-release/release/sdsclip)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.build-release/release/sdsclip}
STEPS=${2:-12}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" example-data "$WORK/data" --count 256 --size 64 >/dev/null
ARGS=(finetune --clip fixtures/demo/clip --teacher fixtures/demo/sd --data "$WORK/data/train.jsonl"
      --latent-size 32 --batch-size 8 --steps "$STEPS" --checkpoint-every 1000 --warmup-steps 2 --seed 7 --log-every 1000)
echo "| ranks | global batch | samples/s (job) | step s | all-reduce s/step | all-reduce share |"
echo "| --- | --- | --- | --- | --- | --- |"
for ranks in 1 2 4; do
  out="$WORK/run-$ranks"
  if [ "$ranks" = 1 ]; then
    SDSCLIP_THREADS=1 "$BIN" "${ARGS[@]}" --out "$out" >/dev/null 2>&1
  else
    mpirun --oversubscribe --allow-run-as-root -x SDSCLIP_THREADS=1 -np "$ranks" "$BIN" "${ARGS[@]}" --out "$out" >/dev/null 2>&1
  fi
  python3 - "$out/metrics.jsonl" "$ranks" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ranks = int(sys.argv[2])
steady = lines[1:]
seconds = lines[-1]["elapsed_s"] - lines[0]["elapsed_s"]
samples = lines[-1]["samples"] - lines[0]["samples"]
reduce = sum(l.get("allreduce_s", 0.0) for l in steady)
per_step = seconds / len(steady)
print(f"| {ranks} | {lines[0]['samples']} | {samples / seconds:.1f} | {per_step:.3f} | {reduce / len(steady):.4f} | {100 * reduce / seconds:.1f} % |")
PY
done
