#!/usr/bin/env python3
"""Side-by-side benchmark suite: Shoal against Syncthing and the references, in one run.

Two `shoal serve` devices and two Syncthing devices (Debian's 1.19.2; discovery, relays,
NAT, usage and crash reporting and upgrades off; 127.0.0.1 only), each pair sharing one
folder A -> B, on the same generated data, next to `cp -r` (with and without `sync`),
`rsync -a` (and `--no-whole-file` for the delta cases) and `b3sum --num-threads 2`, all in
one run, several repetitions. Whether B equals A is decided from the file system (names,
types, sizes, symlink targets, BLAKE3 of every file via b3sum), never by asking the tool.

Cases:
  L        4 x 256 MiB random files: from A's service start (initial scan included)
           until B equals A
  S        20,000 x 4 KiB random files in 200 directories: the same
  D1       1 MiB overwritten in place in the middle of a synced 256 MiB file
  D2       one byte inserted at the start of a synced 256 MiB file (new file renamed in)
  R        a synced 24 MiB file renamed into another directory
  P        a new 1 KiB file written on A (watcher on, default settings): time until
           identical on B; many samples for Shoal, few for Syncthing (about 10 s each)
  startup  process start until the control API answers, on a home with one folder of
           20,000 files already indexed (after S)
  text     a real compressible tree (/usr/include, C/C++ headers): bytes on the wire next
           to `rsync -a` and `rsync -az` over a local pipe (`--stats`, bytes sent)
  scale    1,000,000 small files on two devices seeded alike (Shoal only, once per run, not
           per repetition): peak RSS, database bytes per file, warm rescan (bench/scale.py)

Reported per case and run: wall time, bytes on the wire each way (the tool's own counters,
and the kernel's TCP counters of the connection as a cross-check), peak RSS (VmHWM) and CPU
seconds (utime + stime) of each process, and ratios taken within each repetition.
Writes bench/results/suite.md.

Run: python3 bench/suite.py [--reps N] [--cases L,S,D1,D2,R,P,startup,text] [--quick]
"""

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
DATA = WORK / "suite"
RESULTS = ROOT / "bench" / "results" / "suite.md"
KiB, MiB = 1 << 10, 1 << 20
CLK = os.sysconf("SC_CLK_TCK")
ALL_CASES = ["L", "S", "D1", "D2", "R", "P", "startup", "text", "scale"]
FOLDER_ID = "bench"
SETTLE = 1.0  # seconds after B equals A before wire/CPU/RSS are read (late index updates)

FULL = dict(l_files=4, l_size=256 * MiB, s_dirs=200, s_per_dir=100, s_size=4 * KiB,
            r_size=24 * MiB, p_shoal=100, p_syncthing=10, startup=5, text="full", timeout=600,
            scale_files=1_000_000)
QUICK = dict(l_files=4, l_size=16 * MiB, s_dirs=20, s_per_dir=100, s_size=4 * KiB,
             r_size=4 * MiB, p_shoal=20, p_syncthing=2, startup=3, text="quick", timeout=300,
             scale_files=20_000)
D_CHANGE = 1 * MiB

# Targets from issue 8 (Shoal's; Syncthing's figures are shown next to them for context).
TARGETS = {
    "L": "≤ 1.5× cp -r + sync; peak RSS of either device ≤ 64 MiB",
    "S": "≤ 3× cp -r + sync; peak RSS of either device ≤ 64 MiB",
    "D1": "≤ rsync's time; wire ≤ 1.2× the changed bytes (1.2 MiB)",
    "D2": "≤ rsync's time; wire ≤ 256 KiB",
    "R": "≤ 64 KiB on the wire",
    "P": "p50 ≤ 150 ms, p99 ≤ 500 ms",
    "startup": "≤ 50 ms",
    "text": "no target: bytes on the wire next to rsync",
    "scale": "≤ 300 MiB RSS, ≤ 400 B of database per file, warm rescan ≤ 10 s (1,000,000 files)",
}

LIVE = {}  # pid -> Popen of every long-running process this script started
LOG = []   # free-form observations that go into the results file


def say(msg):
    print(msg, flush=True)


def note(msg):
    LOG.append(msg)
    say("NOTE: " + msg)


# ---------------------------------------------------------------- processes and /proc

def spawn(cmd, log_path, env=None):
    log = open(log_path, "ab")
    p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, env=env)
    log.close()
    LIVE[p.pid] = p
    return p


def stop(p, timeout=15):
    if p is None:
        return
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            note(f"pid {p.pid} ({p.args[0]}) did not stop within {timeout} s of SIGTERM; killed")
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            pass
    LIVE.pop(p.pid, None)


def stop_all():
    for p in list(LIVE.values()):
        stop(p)


def proc_stats(pid):
    """(peak RSS bytes since start or the last reset, CPU seconds) of a live process."""
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return hwm, (int(fields[11]) + int(fields[12])) / CLK


