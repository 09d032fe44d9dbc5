#!/usr/bin/env python3
"""The CPU floor of case L on this machine: what the work that any secure, verifying sync
of L must do costs in CPU seconds, each part measured on its own in one run, against
issue 8's target (1.5 x `cp -r` + `sync`, measured in the same run).

L is 4 x 256 MiB of random data (bench/suite.py's dataset). Whatever the design, a sync
that indexes what it sends, encrypts it, and checks every block it receives must at least:

  scan      cut and hash the 1 GiB on A (`shoal rescan`, cold index: the CPU of the
            process, both cores);
  read      read the 1 GiB back from the page cache on A to send it (128 KiB reads);
  tls       encrypt, send, receive and decrypt 1 GiB over loopback TLS
            (`cargo bench --bench tls_throughput`: CPU seconds of both ends per GB, from
            memory buffers, no disk);
  verify    one BLAKE3 pass over the 1 GiB on B (`b3sum --num-threads 1`);
  write     write the 1 GiB into new files on B (pwrite in content-defined-chunk-sized
            pieces, 16-128 KiB, into the page cache of the suite's scratch ext4).

The sum, divided by the 2 cores, is the shortest wall time L could take with both cores
busy 100 % of the time and nothing else to do (no index, no database, no fsync wait).

Run: `python3 bench/floor.py [--reps 3]` (needs b3sum, a release build, and root for the
loop-mounted scratch file system, as bench/suite.py). Writes bench/results/floor.md.
"""

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHOAL = ROOT / "target" / "release" / "shoal"
OUT = ROOT / "bench" / "results" / "floor.md"
GiB = 1 << 30


def child_cpu(cmd, env=None, cwd=None):
    """(wall s, CPU s of the child and its children, stdout) of one command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr.strip()[:400]}")
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), p.stdout


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scan_cpu(data: Path):
    home = Path(tempfile.mkdtemp(prefix="floor-home-"))
    env = dict(os.environ, SHOAL_HOME=str(home))
    try:
        subprocess.run([SHOAL, "init", "--listen", "127.0.0.1:0"], env=env, check=True, capture_output=True)
        (data / ".shoal").mkdir(exist_ok=True)
        subprocess.run([SHOAL, "folder", "add", str(data), "--id", "floor"], env=env, check=True,
                       capture_output=True)
        return child_cpu([str(SHOAL), "rescan", "floor"], env=env)[1]
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(data / ".shoal", ignore_errors=True)


def read_cpu(files):
    buf = bytearray(128 << 10)
    c0 = self_cpu()
    for f in files:
        with open(f, "rb", buffering=0) as h:
            while h.readinto(buf):
                pass
    return self_cpu() - c0


def verify_cpu(files):
    return child_cpu(["b3sum", "--num-threads", "1", *map(str, files)])[1]


def write_cpu(dst: Path, total=GiB):
    rnd = random.Random(1)
    src = os.urandom(8 << 20)
    view = memoryview(src)
    c0 = self_cpu()
    for i in range(4):
        fd = os.open(dst / f"w{i}", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        off = 0
        while off < total // 4:
            n = min(rnd.randint(16 << 10, 128 << 10), total // 4 - off)
            o = off % (4 << 20)
            os.pwrite(fd, view[o:o + n], off)
            off += n
        os.close(fd)
    cpu = self_cpu() - c0
    subprocess.run(["sync"], check=True)
    for i in range(4):
        (dst / f"w{i}").unlink()
    subprocess.run(["sync"], check=True)
    return cpu


def tls_cpu_per_gib(reps):
    # The bench writes bench/results/tls.md (issue 4's record): keep that file as it was.
    kept = ROOT / "bench" / "results" / "tls.md"
    before = kept.read_bytes() if kept.exists() else None
    try:
        _, _, out = child_cpu(["cargo", "bench", "--locked", "--bench", "tls_throughput", "--",
                               "--mib", "1024", "--reps", str(reps)], cwd=ROOT)
    finally:
        if before is not None:
            kept.write_bytes(before)
    m = re.search(r"\*\*median\*\*\s*\|[^|]*\|[^|]*\|[^|]*\|[^|]*\|[^|]*\|\s*([0-9.]+)\s*\|", out)
    if not m:
        raise RuntimeError("could not read the TLS CPU s/GB median from tls_throughput:\n" + out[-2000:])
    return float(m.group(1)) * GiB / 1e9


def cp_sync(src: Path, dst: Path):
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    w = time.perf_counter() - t0
    shutil.rmtree(dst, ignore_errors=True)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    data = suite.dataset_L(suite.FULL)
    files = sorted(data.glob("big*.bin"))
    load0 = os.getloadavg()
    scratch = suite.Scratch("loop")
    try:
        work = scratch.dir
        src = work / "L"
        shutil.copytree(data, src)
        rows = {k: [] for k in ("scan", "read", "tls", "verify", "write", "cp+sync")}
        tls = tls_cpu_per_gib(args.reps)
        for rep in range(args.reps):
            read_cpu(files)  # warm the page cache
            rows["scan"].append(scan_cpu(src))
            rows["read"].append(read_cpu(files))
            rows["verify"].append(verify_cpu(files))
            rows["write"].append(write_cpu(work))
            rows["tls"].append(tls)
            rows["cp+sync"].append(cp_sync(src, work / "copy"))
            print(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in rows.items()), flush=True)
    finally:
        scratch.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    parts = ("scan", "read", "tls", "verify", "write")
    total = sum(med[k] for k in parts)
    floor = total / 2
    target = 1.5 * med["cp+sync"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = [
        "# The CPU floor of case L (`python3 bench/floor.py`)",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {commit}; "
        f"{os.cpu_count()} cores; load average at start {', '.join(f'{x:.2f}' for x in load0)}, "
        f"at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.reps} repetitions, medians.",
        "- What each part is: see the docstring of bench/floor.py. TLS from "
        f"`cargo bench --bench tls_throughput -- --mib 1024 --reps {args.reps}` (median CPU s/GB of "
        "both ends, scaled to 1 GiB).",
        "",
        "| part (1 GiB) | CPU s |",
        "|---|---|",
    ]
    lines += [f"| {k} | {med[k]:.3f} |" for k in parts]
    lines += [
        f"| **sum** | **{total:.3f}** |",
        "",
        f"- Shortest possible wall time on 2 cores, both busy all the time: **{floor:.3f} s**.",
        f"- `cp -r` + `sync` of L: {med['cp+sync']:.3f} s; issue 8's target 1.5x that: **{target:.3f} s**.",
        f"- Floor / target: **{floor / target:.2f}**"
        + (" (the target is below the floor: out of reach on this machine)" if floor > target else
           " (the floor is below the target)") + ".",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
