#!/usr/bin/python3
"""Formats Google Benchmark JSON files (one per bench binary) as docs/BENCHMARKS.md."""
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_rate(v):
    if v is None:
        return ""
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k/s"
    return f"{v:.0f} /s"


def fmt_us(v):
    if v is None:
        return ""
    return f"{v:.2f} µs" if v < 1000 else f"{v / 1000:.2f} ms"


# Keys Google Benchmark writes for every row; anything else is a user counter of the bench.
STANDARD_KEYS = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
                 "repetitions", "repetition_index", "threads", "iterations", "real_time",
                 "cpu_time", "time_unit", "items_per_second", "bytes_per_second", "p50_us",
                 "p99_us", "error_occurred", "error_message", "label", "aggregate_name",
                 "aggregate_unit"}


def others(b):
    extra = {k: v for k, v in b.items() if k not in STANDARD_KEYS and isinstance(v, (int, float))}
    return ", ".join(f"{k}={v:.3g}" for k, v in sorted(extra.items()))


def main(folder):
    rows = []
    context = None
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            rows.append((name.replace(".json", ""), b))
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print("# Benchmarks\n")
    print(f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on "
          f"{cpu_model()}, {os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.system()} "
          f"{platform.release()}; build type {context.get('library_build_type', '?')} benchmark "
          f"library. One run of `make bench`; latencies are the medians/p99 of per-call "
          f"timings inside the run, throughput is items/s over wall time.\n")
    print("| binary | benchmark | items/s | p50 | p99 | time/iter | other counters |")
    print("|---|---|---|---|---|---|---|")
    for binary, b in rows:
        per_iter = b.get("real_time")
        unit = b.get("time_unit", "ns")
        scale = {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6}[unit]
        print(f"| {binary} | `{b['name']}` | {fmt_rate(b.get('items_per_second'))} | "
              f"{fmt_us(b.get('p50_us'))} | {fmt_us(b.get('p99_us'))} | "
              f"{fmt_us(per_iter * scale) if per_iter is not None else ''} | {others(b)} |")
    print()
    targets = os.path.join(os.path.dirname(__file__), "bench_targets.md")
    if os.path.exists(targets):
        with open(targets) as f:
            print(f.read())


if __name__ == "__main__":
    main(sys.argv[1])
