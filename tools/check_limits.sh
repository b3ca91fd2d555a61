#!/usr/bin/env bash
# Runs `sdsclip inspect` and `sdsclip convert` on every file of formats/ and ../shared/real-peer/
# under /usr/bin/time -v and checks issue 11's bound: no input takes more than 2 s or 512 MiB, and
# none crashes (exit status >= 128, e.g. 132 for a trap, 135 for SIGBUS). Prints the worst time and
# the largest max RSS with the file behind each, and every file over a limit; exits 1 if any is.
#
#   tools/check_limits.sh                      # the debug build (.build/debug/sdsclip)
#   SDSCLIP=.build/release/sdsclip tools/check_limits.sh
#   tools/check_limits.sh DIR...               # other folders instead of the two corpora
set -u
cd "$(dirname "$0")/.."

SDSCLIP=${SDSCLIP:-.build/debug/sdsclip}
MAX_SECONDS=${MAX_SECONDS:-2}
MAX_KB=${MAX_KB:-$((512 * 1024))}
[ -x "$SDSCLIP" ] || { echo "error: $SDSCLIP is not built (swift build)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time (GNU time) is needed" >&2; exit 2; }

if [ $# -gt 0 ]; then roots=("$@"); else roots=(formats ../shared/real-peer); fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

worst_time=0 worst_time_run="" worst_rss=0 worst_rss_run="" runs=0 over=0
measure() {  # measure LABEL COMMAND...
    local label=$1; shift
    local report="$scratch/time.txt"
    # A hang must not stall the check: 20 s is ten times the bound. time(1) sits outside timeout(1),
    # so a killed run still reports its memory (the largest descendant's max RSS).
    /usr/bin/time -v -o "$report" timeout -s KILL 20 "$@" >/dev/null 2>"$scratch/stderr.txt"
    local status=$?
    local seconds kb
    seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$report" 2>/dev/null)
    kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$report" 2>/dev/null)
    seconds=${seconds:-20} kb=${kb:-0}
    [ "$status" -eq 137 ] && status="137 (killed after 20 s)"
    runs=$((runs + 1))
    if awk -v a="$seconds" -v b="$worst_time" 'BEGIN { exit !(a > b) }'; then worst_time=$seconds worst_time_run=$label; fi
    if [ "$kb" -gt "$worst_rss" ]; then worst_rss=$kb worst_rss_run=$label; fi
    local problem=""
    awk -v a="$seconds" -v m="$MAX_SECONDS" 'BEGIN { exit !(a > m) }' && problem="$problem ${seconds} s"
    [ "$kb" -gt "$MAX_KB" ] && problem="$problem $((kb / 1024)) MiB"
    case $status in
        0|1|2) ;;
        *) problem="$problem exit status $status" ;;
    esac
    if [ -n "$problem" ]; then
        over=$((over + 1))
        echo "OVER:$problem  $label"
        grep -m 2 -E 'error|Fatal|failure|crashed' "$scratch/stderr.txt" | cut -c 1-200 | sed 's/^/    /'
    fi
}

while IFS= read -r -d '' file; do
    case $file in *.md|*.tsv) continue ;; esac
    measure "inspect $file" "$SDSCLIP" inspect "$file"
    rm -rf "$scratch/out.safetensors"
    measure "convert $file" "$SDSCLIP" convert "$file" "$scratch/out.safetensors"
done < <(for root in "${roots[@]}"; do [ -d "$root" ] && find "$root" -type f -print0; done | sort -z)

echo "$runs runs of $SDSCLIP on ${roots[*]}"
echo "worst time:    ${worst_time} s  ($worst_time_run)"
echo "worst max RSS: $((worst_rss / 1024)) MiB  ($worst_rss_run)"
if [ "$over" -gt 0 ]; then
    echo "$over runs over ${MAX_SECONDS} s / $((MAX_KB / 1024)) MiB or crashed"
    exit 1
fi
echo "all within ${MAX_SECONDS} s and $((MAX_KB / 1024)) MiB, no crash"