class RssSampler(threading.Thread):
    """Samples VmRSS, RssAnon and RssFile of some processes every 10 ms and keeps the
    maxima: VmHWM counts file-backed pages too; this tells heap from mapped/cached pages."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = dict(pids)  # label -> pid
        self.peak = {k: {"VmRSS": 0, "RssAnon": 0, "RssFile": 0} for k in self.pids}
        self.halt = threading.Event()
        self.start()

    def run(self):
        while not self.halt.is_set():
            for k, pid in self.pids.items():
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            key = line.split(":", 1)[0]
                            if key in ("VmRSS", "RssAnon", "RssFile"):
                                v = int(line.split()[1]) * 1024
                                if v > self.peak[k][key]:
                                    self.peak[k][key] = v
                except OSError:
                    pass
            self.halt.wait(0.01)

    def finish(self):
        self.halt.set()
        self.join()
        return self.peak


def reset_hwm(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def tcp_counters(pid):
    """Bytes the kernel counted on the established TCP sockets of pid to 127.0.0.1:
    (sent, received), summed. None when ss is missing."""
    try:
        out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                             text=True, timeout=10).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    sent = recv = 0
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"pid={pid}," not in line:
            continue
        info = lines[i + 1] if i + 1 < len(lines) else ""
        m1 = re.search(r"bytes_acked:(\d+)", info)
        m2 = re.search(r"bytes_received:(\d+)", info)
        sent += int(m1.group(1)) if m1 else 0
        recv += int(m2.group(1)) if m2 else 0
    return sent, recv


def off_loopback_sockets(pid):
    """Sockets of pid bound to or connected to anything but loopback (should be none)."""
    try:
        out = subprocess.run(["ss", "-tunapH"], capture_output=True, text=True, timeout=10).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return []
    bad = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        parts = line.split()
        addrs = [a for a in parts if re.match(r"^(\[?[0-9a-fA-F:.*%]+\]?):(\d+|\*)$", a)]
        for a in addrs[:2]:
            host, port = a.rsplit(":", 1)
            host = host.strip("[]")
            if port == "*":
                continue  # the peer of a listening or unconnected socket
            if host not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
                bad.append(line.strip())
                break
    return bad


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def timed(cmd, cwd=None):
    """Runs cmd, returns (wall s, peak RSS bytes, CPU s, stdout) from wait4."""
    t0 = time.perf_counter()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=err)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err.seek(0)
        raise RuntimeError(f"{cmd} failed ({p.returncode}): {err.read().decode(errors='replace')[-2000:]}")
    err.close()
    return wall, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime, out.decode(errors="replace")


def sync_all():
    subprocess.run(["sync"], check=True)


# ---------------------------------------------------------------- trees and equality

SKIP_TOP = {".shoal", ".stfolder", ".stversions", ".stignore", ".shoalignore"}


def is_tool_temp(name):
    return (name.startswith(".shoal-tmp-")
            or (name.startswith(".syncthing.") and name.endswith(".tmp"))
            or (name.startswith("~syncthing~") and name.endswith(".tmp")))


def listing(root):
    """{relpath: ('d',) | ('f', size, key) | ('l', target) | ('o',)} of a tree, without the
    tools' markers and temp files. key = (inode, mtime ns, ctime ns, size) names one version
    of a file's content for the hash cache (any write or replacement changes it)."""
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(os.path.join(root, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if (not rel and e.name in SKIP_TOP) or is_tool_temp(e.name):
                    continue
                r = f"{rel}/{e.name}" if rel else e.name
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    out[r] = ("d",)
                    stack.append(r)
                elif stat.S_ISREG(st.st_mode):
                    out[r] = ("f", st.st_size, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size))
                elif stat.S_ISLNK(st.st_mode):
                    try:
                        out[r] = ("l", os.readlink(os.path.join(root, r)))
                    except FileNotFoundError:
                        continue
                else:
                    out[r] = ("o",)
    return out


def b3(root, rels):
    """BLAKE3 hex of each relative path under root, in order (b3sum, 2 threads)."""
    hashes = []
    for i in range(0, len(rels), 1000):
        batch = rels[i:i + 1000]
        r = subprocess.run(["b3sum", "--num-threads", "2", "--no-names", "--", *batch], cwd=root,
                           capture_output=True, text=True)
        got = r.stdout.split()
        if r.returncode != 0 or len(got) != len(batch):
            # a file vanished between listing and hashing: hash one by one, None if gone
            got = []
            for rel in batch:
                rr = subprocess.run(["b3sum", "--no-names", "--", rel], cwd=root,
                                    capture_output=True, text=True)
                got.append(rr.stdout.strip() if rr.returncode == 0 else None)
        hashes += got
    return hashes


class Manifest:
    """What a tree must hold: shape {rel: ('d',) | ('f', size) | ('l', target)} and the
    BLAKE3 of every regular file."""

    def __init__(self, shape, hashes):
        self.shape, self.hashes = shape, hashes

    @staticmethod
    def of(root):
        lst = listing(root)
        shape = {r: v[:2] for r, v in lst.items()}
        files = sorted(r for r, v in lst.items() if v[0] == "f")
        return Manifest(shape, dict(zip(files, b3(root, files))))

    def copy(self):
        return Manifest(dict(self.shape), dict(self.hashes))

    def set_file(self, rel, size, h):
        self.shape[rel] = ("f", size)
        self.hashes[rel] = h
        parts = rel.split("/")
        for i in range(1, len(parts)):
            self.shape["/".join(parts[:i])] = ("d",)

    def remove(self, rel):
        self.shape.pop(rel, None)
        self.hashes.pop(rel, None)


class Comparer:
    """Decides whether a tree equals a manifest, from the file system alone. File hashes are
    cached per content version (inode, mtime, ctime, size), so a poll hashes only files that
    were written or replaced since the last one."""

    def __init__(self, root):
        self.root = Path(root)
        self.cache = {}  # rel -> (key, hash)

    def diff(self, m, lst=None):
        """None when equal, else a short reason."""
        lst = listing(self.root) if lst is None else lst
        if len(lst) != len(m.shape):
            extra = sorted(set(lst) - set(m.shape))[:3]
            missing = sorted(set(m.shape) - set(lst))[:3]
            return f"{len(lst)} entries, want {len(m.shape)} (extra {extra}, missing {missing})"
        for r, want in m.shape.items():
            got = lst.get(r)
            if got is None or got[:2] != want:
                return f"{r}: {got[:2] if got else None}, want {want}"
        todo = [r for r in m.hashes if self.cache.get(r, (None,))[0] != lst[r][2]]
        for r, h in zip(todo, b3(self.root, todo)):
            self.cache[r] = (lst[r][2], h)
        for r, h in m.hashes.items():
            if self.cache[r][1] != h:
                return f"{r}: content differs"
        return None

    def wait(self, m, t0, timeout, what=""):
        """Polls until the tree equals m; returns the time (perf_counter) of the listing that
        first showed it equal, confirmed by a second listing with the same file versions
        after hashing. Polls at most every 2 ms and keeps its own share of the CPU near a
        third (sleeps twice as long as a poll took)."""
        reason = "never checked"
        while True:
            c0 = time.perf_counter()
            lst = listing(self.root)
            t_list = time.perf_counter()
            reason = self.diff(m, lst)
            if reason is None:
                again = listing(self.root)
                if all(again.get(r) == v for r, v in lst.items()) and len(again) == len(lst):
                    return t_list
                reason = "changed while hashing"
            c1 = time.perf_counter()
            if c1 - t0 > timeout:
                raise TimeoutError(f"{what}: B not equal to A after {timeout} s: {reason}")
            time.sleep(max(0.002, 2 * (c1 - c0)))

    def verify(self, m, what):
        """Full check without the cache (untimed)."""
        fresh = Comparer(self.root)
        reason = fresh.diff(m)
        if reason is not None:
            raise RuntimeError(f"{what}: {self.root} differs from what it should hold: {reason}")


# ---------------------------------------------------------------- datasets

def gen_random_file(path, size, chunk=MiB):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    os.rename(tmp, path)


def dataset_L(cfg):
    d = DATA / f"L-{cfg['l_files']}x{cfg['l_size'] // MiB}M"
    done = d.with_name(d.name + ".done")
    if not done.exists():
        say(f"generating {d}")
        shutil.rmtree(d, ignore_errors=True)
        for i in range(cfg["l_files"]):
            gen_random_file(d / f"big{i}.bin", cfg["l_size"])
        done.write_text("")
    return d


def dataset_S(cfg):
    n = cfg["s_dirs"] * cfg["s_per_dir"]
    d = DATA / f"S-{n}x{cfg['s_size'] // KiB}K"
    done = d.with_name(d.name + ".done")
    if not done.exists():
        say(f"generating {d}")
        shutil.rmtree(d, ignore_errors=True)
        for i in range(cfg["s_dirs"]):
            sub = d / f"d{i:03}"
            sub.mkdir(parents=True)
            for j in range(cfg["s_per_dir"]):
                (sub / f"f{j:03}.dat").write_bytes(os.urandom(cfg["s_size"]))
        done.write_text("")
    return d


def dataset_R(cfg):
    p = DATA / f"R-{cfg['r_size'] // MiB}M.bin"
    if not p.exists():
        gen_random_file(p, cfg["r_size"])
    return p


TEXT_CANDIDATES = ["/usr/include", "/usr/lib/python3", "/usr/share/doc"]


def dir_size(p):
    total = 0
    for dp, dns, fns in os.walk(p):
        for f in fns:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except OSError:
                pass
    return total


def dataset_text(cfg):
    """A real compressible tree copied once from this machine: /usr/include (C and C++
    headers that Debian packages ship) for the full run, /usr/include/linux for --quick."""
    name = "text-full" if cfg["text"] == "full" else "text-quick"
    d = DATA / name
    done = d.with_name(name + ".done")
    if not done.exists():
        shutil.rmtree(d, ignore_errors=True)
        src = None
        if cfg["text"] == "quick" and Path("/usr/include/linux").is_dir():
            src = "/usr/include/linux"
        else:
            for c in TEXT_CANDIDATES:
                if Path(c).is_dir() and 50 * MiB <= dir_size(c) <= 220 * MiB:
                    src = c
                    break
        if src is None:
            raise RuntimeError("no tree of 50-200 MB of text found on this machine")
        say(f"copying {src} to {d} (text dataset)")
        subprocess.run(["cp", "-a", src, str(d)], check=True)
        # only regular files, dirs and symlinks; drop anything else (none expected)
        done.write_text(src)
    return d, done.read_text()


def tree_stats(d):
    n = b = 0
    for v in listing(d).values():
        if v[0] == "f":
            n += 1
            b += v[1]
    return n, b


# ---------------------------------------------------------------- Shoal pair

class ShoalPair:
    tool = "shoal"

    def __init__(self, binary, base: Path):
        self.bin, self.base = binary, base
        self.devs = {}
        for name in ("a", "b"):
            home = base / name / "home"
            port = free_port()
            self.sh(home, "init", "--name", name, "--listen", f"127.0.0.1:{port}")
            self.devs[name] = dict(home=home, port=port, id=self.sh(home, "id"),
                                   folder=base / name / "folder", proc=None)
        a, b = self.devs["a"], self.devs["b"]
        self.sh(a["home"], "device", "add", b["id"], "--name", "b", "--addr", f"127.0.0.1:{b['port']}")
        self.sh(b["home"], "device", "add", a["id"], "--name", "a", "--addr", f"127.0.0.1:{a['port']}")
        for d, o in ((a, b), (b, a)):
            self.sh(d["home"], "folder", "add", str(d["folder"]), "--id", FOLDER_ID, "--share", o["id"])
            (d["folder"] / ".shoal").mkdir(exist_ok=True)

    def sh(self, home, *args):
        r = subprocess.run([str(self.bin), "--home", str(home), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"shoal {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def folder(self, name):
        return self.devs[name]["folder"]

    def pid(self, name):
        return self.devs[name]["proc"].pid

    def start(self, name):
        d = self.devs[name]
        d["proc"] = spawn([self.bin, "--home", d["home"], "serve"], d["home"] / "serve.log")
        return d["proc"]

    def stop(self, name):
        stop(self.devs[name]["proc"])
        self.devs[name]["proc"] = None

    def status(self, name):
        return json.loads(self.sh(self.devs[name]["home"], "status", "--json"))

    def api_up(self, name):
        """True when the service's control socket accepts a connection and `shoal status
        --json` then answers service_running: true."""
        sock = self.devs[name]["home"] / "shoal.sock"
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(sock))
        except OSError:
            return False
        finally:
            s.close()
        r = subprocess.run([str(self.bin), "--home", str(self.devs[name]["home"]), "status", "--json"],
                           capture_output=True, text=True)
        return r.returncode == 0 and json.loads(r.stdout).get("service_running") is True

    def wait_api(self, name, timeout=30):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.devs[name]["proc"].poll() is not None:
                raise RuntimeError(f"shoal serve ({name}) exited: see {self.devs[name]['home']}/serve.log")
            if self.api_up(name):
                return time.perf_counter()
            time.sleep(0.001)
        raise TimeoutError(f"shoal {name}: control API did not answer in {timeout} s")

    def connected(self):
        st = self.status("a")
        return any(d.get("connected") for d in st.get("devices", []))

    def rescan(self, name):
        self.sh(self.devs[name]["home"], "rescan", FOLDER_ID)

    def wire(self):
        """(A->B, B->A) bytes by A's own counters since A's service started."""
        st = self.status("a")
        for d in st.get("devices", []):
            if d["id"] == self.devs["b"]["id"]:
                return d.get("out_bytes_total", 0), d.get("in_bytes_total", 0)
        return 0, 0


# ---------------------------------------------------------------- Syncthing pair

def syncthing_version():
    r = subprocess.run(["syncthing", "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).strip()


def syncthing_has_subcommands():
    r = subprocess.run(["syncthing", "serve", "--help"], capture_output=True, text=True)
    return r.returncode == 0 and "--home" in (r.stdout + r.stderr)


class SyncthingPair:
    tool = "syncthing"

    def __init__(self, base: Path):
        self.base = base
        self.sub = syncthing_has_subcommands()
        self.env = dict(os.environ, STNODEFAULTFOLDER="1", STNOUPGRADE="1", STNORESTART="1")
        self.devs = {}
        for name in ("a", "b"):
            home = base / name / "home"
            home.mkdir(parents=True)
            cmd = (["syncthing", "generate", "--home", str(home)] if self.sub
                   else ["syncthing", f"-generate={home}"])
            r = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
            m = re.search(r"Device ID:\s*([A-Z0-9-]{63})", r.stdout + r.stderr)
            if r.returncode != 0 or not m:
                raise RuntimeError(f"syncthing generate failed: {r.stdout}{r.stderr}")
            folder = base / name / "folder"
            (folder / ".stfolder").mkdir(parents=True)
            self.devs[name] = dict(home=home, id=m.group(1), port=free_port(), gui=free_port(),
                                   key=f"bench{random.getrandbits(64):016x}", folder=folder, proc=None)
        for name, other in (("a", "b"), ("b", "a")):
            self.configure(self.devs[name], self.devs[other], name, other)

    def configure(self, d, o, name, oname):
        path = d["home"] / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        self_dev = next(e for e in root.findall("device") if e.get("id") == d["id"])
        template = root.find("defaults/folder")
        for e in root.findall("folder") + root.findall("device"):
            root.remove(e)
        # the folder, shared with both devices, watcher on with its default delay
        if template is not None:
            folder = ET.fromstring(ET.tostring(template))
        else:
            folder = ET.Element("folder", type="sendreceive", rescanIntervalS="3600",
                                fsWatcherEnabled="true", fsWatcherDelayS="10")
        for e in folder.findall("device"):
            folder.remove(e)
        folder.set("id", FOLDER_ID)
        folder.set("label", FOLDER_ID)
        folder.set("path", str(d["folder"]))
        folder.set("type", "sendreceive")
        folder.set("fsWatcherEnabled", "true")
        for dev_id in (d["id"], o["id"]):
            fd = ET.Element("device", id=dev_id, introducedBy="")
            ET.SubElement(fd, "encryptionPassword")
            folder.insert(0, fd)
        root.insert(0, folder)
        for dev_id, dname, addr in ((d["id"], name, "dynamic"), (o["id"], oname, f"tcp://127.0.0.1:{o['port']}")):
            e = ET.fromstring(ET.tostring(self_dev))
            e.set("id", dev_id)
            e.set("name", dname)
            for a in e.findall("address"):
                e.remove(a)
            ae = ET.Element("address")
            ae.text = addr
            e.insert(0, ae)
            root.insert(1, e)
        gui = root.find("gui")
        gui.set("tls", "false")
        gui.find("address").text = f"127.0.0.1:{d['gui']}"
        ak = gui.find("apikey")
        if ak is None:
            ak = ET.SubElement(gui, "apikey")
        ak.text = d["key"]
        opts = root.find("options")
        for e in opts.findall("listenAddress"):
            opts.remove(e)
        la = ET.Element("listenAddress")
        la.text = f"tcp://127.0.0.1:{d['port']}"
        opts.insert(0, la)
        settings = {
            "globalAnnounceEnabled": "false", "localAnnounceEnabled": "false",
            "relaysEnabled": "false", "natEnabled": "false", "urAccepted": "-1",
            "autoUpgradeIntervalH": "0", "crashReportingEnabled": "false",
            "startBrowser": "false", "announceLANAddresses": "false",
            # The one departure from the defaults: Syncthing lowers its own CPU and I/O
            # priority by default; on a machine shared with other work that would measure
            # the scheduler, not Syncthing. On an idle machine it changes nothing.
            "setLowPriority": "false",
        }
        for k, v in settings.items():
            e = opts.find(k)
            if e is None:
                e = ET.SubElement(opts, k)
            e.text = v
        tree.write(path)

    def folder(self, name):
        return self.devs[name]["folder"]

    def pid(self, name):
        """The worker: Syncthing 1.19 runs a monitor process that starts the real one as its
        child even with --no-restart; the worker is what is measured."""
        mon = self.devs[name]["proc"].pid
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 30:
            kids = []
            try:
                for tid in os.listdir(f"/proc/{mon}/task"):  # Go forks from any thread
                    with open(f"/proc/{mon}/task/{tid}/children") as f:
                        kids += f.read().split()
            except OSError:
                pass
            if kids:
                self.devs[name]["worker"] = int(kids[0])
                return int(kids[0])
            if self.devs[name]["proc"].poll() is not None:
                raise RuntimeError(f"syncthing ({name}) exited: see {self.devs[name]['home']}/serve.log")
            time.sleep(0.005)
        raise RuntimeError(f"syncthing ({name}): no worker process under the monitor {mon}")

    def start(self, name):
        d = self.devs[name]
        cmd = (["syncthing", "serve", "--home", d["home"], "--no-browser", "--no-restart"] if self.sub
               else ["syncthing", "-home", d["home"], "-no-browser", "-no-restart"])
        d["proc"] = spawn(cmd, d["home"] / "serve.log", env=self.env)
        return d["proc"]

    def stop(self, name):
        d = self.devs[name]
        worker = d.get("worker")
        stop(d["proc"])  # the monitor passes SIGTERM on to the worker and waits for it
        d["proc"] = None
        if worker:
            # if the worker outlived its monitor, end it by its PID (it is our grandchild)
            for _ in range(100):
                try:
                    with open(f"/proc/{worker}/stat") as f:
                        alive = f.read().split(") ")[1][0] != "Z"
                except OSError:
                    alive = False
                if not alive:
                    break
                time.sleep(0.05)
            else:
                note(f"syncthing worker {worker} outlived its monitor; SIGKILL")
                os.kill(worker, signal.SIGKILL)
            d["worker"] = None

    def api(self, name, path, method="GET", timeout=5):
        d = self.devs[name]
        req = urllib.request.Request(f"http://127.0.0.1:{d['gui']}{path}", method=method,
                                     headers={"X-API-Key": d["key"]})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body.strip() else None

    def api_up(self, name):
        try:
            return self.api(name, "/rest/system/ping", timeout=1).get("ping") == "pong"
        except Exception:
            return False

    def wait_api(self, name, timeout=60):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.devs[name]["proc"].poll() is not None:
                raise RuntimeError(f"syncthing ({name}) exited: see {self.devs[name]['home']}/serve.log")
            if self.api_up(name):
                return time.perf_counter()
            time.sleep(0.002)
        raise TimeoutError(f"syncthing {name}: REST API did not answer in {timeout} s")

    def connected(self):
        c = self.api("a", "/rest/system/connections")
        return c["connections"].get(self.devs["b"]["id"], {}).get("connected", False)

    def rescan(self, name):
        self.api(name, f"/rest/db/scan?folder={FOLDER_ID}", method="POST", timeout=600)

    def wire(self):
        c = self.api("a", "/rest/system/connections")
        x = c["connections"].get(self.devs["b"]["id"], {})
        return x.get("outBytesTotal", 0), x.get("inBytesTotal", 0)


def make_pair(tool, base, shoal_bin):
    base.mkdir(parents=True)
    return ShoalPair(shoal_bin, base) if tool == "shoal" else SyncthingPair(base)


def close_pair(pair):
    for n in ("a", "b"):
        try:
            pair.stop(n)
        except Exception as e:  # keep cleaning up
            note(f"stopping {pair.tool} {n}: {e}")
    shutil.rmtree(pair.base, ignore_errors=True)


def wait_connected(pair, timeout=60):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if pair.connected():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{pair.tool}: devices did not connect in {timeout} s")


def snapshot(pair):
    """Counters of the pair right now: tool wire counters, kernel TCP counters of A, and
    (peak RSS, CPU s) of A and B."""
    s = {"wire": pair.wire(), "tcp": tcp_counters(pair.pid("a"))}
    for n in ("a", "b"):
        s[n] = proc_stats(pair.pid(n))
    return s


def delta(before, after, wall):
    r = {"wall": wall,
         "a2b": after["wire"][0] - (before["wire"][0] if before else 0),
         "b2a": after["wire"][1] - (before["wire"][1] if before else 0)}
    if after["tcp"] is not None:
        tb = before["tcp"] if before else (0, 0)
        if tb is not None and after["tcp"][0] >= tb[0] and after["tcp"][1] >= tb[1]:
            r["tcp"] = (after["tcp"][0] - tb[0], after["tcp"][1] - tb[1])
    for n in ("a", "b"):
        r["rss_" + n] = after[n][0]
        r["cpu_" + n] = after[n][1] - (before[n][1] if before else 0)
    return r


def add_anon(res, peak):
    for n in ("a", "b"):
        res["anon_" + n] = peak[n]["RssAnon"]
        res["file_" + n] = peak[n]["RssFile"]


def check_loopback(pair, where):
    for n in ("a", "b"):
        p = pair.devs[n]["proc"]
        if p is not None and p.poll() is None:
            for line in off_loopback_sockets(pair.pid(n)):
                note(f"{pair.tool} {n} ({where}) has a socket off loopback: {line}")


# ---------------------------------------------------------------- the cases

def copy_in(src, dst):
    """Puts the contents of src into dst (the A folder, not running yet)."""
    subprocess.run(["cp", "-a", f"{src}/.", str(dst)], check=True)


def initial_sync(pair, data, timeout, what):
    """Data into A, B started and idle, then A started: time until B equals A."""
    copy_in(data, pair.folder("a"))
    expect = Manifest.of(pair.folder("a"))
    pair.start("b")
    pair.wait_api("b")
    comp = Comparer(pair.folder("b"))
    sync_all()
    t0 = time.perf_counter()
    pair.start("a")
    sampler = RssSampler({"a": pair.pid("a"), "b": pair.pid("b")})
    t_done = comp.wait(expect, t0, timeout, what)
    wall = t_done - t0
    time.sleep(SETTLE)
    res = delta(None, snapshot(pair), wall)
    add_anon(res, sampler.finish())
    comp.verify(expect, what + " (B)")
    Comparer(pair.folder("a")).verify(expect, what + " (A after sync)")
    say(f"  {pair.tool} {what}: {wall:.3f} s, A->B {fmt_bytes(res['a2b'])}, B->A {fmt_bytes(res['b2a'])}, "
        f"RSS A {res['rss_a'] / MiB:.0f} MiB B {res['rss_b'] / MiB:.0f} MiB")
    return res, expect, comp


def stage_path(pair):
    d = pair.base / "stage"
    d.mkdir(exist_ok=True)
    return d


def change_case(pair, comp, expect, apply, timeout, what, rescan=False):
    """From a synced state: apply() changes A (it returns right after the change), time
    until B equals the new expected tree."""
    wait_connected(pair)
    before = snapshot(pair)
    for n in ("a", "b"):
        reset_hwm(pair.pid(n))
    sampler = RssSampler({"a": pair.pid("a"), "b": pair.pid("b")})
    t0 = time.perf_counter()
    apply()
    if rescan:
        pair.rescan("a")
    t_done = comp.wait(expect, t0, timeout, what)
    wall = t_done - t0
    time.sleep(SETTLE)
    res = delta(before, snapshot(pair), wall)
    add_anon(res, sampler.finish())
    comp.verify(expect, what + " (B)")
    Comparer(pair.folder("a")).verify(expect, what + " (A)")
    say(f"  {pair.tool} {what}{' (rescan)' if rescan else ''}: {wall:.3f} s, A->B {fmt_bytes(res['a2b'])}, "
        f"B->A {fmt_bytes(res['b2a'])}")
    return res


def big_session(tool, rep, cfg, cases, run_dir, shoal_bin, out):
    """L, then D1, D2 and R on the synced pair."""
    pair = make_pair(tool, run_dir / f"{tool}-big-{rep}", shoal_bin)
    try:
        res, expect, comp = initial_sync(pair, dataset_L(cfg), cfg["timeout"], "L")
        out.setdefault("L", {}).setdefault(tool, []).append(res)
        if not {"D1", "D2", "R"} & cases:
            return
        variants = [(False, "")] + ([(True, " rescan")] if tool == "syncthing" else [])
        stage = stage_path(pair)
        fa = pair.folder("a")
        # seed R: r1/keep.txt, r2/keep.txt and r1/r.bin (24 MiB), synced (untimed)
        rsrc = dataset_R(cfg)
        for rel, src in (("r1/keep.txt", None), ("r2/keep.txt", None), ("r1/r.bin", rsrc)):
            s = stage / "seed"
            if src is None:
                s.write_bytes(os.urandom(100))
            else:
                shutil.copyfile(src, s)
            h = b3(stage, ["seed"])[0]
            size = s.stat().st_size
            (fa / rel).parent.mkdir(exist_ok=True)
            os.rename(s, fa / rel)
            expect.set_file(rel, size, h)
        if tool == "syncthing":
            pair.rescan("a")
        comp.wait(expect, time.perf_counter(), cfg["timeout"], "seed R")
        size = cfg["l_size"]
        for rescan, suffix in variants:
            if "D1" in cases:
                name = "big2.bin" if rescan else "big0.bin"
                off = size // 2 - D_CHANGE // 2
                patch = os.urandom(D_CHANGE)
                s = stage / "d1"
                shutil.copyfile(fa / name, s)
                with open(s, "r+b") as f:
                    f.seek(off)
                    f.write(patch)
                expect.set_file(name, size, b3(stage, ["d1"])[0])
                s.unlink()

                def d1(name=name, off=off, patch=patch):
                    with open(fa / name, "r+b") as f:
                        f.seek(off)
                        f.write(patch)

                r = change_case(pair, comp, expect, d1, cfg["timeout"], "D1", rescan)
                out.setdefault("D1", {}).setdefault(tool + suffix, []).append(r)
            if "D2" in cases:
                name = "big3.bin" if rescan else "big1.bin"
                s = stage / "d2"
                with open(s, "wb") as f, open(fa / name, "rb") as src:
                    f.write(os.urandom(1))
                    shutil.copyfileobj(src, f, 4 * MiB)
                expect.set_file(name, size + 1, b3(stage, ["d2"])[0])
                sync_all()
                r = change_case(pair, comp, expect, lambda s=s, name=name: os.rename(s, fa / name),
                                cfg["timeout"], "D2", rescan)
                out.setdefault("D2", {}).setdefault(tool + suffix, []).append(r)
            if "R" in cases:
                src_rel, dst_rel = ("r2/r.bin", "r1/r.bin") if rescan else ("r1/r.bin", "r2/r.bin")
                h = expect.hashes[src_rel]
                expect.remove(src_rel)
                expect.set_file(dst_rel, cfg["r_size"], h)
                r = change_case(pair, comp, expect, lambda: os.rename(fa / src_rel, fa / dst_rel),
                                cfg["timeout"], "R", rescan)
                out.setdefault("R", {}).setdefault(tool + suffix, []).append(r)
        check_loopback(pair, "big session")
    finally:
        close_pair(pair)


def small_session(tool, rep, cfg, cases, run_dir, shoal_bin, out, reps):
    """S, then P samples and startup on the synced pair (20,000 files indexed)."""
    pair = make_pair(tool, run_dir / f"{tool}-small-{rep}", shoal_bin)
    try:
        res, expect, comp = initial_sync(pair, dataset_S(cfg), cfg["timeout"], "S")
        out.setdefault("S", {}).setdefault(tool, []).append(res)
        if "P" in cases:
            n = cfg["p_shoal"] if tool == "shoal" else math.ceil(cfg["p_syncthing"] / reps)
            wait_connected(pair)
            stage = stage_path(pair)
            fa, fb = pair.folder("a"), pair.folder("b")
            lat = []
            for i in range(n):
                data = os.urandom(1024)
                name = f"p-{rep}-{i:04}.txt"
                s = stage / name
                s.write_bytes(data)
                h = b3(stage, [name])[0]
                t0 = time.perf_counter()
                os.rename(s, fa / name)  # appears on A at once, complete
                while True:
                    try:
                        if (fb / name).read_bytes() == data:
                            break
                    except FileNotFoundError:
                        pass
                    if time.perf_counter() - t0 > 120:
                        raise TimeoutError(f"P sample {i}: not on B after 120 s")
                    time.sleep(0.0005 if tool == "shoal" else 0.002)
                lat.append(time.perf_counter() - t0)
                expect.set_file(name, 1024, h)
                time.sleep(0.05)
            out.setdefault("P", {}).setdefault(tool, []).extend(lat)
            comp.wait(expect, time.perf_counter(), 60, "after P")
            Comparer(fa).verify(expect, "after P (A)")
            say(f"  {tool} P: {n} samples, median {statistics.median(lat) * 1000:.0f} ms")
        check_loopback(pair, "small session")
        if "startup" in cases:
            pair.stop("a")
            samples = []
            for i in range(cfg["startup"]):
                sync_all()
                t0 = time.perf_counter()
                pair.start("a")
                samples.append(pair.wait_api("a") - t0)
                time.sleep(0.5)
                pair.stop("a")
            # the cost of one status round trip against a running service, for context
            extra = None
            if tool == "shoal":
                pair.start("a")
                pair.wait_api("a")
                c = []
                for _ in range(10):
                    t = time.perf_counter()
                    pair.status("a")
                    c.append(time.perf_counter() - t)
                extra = statistics.median(c)
                pair.stop("a")
            out.setdefault("startup", {}).setdefault(tool, []).append({"samples": samples, "client": extra})
            say(f"  {tool} startup: median {statistics.median(samples) * 1000:.1f} ms")
    finally:
        close_pair(pair)


def text_session(tool, rep, cfg, run_dir, shoal_bin, out):
    pair = make_pair(tool, run_dir / f"{tool}-text-{rep}", shoal_bin)
    try:
        data, _ = dataset_text(cfg)
        res, _, _ = initial_sync(pair, data, cfg["timeout"], "text")
        out.setdefault("text", {}).setdefault(tool, []).append(res)
        check_loopback(pair, "text session")
    finally:
        close_pair(pair)


# ---------------------------------------------------------------- references

def rsync_stats(text):
    def num(label):
        m = re.search(label + r":\s*([\d,]+)", text)
        return int(m.group(1).replace(",", "")) if m else None
    return num("Total bytes sent"), num("Total bytes received")


def ref_copy(src, work, out, case, with_b3=True):
    """cp -r, cp -r + sync, rsync -a, rsync -a + sync, b3sum of src."""
    dst = work / "ref-dst"
    shutil.rmtree(dst, ignore_errors=True)
    sync_all()
    w, rss, cpu, _ = timed(["cp", "-r", src, dst])
    ws, _, _, _ = timed(["sync"])
    R = out.setdefault(case, {})
    R.setdefault("cp -r", []).append({"wall": w, "rss": rss, "cpu": cpu})
    R.setdefault("cp -r + sync", []).append({"wall": w + ws, "rss": rss, "cpu": cpu})
    shutil.rmtree(dst)
    sync_all()
    for label, flags in (("rsync -a", ["-a"]),) + ((("rsync -az", ["-az"]),) if case == "text" else ()):
        sync_all()
        w, rss, cpu, text = timed(["rsync", *flags, "--stats", f"{src}/", f"{dst}/"])
        ws, _, _, _ = timed(["sync"])
        sent, recv = rsync_stats(text)
        R.setdefault(label, []).append({"wall": w, "rss": rss, "cpu": cpu, "a2b": sent, "b2a": recv})
        R.setdefault(label + " + sync", []).append({"wall": w + ws, "rss": rss, "cpu": cpu, "a2b": sent, "b2a": recv})
        shutil.rmtree(dst)
        sync_all()
    if with_b3:
        files = sorted(r for r, v in listing(src).items() if v[0] == "f")
        t0 = time.perf_counter()
        b3(src, files)
        R.setdefault("b3sum --num-threads 2", []).append({"wall": time.perf_counter() - t0})


def ref_delta(cfg, work, out, cases):
    """rsync --no-whole-file and rsync -a (whole file) on D1/D2/R, local to local."""
    L = dataset_L(cfg)
    d = work / "ref-delta"
    for case in ("D1", "D2", "R"):
        if case not in cases:
            continue
        for label, flags in (("rsync -a --no-whole-file", ["-a", "--no-whole-file"]), ("rsync -a", ["-a"])):
            shutil.rmtree(d, ignore_errors=True)
            (d / "src").mkdir(parents=True)
            (d / "dst").mkdir()
            if case == "R":
                rsrc = dataset_R(cfg)
                for side in ("src", "dst"):
                    for sub in ("r1", "r2"):
                        (d / side / sub).mkdir()
                shutil.copy2(rsrc, d / "dst" / "r1" / "r.bin")
                shutil.copy2(rsrc, d / "src" / "r2" / "r.bin")
                flags = flags + ["--delete"]
            else:
                shutil.copy2(L / "big0.bin", d / "dst" / "big.bin")  # dataset mtime kept
                if case == "D1":
                    shutil.copyfile(L / "big0.bin", d / "src" / "big.bin")
                    with open(d / "src" / "big.bin", "r+b") as f:
                        f.seek(cfg["l_size"] // 2 - D_CHANGE // 2)
                        f.write(os.urandom(D_CHANGE))
                else:
                    with open(d / "src" / "big.bin", "wb") as f, open(L / "big0.bin", "rb") as s:
                        f.write(os.urandom(1))
                        shutil.copyfileobj(s, f, 4 * MiB)
            sync_all()
            w, rss, cpu, text = timed(["rsync", *flags, "--stats", f"{d}/src/", f"{d}/dst/"])
            ws, _, _, _ = timed(["sync"])
            sent, recv = rsync_stats(text)
            out.setdefault(case, {}).setdefault(label, []).append(
                {"wall": w, "rss": rss, "cpu": cpu, "a2b": sent, "b2a": recv})
            out[case].setdefault(label + " + sync", []).append(
                {"wall": w + ws, "rss": rss, "cpu": cpu, "a2b": sent, "b2a": recv})
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- report

def fmt_bytes(n):
    if n is None:
        return "–"
    if n < 10 * KiB:
        return f"{n:,} B"
    if n < 10 * MiB:
        return f"{n / KiB:,.1f} KiB"
    return f"{n / MiB:,.1f} MiB"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]


def wall_cell(runs):
    ws = [r["wall"] for r in runs]
    if len(ws) == 1:
        return f"{ws[0]:.3f}"
    return f"{statistics.median(ws):.3f} ({min(ws):.3f}–{max(ws):.3f})"


def ratio_cell(runs, refs):
    if not refs or len(refs) != len(runs):
        return "", None
    rs = [a["wall"] / b["wall"] for a, b in zip(runs, refs)]
    m = statistics.median(rs)
    return (f"{m:.2f}×" if len(rs) == 1 else f"{m:.2f}× ({min(rs):.2f}–{max(rs):.2f})"), m


def case_table(case, R, tools_order, cp_ref, rsync_ref, verdict_fn):
    head = ["run", "wall s, median (min–max)", f"÷ {cp_ref}" if cp_ref else None, f"÷ {rsync_ref}",
            "wire A→B", "wire B→A", "TCP A→B / B→A", "peak RSS A / B (of it heap, sampled)", "CPU s A / B", "target", "verdict"]
    head = [h for h in head if h is not None]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in tools_order:
        runs = R.get(name)
        if not runs:
            continue
        cells = [name, wall_cell(runs)]
        ratios = {}
        if cp_ref:
            c, ratios["cp"] = ratio_cell(runs, R.get(cp_ref)) if name != cp_ref else ("", None)
            cells.append(c)
        c, ratios["rsync"] = ratio_cell(runs, R.get(rsync_ref)) if name != rsync_ref else ("", None)
        cells.append(c)
        a2b = [r.get("a2b") for r in runs]
        b2a = [r.get("b2a") for r in runs]
        cells.append(fmt_bytes(max(a2b)) if None not in a2b else "–")
        cells.append(fmt_bytes(max(b2a)) if None not in b2a else "–")
        tcp = [r.get("tcp") for r in runs]
        cells.append(f"{fmt_bytes(max(t[0] for t in tcp))} / {fmt_bytes(max(t[1] for t in tcp))}"
                     if tcp and None not in tcp else "–")
        if "rss_a" in runs[0]:
            cells.append(f"{max(r['rss_a'] for r in runs) / MiB:.0f} / {max(r['rss_b'] for r in runs) / MiB:.0f} MiB "
                         f"(anon {max(r['anon_a'] for r in runs) / MiB:.0f} / {max(r['anon_b'] for r in runs) / MiB:.0f})")
            cells.append(f"{med([r['cpu_a'] for r in runs]):.2f} / {med([r['cpu_b'] for r in runs]):.2f}")
        elif "rss" in runs[0]:
            cells.append(f"{max(r['rss'] for r in runs) / MiB:.0f} MiB")
            cells.append(f"{med([r['cpu'] for r in runs]):.2f}")
        else:
            cells += ["", ""]
        target, verdict = verdict_fn(name, runs, ratios)
        cells += [target, verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(results, meta, cfg, cases, reps):
    out = []
    out.append("# Shoal against Syncthing, side by side (`bench/suite.py`)\n")
    out.append(f"- Date: {meta['date']}; machine: {meta['machine']}")
    out.append(f"- Shoal: commit {meta['commit']}; {meta['syncthing']}; {meta['tools']}")
    out.append(f"- Run: `{meta['command']}`; {reps} repetition(s){' (--quick: smaller datasets)' if meta['quick'] else ''}; "
               f"took {meta['elapsed'] / 60:.1f} min; load average at start {meta['load0']}, at end {meta['load1']}")
    out.append(f"- Datasets: {meta['datasets']}")
    out.append(f"- Written to: {meta['fs']}")
    out.append("- Times: from A's service start (L, S, text) or from the change on A (D1, D2, R, P) until B "
               "equals A by names, types, sizes, symlink targets and BLAKE3 of every file. Ratios are taken "
               "within each repetition, then the median (min–max) over repetitions. Wire: the tool's own "
               "counters (Shoal: `status --json` in/out bytes; Syncthing: `/rest/system/connections`), "
               "read 1 s after B equals A; TCP: the kernel's counters of A's connections (`ss -ti`, "
               "bytes acked / received) as a cross-check. Peak RSS: VmHWM (reset before each change "
               "case); CPU: utime + stime of each process over the case. Maxima over repetitions for "
               "bytes and RSS, medians for time and CPU.")
    out.append("- Syncthing runs at its defaults (watcher on, 10 s delay, `compression` = metadata) "
               "except: discovery, relays, NAT, usage and crash reporting and upgrades off, 127.0.0.1 "
               "only, and `setLowPriority` false (see bench/README.md). \"syncthing rescan\" rows: the "
               "same change followed at once by `POST /rest/db/scan`, to show its transfer cost "
               "without the watcher's 10 s delay.")
    out.append("")

    summary = ["| case | target (issue 8) | Shoal | Syncthing 1.19.2 | Shoal verdict |", "|---|---|---|---|---|"]
    sections = []
    verdicts = {}

    def rss_max(runs):
        return max(max(r["rss_a"], r["rss_b"]) for r in runs)

    def wire_max(runs):
        return max(r["a2b"] + r["b2a"] for r in runs)

    for case in ("L", "S", "text"):
        if case not in cases or case not in results:
            continue
        R = results[case]
        ref_cp, ref_rs = "cp -r + sync", "rsync -a"
        limit = {"L": 1.5, "S": 3.0}.get(case)

        def vf(name, runs, ratios, limit=limit, case=case):
            if name != "shoal" or limit is None:
                return "", ""
            okt = ratios.get("cp") is not None and ratios["cp"] <= limit
            okr = rss_max(runs) <= 64 * MiB
            verdicts[case] = okt and okr
            return (TARGETS[case], f"time {'PASS' if okt else 'MISS'} ({ratios.get('cp') or 0:.2f}×); "
                    f"RSS {'PASS' if okr else 'MISS'} ({rss_max(runs) / MiB:.0f} MiB)")

        order = ["shoal", "syncthing", "cp -r", "cp -r + sync", "rsync -a", "rsync -a + sync",
                 "rsync -az", "rsync -az + sync", "b3sum --num-threads 2"]
        title = f"{case}: {meta.get(case)}, initial sync"
        sections.append(f"## {title}\n")
        sections += case_table(case, R, order, ref_cp, ref_rs, vf)
        sections.append("")
        sh, st = R.get("shoal"), R.get("syncthing")
        if case == "text":
            rs = R.get("rsync -a", [{}])[0].get("a2b")
            rz = R.get("rsync -az", [{}])[0].get("a2b")
            def cell(runs):
                if not runs:
                    return "–"
                return (f"{fmt_bytes(wire_max(runs))} on the wire ({wire_max(runs) / rs:.2f}× rsync -a, "
                        f"{wire_max(runs) / rz:.2f}× rsync -az); {med([r['wall'] for r in runs]):.2f} s")
            summary.append(f"| text | {TARGETS['text']} (rsync -a {fmt_bytes(rs)}, -az {fmt_bytes(rz)}) | "
                           f"{cell(sh)} | {cell(st)} | – |")
        else:
            def cell(runs):
                if not runs or not R.get(ref_cp):
                    return "–"
                rr = [a["wall"] / b["wall"] for a, b in zip(runs, R[ref_cp])]
                return f"{statistics.median(rr):.2f}× cp+sync ({med([r['wall'] for r in runs]):.2f} s), RSS ≤ {rss_max(runs) / MiB:.0f} MiB"
            v = verdicts.get(case)
            summary.append(f"| {case} | {TARGETS[case]} | {cell(sh)} | {cell(st)} | "
                           f"{'PASS' if v else 'MISS' if v is not None else '–'} |")

    for case in ("D1", "D2", "R"):
        if case not in cases or case not in results:
            continue
        R = results[case]
        ref = "rsync -a --no-whole-file"
        wlimit = {"D1": 1.2 * D_CHANGE, "D2": 256 * KiB, "R": 64 * KiB}[case]

        def vf(name, runs, ratios, case=case, wlimit=wlimit):
            if name != "shoal":
                return "", ""
            okw = wire_max(runs) <= wlimit
            parts = [f"wire {'PASS' if okw else 'MISS'} ({fmt_bytes(wire_max(runs))})"]
            ok = okw
            if case != "R":
                okt = ratios.get("rsync") is not None and ratios["rsync"] <= 1.0
                parts.insert(0, f"time {'PASS' if okt else 'MISS'} ({ratios.get('rsync') or 0:.2f}×)")
                ok = ok and okt
            verdicts[case] = ok
            return TARGETS[case], "; ".join(parts)

        order = ["shoal", "syncthing", "syncthing rescan", "rsync -a --no-whole-file",
                 "rsync -a --no-whole-file + sync", "rsync -a", "rsync -a + sync"]
        title = {"D1": f"D1: 1 MiB overwritten in the middle of a synced {cfg['l_size'] // MiB} MiB file",
                 "D2": f"D2: one byte inserted at the start of a synced {cfg['l_size'] // MiB} MiB file",
                 "R": f"R: a synced {cfg['r_size'] // MiB} MiB file renamed into another directory"}[case]
        sections.append(f"## {title}\n")
        sections += case_table(case, R, order, None, ref, vf)
        sections.append("")

        def cell(runs):
            if not runs:
                return "–"
            s = f"{med([r['wall'] for r in runs]):.2f} s, {fmt_bytes(wire_max(runs))} on the wire"
            if case != "R" and R.get(ref):
                rr = [a["wall"] / b["wall"] for a, b in zip(runs, R[ref])]
                s += f", {statistics.median(rr):.2f}× rsync"
            return s
        st = cell(R.get("syncthing"))
        if R.get("syncthing rescan"):
            st += f" (with rescan: {cell(R.get('syncthing rescan'))})"
        v = verdicts.get(case)
        summary.append(f"| {case} | {TARGETS[case]} | {cell(R.get('shoal'))} | {st} | "
                       f"{'PASS' if v else 'MISS' if v is not None else '–'} |")

    if "P" in cases and "P" in results:
        R = results["P"]
        sections.append("## P: a new 1 KiB file on A until identical on B (watcher on, default settings)\n")
        sections.append("| run | samples | p50 ms | p90 ms | p99 ms | max ms | target | verdict |")
        sections.append("|---|---|---|---|---|---|---|---|")
        cells = {}
        for name in ("shoal", "syncthing"):
            lat = R.get(name)
            if not lat:
                continue
            ms = [x * 1000 for x in lat]
            p50, p90, p99 = pct(ms, .5), pct(ms, .9), pct(ms, .99)
            t = v = ""
            if name == "shoal":
                ok50, ok99 = p50 <= 150, p99 <= 500
                verdicts["P"] = ok50 and ok99
                t = TARGETS["P"]
                v = f"p50 {'PASS' if ok50 else 'MISS'}; p99 {'PASS' if ok99 else 'MISS'}"
            sections.append(f"| {name} | {len(ms)} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {max(ms):.1f} | {t} | {v} |")
            cells[name] = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({len(ms)} samples)"
        sections.append("")
        v = verdicts.get("P")
        summary.append(f"| P | {TARGETS['P']} | {cells.get('shoal', '–')} | {cells.get('syncthing', '–')} | "
                       f"{'PASS' if v else 'MISS' if v is not None else '–'} |")

    if "startup" in cases and "startup" in results:
        R = results["startup"]
        sections.append(f"## startup: process start until the control API answers (home with {meta['S']} indexed)\n")
        sections.append("| run | samples | median ms | min ms | max ms | of which one client round trip | target | verdict |")
        sections.append("|---|---|---|---|---|---|---|---|")
        cells = {}
        for name in ("shoal", "syncthing"):
            runs = R.get(name)
            if not runs:
                continue
            ms = [x * 1000 for r in runs for x in r["samples"]]
            client = med([r["client"] for r in runs])
            m = statistics.median(ms)
            t = v = ""
            if name == "shoal":
                verdicts["startup"] = m <= 50
                t, v = TARGETS["startup"], "PASS" if m <= 50 else "MISS"
            api = "`shoal status --json` → service_running" if name == "shoal" else "GET /rest/system/ping"
            sections.append(f"| {name} ({api}) | {len(ms)} | {m:.1f} | {min(ms):.1f} | {max(ms):.1f} | "
                            f"{f'{client * 1000:.1f} ms' if client else '–'} | {t} | {v} |")
            cells[name] = f"{m:.0f} ms (max {max(ms):.0f})"
        sections.append("")
        v = verdicts.get("startup")
        summary.append(f"| startup | {TARGETS['startup']} | {cells.get('shoal', '–')} | {cells.get('syncthing', '–')} | "
                       f"{'PASS' if v else 'MISS' if v is not None else '–'} |")

    if "scale" in cases and "scale" in results:
        import scale as scale_case
        text, verdict = scale_case.report(results["scale"])
        sc = results["scale"]
        summary.append(f"| scale | {TARGETS['scale']} | RSS {max(sc['rss_a'], sc['rss_b']) / MiB:.0f} MiB, "
                       f"{sc['db_bytes'] / sc['files']:.0f} B/file, warm {max(sc['warm']):.2f} s | not run | {verdict} |")
        sections.append(text)
    out.append("## Summary\n")
    out += summary
    out.append("")
    out += sections
    if LOG:
        out.append("## Observations during the run\n")
        out += [f"- {x}" for x in LOG]
        out.append("")
    out.append("## Raw per-repetition figures\n")
    out.append("<details><summary>JSON</summary>\n\n```json")
    out.append(json.dumps(results, indent=None, default=lambda o: list(o) if isinstance(o, tuple) else str(o))[:200000])
    out.append("```\n</details>\n")
    return "\n".join(out)


# ---------------------------------------------------------------- setup and main

def ensure_tools():
    need = [pkg for cmd, pkg in (("syncthing", "syncthing"), ("rsync", "rsync"), ("b3sum", "b3sum"))
            if not shutil.which(cmd)]
    if need:
        say(f"installing {' '.join(need)}")
        r = subprocess.run(["apt-get", "install", "-y", *need])
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(["apt-get", "install", "-y", *need], check=True)


class Scratch:
    """Where the run writes. By default a fresh journaled ext4 file system on a loop device
    (direct I/O onto a sparse file of the root file system), mounted for the run and removed
    after it: the same for every run, and free of the history of the machine's own file
    system. (This machine's root is ext4 mounted without a journal; there the kernel skips
    inodes freed in the last 1-6 minutes when it allocates new ones, walking past every one
    of them, so creating files right after deleting many costs up to 10x more system time:
    `cp -r` of 20,000 small files took 0.7 s or 8.8 s depending on what had been deleted
    just before.) With --fs dir, or when mounting fails, a directory under bench/work/."""

    def __init__(self, kind):
        self.kind, self.img, self.loop, self.mnt = kind, None, None, None
        self.base = Path(tempfile.mkdtemp(prefix="suite-run-", dir=WORK))
        self.dir = self.base
        self.desc = "a directory of the root file system (" + fs_desc(WORK) + ")"
        if kind == "loop":
            try:
                self.img = self.base / "fs.img"
                with open(self.img, "wb") as f:
                    f.truncate(40 << 30)
                subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                                str(self.img)], check=True, capture_output=True)
                self.loop = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(self.img)],
                                           check=True, capture_output=True, text=True).stdout.strip()
                self.mnt = self.base / "mnt"
                self.mnt.mkdir()
                subprocess.run(["mount", self.loop, str(self.mnt)], check=True, capture_output=True)
                self.dir = self.mnt / "run"
                self.dir.mkdir()
                self.desc = ("a fresh ext4 file system (journal, ordered data; mkfs defaults) on a loop "
                             "device with direct I/O, backed by a sparse file of the root file system ("
                             + fs_desc(WORK) + ")")
            except (subprocess.CalledProcessError, OSError) as e:
                err = getattr(e, "stderr", "") or str(e)
                note(f"could not mount a scratch file system ({err.strip()[:200]}); writing to a "
                     f"directory of the root file system instead")
                self.close_mount()
                self.dir = self.base

    def close_mount(self):
        if self.mnt is not None and os.path.ismount(self.mnt):
            for _ in range(20):
                if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
            self.loop = None
        self.mnt = None

    def close(self):
        self.close_mount()
        shutil.rmtree(self.base, ignore_errors=True)


def fs_desc(path):
    fs = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    journal = ""
    try:
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
        dev = subprocess.run(["findmnt", "-no", "SOURCE", "-T", str(path)], capture_output=True, text=True).stdout.strip()
        name = os.path.basename(dev)
        for line in dmesg.splitlines():
            if f"EXT4-fs ({name}): mounted" in line:
                journal = ", without journal" if "without journal" in line else ", with journal"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{fs}{journal}"


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem / (1 << 30):.1f} GiB RAM, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, 1 with --quick)")
    ap.add_argument("--cases", default=",".join(ALL_CASES), help="comma-separated subset of " + ",".join(ALL_CASES))
    ap.add_argument("--quick", action="store_true", help="one repetition on smaller datasets (smoke test)")
    ap.add_argument("--out", default=str(RESULTS), help="Markdown file to write")
    ap.add_argument("--tools", default="shoal,syncthing", help="which tools to run (default both)")
    ap.add_argument("--fs", choices=["loop", "dir"], default="loop",
                    help="write on a fresh ext4 on a loop device (default) or in a directory under bench/work")
    args = ap.parse_args()
    cases = set(c.strip() for c in args.cases.split(",") if c.strip())
    bad = cases - set(ALL_CASES)
    if bad:
        ap.error(f"unknown case(s) {sorted(bad)}; known: {ALL_CASES}")
    tools = [t for t in args.tools.split(",") if t]
    cfg = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 3)
    started = time.time()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

    ensure_tools()
    say("building shoal (release)")
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    DATA.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(args.fs)
    run_dir = scratch.dir
    # a private copy of the binary: other work may rebuild target/ while the suite runs
    shoal_bin = run_dir / "shoal"
    shutil.copy2(ROOT / "target" / "release" / "shoal", shoal_bin)
    if os.environ.get("SHOAL_BENCH_BIN"):  # e.g. to profile with perf, which wants the file kept
        shoal_bin = Path(os.environ["SHOAL_BENCH_BIN"])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml", "Cargo.lock"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "commit": commit + (" + uncommitted changes in src/ (built from the work tree)" if dirty else ""),
        "syncthing": syncthing_version(),
        "tools": ", ".join(x for x in (
            subprocess.run(["rsync", "--version"], capture_output=True, text=True).stdout.splitlines()[0].split("  ")[0],
            subprocess.run(["b3sum", "--version"], capture_output=True, text=True).stdout.strip(),
            subprocess.run(["cp", "--version"], capture_output=True, text=True).stdout.splitlines()[0]) if x),
        "command": " ".join(["python3 bench/suite.py", *sys.argv[1:]]),
        "quick": args.quick,
        "load0": open("/proc/loadavg").read().split()[:3],
        "fs": scratch.desc,
    }
    results = {}
    try:
        DATA.mkdir(parents=True, exist_ok=True)
        big = {"L", "D1", "D2", "R"} & cases
        small = {"S", "P", "startup"} & cases
        L = dataset_L(cfg) if big else None
        S = dataset_S(cfg) if small else None
        if {"R"} & cases:
            dataset_R(cfg)
        T, tsrc = dataset_text(cfg) if "text" in cases else (None, None)
        meta["L"] = f"{cfg['l_files']} × {cfg['l_size'] // MiB} MiB random"
        meta["S"] = f"{cfg['s_dirs'] * cfg['s_per_dir']:,} × {cfg['s_size'] // KiB} KiB random in {cfg['s_dirs']} directories"
        ds = [f"L {meta['L']}", f"S {meta['S']}", f"R {cfg['r_size'] // MiB} MiB"]
        if T:
            n, b = tree_stats(T)
            m = Manifest.of(T)
            uniq = {}
            for r, h in m.hashes.items():
                uniq[h] = m.shape[r][1]
            meta["text"] = (f"a copy of {tsrc} ({n:,} files, {b / MiB:.1f} MiB; {sum(uniq.values()) / MiB:.1f} MiB "
                            f"of distinct file contents, the rest whole-file duplicates)")
            ds.append(f"text {meta['text']}")
        meta["datasets"] = "; ".join(ds) + " (generated once under bench/work/suite/, page cache warm)"
        for rep in range(reps):
            say(f"== repetition {rep + 1}/{reps} (load {open('/proc/loadavg').read().split()[:3]})")
            order = tools if rep % 2 == 0 else list(reversed(tools))
            if big:
                if "L" in cases:
                    ref_copy(L, run_dir, results, "L")
                ref_delta(cfg, run_dir, results, cases)
                for tool in order:
                    big_session(tool, rep, cfg, cases, run_dir, shoal_bin, results)
            if small:
                if "S" in cases:
                    ref_copy(S, run_dir, results, "S")
                for tool in order:
                    small_session(tool, rep, cfg, cases, run_dir, shoal_bin, results, reps)
            if "text" in cases:
                ref_copy(T, run_dir, results, "text", with_b3=False)
                for tool in order:
                    text_session(tool, rep, cfg, run_dir, shoal_bin, results)
        if "scale" in cases:
            sys.modules.setdefault("suite", sys.modules[__name__])  # scale.py shares this module's state
            import scale as scale_case
            say("== scale (once)")
            results["scale"] = scale_case.run(shoal_bin, run_dir / "scale", cfg["scale_files"])
    finally:
        stop_all()
        scratch.close()
    meta["elapsed"] = time.time() - started
    meta["load1"] = open("/proc/loadavg").read().split()[:3]
    raw = WORK / "suite-last.json"
    raw.write_text(json.dumps({"meta": meta, "results": results}))
    say(f"raw figures in {raw}")
    text = report(results, meta, cfg, cases, reps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    say(text.split("## Raw")[0])
    say(f"written to {args.out}")


if __name__ == "__main__":
    main()
