#!/usr/bin/env python3
"""Propagation latency (dataset P): a new 1 KiB file written on A, time until B holds it.

Two `shoal serve` devices on 127.0.0.1 with default settings (watcher on), one shared
folder. Each sample writes a new file on A (written to a temp name, then renamed, as
editors do) and polls B's folder every 0.5 ms until the file is there with the same bytes.
Reports p50/p90/p99/max over the samples. Run: `python3 bench/latency.py [--samples N]`.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOAL = ROOT / "target" / "release" / "shoal"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sh(home, *args):
    r = subprocess.run([SHOAL, "--home", str(home), *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"shoal {' '.join(args)} failed: {r.stderr}")
    return r.stdout.strip()


def start_pair(work: Path):
    devs = []
    for name in ("a", "b"):
        home = work / name / "home"
        port = free_port()
        sh(home, "init", "--name", name, "--listen", f"127.0.0.1:{port}")
        devs.append({"home": home, "port": port, "id": sh(home, "id"), "folder": work / name / "f"})
    a, b = devs
    sh(a["home"], "device", "add", b["id"], "--addr", f"127.0.0.1:{b['port']}")
    sh(b["home"], "device", "add", a["id"], "--addr", f"127.0.0.1:{a['port']}")
    for d, other in ((a, b), (b, a)):
        sh(d["home"], "folder", "add", str(d["folder"]), "--id", "p", "--share", other["id"])
    procs = []
    for d in devs:
        log = open(d["home"] / "bench.log", "w")
        procs.append(subprocess.Popen([SHOAL, "--home", str(d["home"]), "serve"], stderr=log,
                                      stdout=subprocess.DEVNULL))
    deadline = time.time() + 20
    while time.time() < deadline:
        st = subprocess.run([SHOAL, "--home", str(a["home"]), "status", "--json"], capture_output=True, text=True)
        if '"connected": true' in st.stdout:
            break
        time.sleep(0.05)
    else:
        sys.exit("devices did not connect")
    return a, b, procs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    if not SHOAL.exists():
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="shoal-latency-"))
    a, b, procs = start_pair(work)
    try:
        lat = []
        for i in range(args.samples):
            data = os.urandom(1024)
            name = f"s{i:05}.txt"
            tmp = a["folder"] / f".tmp-{name}"
            dst_b = b["folder"] / name
            t0 = time.perf_counter()
            tmp.write_bytes(data)
            os.rename(tmp, a["folder"] / name)
            while True:
                try:
                    if dst_b.read_bytes() == data:
                        break
                except FileNotFoundError:
                    pass
                if time.perf_counter() - t0 > 30:
                    sys.exit(f"sample {i} did not arrive in 30 s")
                time.sleep(0.0005)
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.02)
        lat.sort()
        q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
        print(f"P latency over {len(lat)} samples: p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, "
              f"p99 {q(0.99):.1f} ms, max {lat[-1]:.1f} ms")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
