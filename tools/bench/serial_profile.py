#!/usr/bin/env python3
"""Where a multi-threaded run leaves cores idle: symbols sampled while only one thread was busy.

Records a command with `perf record` (timestamped samples of every thread), cuts the run into windows
(default 20 ms), and counts a window as *serial* when exactly one thread has samples in it. Prints the
share of serial windows and the symbols that fill them (the code to parallelise first), beside the
symbols of the whole run. Run it on a quiet machine: a core taken by another process looks like idle
time here.

    python3 tools/bench/serial_profile.py [--window-ms 20] [--frequency 400] [--top 25] -- COMMAND [ARGS…]
    python3 tools/bench/serial_profile.py --data perf.data          # analyse an existing recording

Needs `perf` (linux-perf); no Python packages.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile


def record(command, frequency, data):
    subprocess.run(["perf", "record", "-F", str(frequency), "-o", data, "--"] + command, check=True)


def samples(data):
    """(time in seconds, thread id, symbol) for every sample."""
    script = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,ip,sym", "--ns"],
                            check=True, capture_output=True, text=True).stdout
    for line in script.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        try:
            tid, time = int(parts[0]), float(parts[1].rstrip(":"))
        except ValueError:
            continue
        symbol = parts[2].strip() if len(parts) > 2 else "?"
        # perf prints "address symbol+offset"; keep the name.
        fields = symbol.split()
        name = fields[1] if len(fields) > 1 else (fields[0] if fields else "?")
        yield time, tid, name.split("+0x")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="an existing perf.data (otherwise COMMAND is recorded)")
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--frequency", type=int, default=400)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.data and not command:
        parser.error("give --data or a COMMAND to record")

    data = args.data
    temporary = None
    if not data:
        temporary = tempfile.NamedTemporaryFile(suffix=".perf.data", delete=False)
        data = temporary.name
        record(command, args.frequency, data)

    windows = collections.defaultdict(lambda: collections.defaultdict(list))
    everything = collections.Counter()
    for time, tid, symbol in samples(data):
        windows[int(time * 1000 / args.window_ms)][tid].append(symbol)
        everything[symbol] += 1
    if temporary:
        os.unlink(data)
    if not windows:
        sys.exit("no samples")

    serial = collections.Counter()
    serial_windows = 0
    busy_windows = 0
    for threads in windows.values():
        busy_windows += 1
        if len(threads) == 1:
            serial_windows += 1
            for symbol in next(iter(threads.values())):
                serial[symbol] += 1
    print(f"{busy_windows} windows of {args.window_ms:g} ms with samples; {serial_windows} "
          f"({100.0 * serial_windows / busy_windows:.1f} %) had only one thread busy")
    total_serial = sum(serial.values()) or 1
    total = sum(everything.values()) or 1
    print(f"\n{'serial %':>9}  {'all %':>7}  symbol (top {args.top} in serial windows)")
    for symbol, count in serial.most_common(args.top):
        print(f"{100.0 * count / total_serial:9.1f}  {100.0 * everything[symbol] / total:7.1f}  {symbol}")


if __name__ == "__main__":
    main()
