#!/usr/bin/env python3
"""Where a multi-threaded run leaves cores idle: the code that runs while every other thread sleeps.

Records a command with `perf record` (a CPU-clock sample every 4 ms on each thread, and every scheduler
switch), then replays the scheduler events to know, at each sample, which of the process's threads were
asleep (switched out in state S or D and not yet woken). A sample is *serial* when every other thread of
the process was asleep: that code ran on one core while the engine had others to offer. A thread that
was merely preempted (state R, another process took its core) does not count as asleep, so the result
holds on a loaded machine too, although a quiet one gives cleaner times.

Prints the serial share of the samples and the symbols that fill it beside their share of the run.

    python3 tools/bench/serial_profile.py [--top 25] -- COMMAND [ARGS…]
    python3 tools/bench/serial_profile.py --data perf.data     # analyse an existing recording of this kind

Needs `perf` (linux-perf, run as root or with perf_event_paranoid ≤ 1 for the scheduler tracepoints);
no Python packages.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

PERIOD_NS = 4_000_000
SWITCH = re.compile(r"prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)")
WAKEUP = re.compile(r"pid=(\d+)")


def record(command, data):
    subprocess.run(["perf", "record", "-e", f"cpu-clock/period={PERIOD_NS}/", "-e", "sched:sched_switch",
                    "-e", "sched:sched_wakeup", "-c", "1", "-o", data, "--"] + command, check=True)


def events(data):
    """(time, pid, tid, event, rest of the line) in time order."""
    script = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid,time,event,ip,sym,trace", "--ns"],
                            check=True, capture_output=True, text=True).stdout
    for line in script.splitlines():
        match = re.match(r"\s*(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if match:
            yield float(match.group(3)), int(match.group(1)), int(match.group(2)), match.group(4), match.group(5)


def symbol_of(rest):
    fields = rest.split()
    name = fields[1] if len(fields) > 1 else (fields[0] if fields else "?")
    return name.split("+0x")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an existing recording made as this script records")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.data and not command:
        parser.error("give --data or a COMMAND to record")
    data, temporary = args.data, None
    if not data:
        temporary = tempfile.NamedTemporaryFile(suffix=".perf.data", delete=False).name
        data = temporary
        record(command, data)

    asleep = set()            # threads switched out in S/D and not woken since
    threads = set()
    samples = collections.Counter()
    serial = collections.Counter()
    idle, idle_since, first, last = 0.0, None, None, None
    try:
        for time, pid, tid, event, rest in events(data):
            first = time if first is None else first
            last = time
            if event == "sched:sched_switch":
                match = SWITCH.search(rest)
                if match:
                    previous, state, following = int(match.group(1)), match.group(2), int(match.group(3))
                    if not state.startswith("R"):   # S, D, I: sleeping; X, Z: gone
                        asleep.add(previous)
                    asleep.discard(following)
            elif event == "sched:sched_wakeup":
                match = WAKEUP.search(rest)
                if match:
                    asleep.discard(int(match.group(1)))
            elif event.startswith("cpu-clock"):
                threads.add(tid)
                asleep.discard(tid)   # it is running now
                symbol = symbol_of(rest)
                samples[symbol] += 1
                if all(other in asleep for other in threads if other != tid) and len(threads) > 1:
                    serial[symbol] += 1
            everyone_asleep = bool(threads) and threads <= asleep
            if everyone_asleep and idle_since is None:
                idle_since = time
            elif not everyone_asleep and idle_since is not None:
                idle += time - idle_since
                idle_since = None
    finally:
        if temporary:
            os.unlink(temporary)
    total, alone = sum(samples.values()), sum(serial.values())
    if not total:
        sys.exit("no CPU samples")
    print(f"{total} samples ({total * PERIOD_NS / 1e9:.1f} CPU s) on {len(threads)} threads; {alone} "
          f"({100.0 * alone / total:.1f} %, {alone * PERIOD_NS / 1e9:.1f} s) ran while every other thread slept")
    if first is not None:
        print(f"{last - first:.1f} s recorded; every thread asleep for {idle:.1f} s of it (waiting on the "
              f"kernel or on a wake-up that came from outside the process)")
    print(f"\n{'serial s':>9}  {'all s':>7}  symbol (top {args.top} by serial time)")
    for symbol, count in serial.most_common(args.top):
        print(f"{count * PERIOD_NS / 1e9:9.2f}  {samples[symbol] * PERIOD_NS / 1e9:7.2f}  {symbol}")


if __name__ == "__main__":
    main()
