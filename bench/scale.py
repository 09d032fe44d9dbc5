#!/usr/bin/env python3
"""The `scale` case of the suite: a folder of 1,000,000 small files.

Two Shoal devices start on folders that already hold the same 1,000,000 small files (as after
a copy made by `rsync -a`: same bytes, same mtimes). Each indexes its own folder (cold scan)
and receives the other's index, so each database ends up holding its own index and one
peer's index of the same folder, and no file data has to move. Measured on device A:

- cold: from service start until A has indexed every file (`status --json` local_files);
- index exchange: until each device's database holds the other's entry for every file
  (counted read-only in the database with Python's sqlite3: a progress probe, never the
  verdict on the tree) and neither needs anything;
- peak RSS (VmHWM) of each `shoal serve` over the whole case (target: ≤ 300 MiB);
- warm rescan: `shoal rescan` through the running service with nothing changed, 3 times
  (target: ≤ 10 s);
- database bytes per file: A's stopped (so its WAL is checkpointed into index.db)
  `index.db` plus any `-wal`/`-shm` left, divided by the number of files (target: ≤ 400 B).
- Neither device may send file data: the wire must stay at the size of the index.

Only Shoal runs this case: Syncthing 1.19.2 needs about 1.2 ms of CPU per file on this
machine (case S), so a million files would take it the better part of an hour.

Run alone: python3 bench/scale.py [--files N]  (needs root for the loop file system)
or as part of the suite: python3 bench/suite.py --cases scale
"""

import argparse
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import suite
from suite import MiB, ShoalPair, FOLDER_ID, RssSampler, say, proc_stats

TARGET_RSS = 300 * MiB
TARGET_BYTES_PER_FILE = 400
TARGET_WARM = 10.0
FILES_PER_DIR = 1000


def gen_twin_trees(a: Path, b: Path, n: int, seed=7):
    """n files of 16-1,024 random bytes in directories of FILES_PER_DIR, written the same
    into a and b, with the same mtime on both sides."""
    rng = random.Random(seed)
    mtime = time.time_ns() - 3600 * 10**9  # an hour ago: outside every racy window
    made = 0
    d = 0
    while made < n:
        for root in (a, b):
            (root / f"d{d:04}").mkdir(parents=True, exist_ok=True)
        for f in range(min(FILES_PER_DIR, n - made)):
            data = rng.randbytes(rng.randint(16, 1024))
            rel = f"d{d:04}/f{f:04}"
            for root in (a, b):
                p = root / rel
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
                os.utime(p, ns=(mtime, mtime))
            made += 1
        d += 1


