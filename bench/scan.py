#!/usr/bin/env python3
"""Scanner benchmark: `shoal rescan` against `b3sum --num-threads 2` in the same run.

Datasets (generated once under bench/work/, which git ignores):
  big    4 x 256 MiB random files
  small  20,000 x 4 KiB random files in 200 directories

For each dataset, several repetitions of: b3sum over every file (the page cache warmed
first, so both read from memory), a cold `shoal rescan` (empty index), and a warm rescan
(nothing changed). Reports wall time, throughput, peak RSS and CPU seconds of each process,
and the shoal/b3sum ratio within each repetition. Writes bench/results/scan.md.

Setup: `apt-get install b3sum` (Debian's package) and a release build
(`cargo build --release`). Run: `python3 bench/scan.py [--reps N]`.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
SHOAL = ROOT / "target" / "release" / "shoal"


def run(cmd, env=None):
    """Runs cmd, returns (wall seconds, peak RSS MiB, CPU seconds, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed: {err.decode(errors='replace')}")
    return wall, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime, out


def make_big(d: Path):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        p = d / f"big{i}.bin"
        if not p.exists() or p.stat().st_size != 256 << 20:
            with open(p, "wb") as f:
                for _ in range(256):
                    f.write(os.urandom(1 << 20))


def make_small(d: Path):
    marker = d / ".complete"
    if marker.exists():
        return
    for i in range(200):
        sub = d / f"d{i:03}"
        sub.mkdir(parents=True, exist_ok=True)
        for j in range(100):
            (sub / f"f{j:03}.dat").write_bytes(os.urandom(4096))
    marker.write_text("")


def files_of(d: Path):
    return [str(p) for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".complete"]


def bench(name, data: Path, reps: int, total_bytes: int):
    files = files_of(data)
    home = Path(tempfile.mkdtemp(prefix="shoal-bench-home-"))
    env = dict(os.environ, SHOAL_HOME=str(home))
    subprocess.run([SHOAL, "init", "--listen", "127.0.0.1:0"], env=env, check=True, capture_output=True)
    marker = data / ".shoal"
    marker.mkdir(exist_ok=True)
    folder = subprocess.run([SHOAL, "folder", "add", str(data), "--id", name], env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    b3 = ["b3sum", "--num-threads", "2", "--no-names"]
    run(b3 + files)  # warm the page cache
    rows = []
    for _ in range(reps):
        b = run(b3 + files)
        for ext in ("", "-wal", "-shm"):
            p = home / f"index.db{ext}"
            if p.exists():
                p.unlink()
        cold = run([SHOAL, "rescan", folder], env=env)
        warm = run([SHOAL, "rescan", folder], env=env)
        rows.append((b, cold, warm))
    shutil.rmtree(home)
    return rows


def fmt_rows(name, rows, total_bytes, nfiles):
    lines = []
    med = lambda xs: statistics.median(xs)
    b = [r[0][0] for r in rows]
    c = [r[1][0] for r in rows]
    w = [r[2][0] for r in rows]
    ratio = [r[0][0] / r[1][0] for r in rows]  # shoal throughput / b3sum throughput
    gbps = lambda s: total_bytes / s / 1e9
    lines.append(f"| {name} | b3sum --num-threads 2 | {med(b):.3f} | {gbps(med(b)):.2f} GB/s | "
                 f"{max(r[0][1] for r in rows):.0f} | {med([r[0][2] for r in rows]):.2f} | |")
    lines.append(f"| {name} | shoal rescan, cold | {med(c):.3f} | {gbps(med(c)):.2f} GB/s | "
                 f"{max(r[1][1] for r in rows):.0f} | {med([r[1][2] for r in rows]):.2f} | "
                 f"{med(ratio):.2f}x b3sum (min {min(ratio):.2f}) |")
    lines.append(f"| {name} | shoal rescan, warm | {med(w):.3f} | {nfiles / med(w):,.0f} files/s | "
                 f"{max(r[2][1] for r in rows):.0f} | {med([r[2][2] for r in rows]):.2f} | |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if not shutil.which("b3sum"):
        sys.exit("b3sum is missing: apt-get install b3sum")
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    big, small = WORK / "big", WORK / "small"
    make_big(big)
    make_small(small)
    out = ["| dataset | command | median wall s | throughput | peak RSS MiB | CPU s | ratio |",
           "|---|---|---|---|---|---|---|"]
    out += fmt_rows("4 x 256 MiB", bench("big", big, args.reps, 1 << 30), 1 << 30, 4)
    out += fmt_rows("20,000 x 4 KiB", bench("small", small, args.reps, 20000 * 4096), 20000 * 4096, 20000)
    b3v = subprocess.run(["b3sum", "--version"], capture_output=True, text=True).stdout.strip()
    header = (f"Scanner benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {b3v}, "
              f"{args.reps} repetitions (medians; files in the page cache).\n\n")
    text = header + "\n".join(out) + "\n"
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "scan.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