def remote_rows(db: Path):
    """Entries of other devices held in a database (None while it cannot be read)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM files WHERE device != 0").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def rss_now(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def folder_status(pair, name):
    st = pair.status(name)
    for f in st.get("folders", []):
        if f["id"] == FOLDER_ID:
            return f
    return {}


def wait_for(what, cond, timeout, pair):
    t0 = time.perf_counter()
    last = 0.0
    while True:
        for n in ("a", "b"):
            if pair.devs[n]["proc"].poll() is not None:
                raise RuntimeError(f"shoal {n} exited: see {pair.devs[n]['home']}/serve.log")
        ok, progress = cond()
        if ok:
            return time.perf_counter()
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"scale: {what} not reached in {timeout} s ({progress})")
        if time.perf_counter() - last > 15:
            rss = " ".join(f"{n} {rss_now(pair.pid(n)) / MiB:.0f}" for n in ("a", "b"))
            say(f"    waiting for {what}: {progress}; RSS MiB {rss}")
            last = time.perf_counter()
        time.sleep(0.2)


def run(shoal_bin: Path, base: Path, n: int, timeout=3600):
    """Runs the case under base (a fresh directory); returns a dict of figures."""
    base.mkdir(parents=True)
    pair = ShoalPair(shoal_bin, base)
    res = {"files": n}
    try:
        say(f"  scale: writing {n:,} small files twice")
        t = time.perf_counter()
        gen_twin_trees(pair.folder("a"), pair.folder("b"), n)
        suite.sync_all()
        say(f"  scale: written in {time.perf_counter() - t:.0f} s")
        db = {k: pair.devs[k]["home"] / "index.db" for k in ("a", "b")}
        t0 = time.perf_counter()
        pair.start("a")
        pair.start("b")
        sampler = RssSampler({"a": pair.pid("a"), "b": pair.pid("b")})

        def indexed():
            fa, fb = folder_status(pair, "a"), folder_status(pair, "b")
            la, lb = fa.get("local_files", 0), fb.get("local_files", 0)
            return la >= n, f"A indexed {la:,}, B {lb:,}, A {fa.get('state')}"
        t_cold = wait_for("A's cold scan", indexed, timeout, pair)
        res["cold"] = t_cold - t0

        def exchanged():
            ra, rb = remote_rows(db["a"]), remote_rows(db["b"])
            fa, fb = folder_status(pair, "a"), folder_status(pair, "b")
            done = (ra is not None and rb is not None and ra >= n and rb >= n
                    and fa.get("need_files") == 0 and fb.get("need_files") == 0
                    and fb.get("local_files", 0) >= n
                    and fa.get("state") == "idle" and fb.get("state") == "idle")
            return done, (f"A holds {ra} of B's entries, B {rb} of A's; need A {fa.get('need_files')} "
                          f"B {fb.get('need_files')}; states {fa.get('state')}/{fb.get('state')}")
        t_idx = wait_for("the index exchange", exchanged, timeout, pair)
        res["exchange"] = t_idx - t0
        out_b, in_b = pair.wire()
        res["wire_a2b"], res["wire_b2a"] = out_b, in_b

        warm = []
        for _ in range(3):
            t = time.perf_counter()
            pair.rescan("a")
            warm.append(time.perf_counter() - t)
        res["warm"] = warm
        peak = sampler.finish()
        for k in ("a", "b"):
            res["rss_" + k] = proc_stats(pair.pid(k))[0]
            res["anon_" + k] = peak[k]["RssAnon"]
        res["cpu_a"] = proc_stats(pair.pid("a"))[1]
        res["cpu_b"] = proc_stats(pair.pid("b"))[1]

        # Stop A (a clean stop checkpoints the WAL), then weigh its database.
        pair.stop("a")
        files = {p.name: p.stat().st_size for p in db["a"].parent.glob("index.db*")}
        res["db_files"] = files
        res["db_bytes"] = sum(files.values())
        con = sqlite3.connect(f"file:{db['a']}?mode=ro", uri=True)
        try:
            res["rows_local"] = con.execute("SELECT count(*) FROM files WHERE device = 0").fetchone()[0]
            res["rows_remote"] = con.execute("SELECT count(*) FROM files WHERE device != 0").fetchone()[0]
        finally:
            con.close()
        say(f"  scale: cold {res['cold']:.1f} s, exchange done at {res['exchange']:.1f} s, warm rescan "
            f"{', '.join(f'{w:.2f}' for w in warm)} s, RSS A {res['rss_a'] / MiB:.0f} MiB B "
            f"{res['rss_b'] / MiB:.0f} MiB, db {res['db_bytes'] / n:.0f} B/file, wire A->B "
            f"{suite.fmt_bytes(out_b)} B->A {suite.fmt_bytes(in_b)}")
        return res
    finally:
        for k in ("a", "b"):
            try:
                pair.stop(k)
            except Exception as e:  # keep cleaning up
                suite.note(f"scale: stopping {k}: {e}")


def report(res):
    """The Markdown section of the suite's report for this case."""
    n = res["files"]
    per_file = res["db_bytes"] / n
    rss = max(res["rss_a"], res["rss_b"])
    warm = max(res["warm"])
    ok = rss <= TARGET_RSS and per_file <= TARGET_BYTES_PER_FILE and warm <= TARGET_WARM
    verdict = "PASS" if ok else "MISS"
    lines = [
        f"## scale: {n:,} small files (Shoal only)\n",
        "Both devices start on the same files (16-1,024 random bytes each, 1,000 per directory, "
        "same mtimes), index them and exchange indexes; no file data moves. A's database then "
        "holds its own index and B's.\n",
        "| measure | target | Shoal |",
        "|---|---|---|",
        f"| peak RSS (VmHWM), A / B | ≤ 300 MiB | {res['rss_a'] / MiB:.0f} / {res['rss_b'] / MiB:.0f} MiB "
        f"(heap {res['anon_a'] / MiB:.0f} / {res['anon_b'] / MiB:.0f} MiB) |",
        f"| database per file (A, stopped: {', '.join(f'{k} {v / MiB:.1f} MiB' for k, v in sorted(res['db_files'].items()))}; "
        f"{res['rows_local']:,} local + {res['rows_remote']:,} remote entries) | ≤ 400 B | {per_file:.0f} B |",
        f"| warm rescan through the service, 3 runs | ≤ 10 s | {', '.join(f'{w:.2f}' for w in res['warm'])} s |",
        f"| cold scan of A (service start to all indexed) | | {res['cold']:.1f} s |",
        f"| index exchange done (from start) | | {res['exchange']:.1f} s |",
        f"| wire A→B / B→A (index only) | | {suite.fmt_bytes(res['wire_a2b'])} / {suite.fmt_bytes(res['wire_b2a'])} |",
        f"| CPU s over the case, A / B | | {res['cpu_a']:.1f} / {res['cpu_b']:.1f} |",
        "",
        f"Verdict: **{verdict}**.\n",
    ]
    return "\n".join(lines), verdict


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--fs", choices=["loop", "dir"], default="loop")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=suite.ROOT, check=True)
    suite.WORK.mkdir(parents=True, exist_ok=True)
    scratch = suite.Scratch(args.fs)
    try:
        shoal_bin = scratch.dir / "shoal"
        subprocess.run(["cp", str(suite.ROOT / "target" / "release" / "shoal"), str(shoal_bin)], check=True)
        if os.environ.get("SHOAL_BENCH_BIN"):  # e.g. a wrapper that runs the service under a profiler
            shoal_bin = Path(os.environ["SHOAL_BENCH_BIN"])
        res = run(shoal_bin, scratch.dir / "scale", args.files)
        text, _ = report(res)
        print(text)
    finally:
        suite.stop_all()
        scratch.close()


if __name__ == "__main__":
    main()
