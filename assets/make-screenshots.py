#!/usr/bin/env python3
"""Real screenshots of `shoal tui` for the README.

Sets up three devices on loopback in a temporary directory (a workstation whose
dashboard is shot, a NAS it syncs with, and a laptop that knocks without being trusted),
runs the real binary's dashboard in a detached tmux session of 100x30, captures the
screen with its colours (`tmux capture-pane -e -p`) and draws the captured cells into a
PNG with Pillow and DejaVu Sans Mono.

    python3 assets/make-screenshots.py [path/to/shoal]

Needs tmux, Pillow (`pip install pillow`) and the DejaVu fonts
(`apt-get install fonts-dejavu-core`). Writes assets/tui-overview.png and
assets/tui-folders.png (and the captured ANSI text beside them, *.ansi).
"""

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
COLS, ROWS = 100, 30
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_SIZE = 15
CELL_H = 19
PAD = 14

# A dark palette for the 16 ANSI colours (normal, then bright).
PALETTE = [
    (0x1d, 0x20, 0x26), (0xe0, 0x6c, 0x75), (0x98, 0xc3, 0x79), (0xe5, 0xc0, 0x7b),
    (0x61, 0xaf, 0xef), (0xc6, 0x78, 0xdd), (0x56, 0xb6, 0xc2), (0xdc, 0xdf, 0xe4),
    (0x6b, 0x72, 0x80), (0xef, 0x85, 0x8e), (0xb0, 0xdb, 0x91), (0xf0, 0xd0, 0x90),
    (0x7f, 0xc4, 0xf5), (0xd9, 0x94, 0xe8), (0x72, 0xcf, 0xda), (0xff, 0xff, 0xff),
]
DEFAULT_FG = (0xd4, 0xd8, 0xde)
DEFAULT_BG = (0x20, 0x23, 0x2a)


def xterm256(n):
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


# Capturing.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(bin_, home, *args):
    out = subprocess.run(
        [bin_, "--home", str(home), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def wait_for(cond, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


class Tmux:
    def __init__(self, sock, name, cmd):
        self.sock, self.name = str(sock), name
        self.tmux("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), cmd)

    def tmux(self, *args):
        return subprocess.run(
            ["tmux", "-S", self.sock, *args], check=True, capture_output=True, text=True
        ).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self, colours=False):
        args = ["capture-pane", "-p", "-t", self.name]
        if colours:
            args.insert(1, "-e")
        return self.tmux(*args)

    def expect(self, needle, timeout=15.0):
        if not wait_for(lambda: needle in self.screen(), timeout):
            raise SystemExit(f"the dashboard never showed {needle!r}:\n{self.screen()}")

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-session", "-t", self.name],
                       capture_output=True)


def capture(bin_):
    tmp = Path(tempfile.mkdtemp(prefix="shoal-shots-"))
    procs = []
    tmux = None
    try:
        ws, nas, laptop = tmp / "workstation", tmp / "nas", tmp / "laptop"
        pw, pn, pl = free_port(), free_port(), free_port()
        run(bin_, ws, "init", "--name", "workstation", "--listen", f"127.0.0.1:{pw}")
        run(bin_, nas, "init", "--name", "nas", "--listen", f"127.0.0.1:{pn}")
        run(bin_, laptop, "init", "--name", "laptop", "--listen", f"127.0.0.1:{pl}")
        id_ws, id_nas = run(bin_, ws, "id"), run(bin_, nas, "id")
        run(bin_, ws, "device", "add", id_nas, "--name", "nas", "--addr", f"127.0.0.1:{pn}")
        # A phone that is trusted but not around (one of Syncthing's test IDs).
        run(bin_, ws, "device", "add",
            "IICARZI-OR523G3-TAED5QZ-3A2LATC-DNYMGGA-FTBM734-PTTWSGI-3H3A4QG",
            "--name", "phone")
        run(bin_, nas, "device", "add", id_ws, "--name", "workstation",
            "--addr", f"127.0.0.1:{pw}")
        rnd = random.Random(7)
        for fid, label, share in [("docs", "Documents", True), ("photos", "Photos", True),
                                  ("notes", "Notes", False)]:
            path = tmp / "ws-data" / label
            args = ["folder", "add", str(path), "--id", fid, "--label", label]
            if share:
                args += ["--share", id_nas]
            run(bin_, ws, *args)
            if share:
                run(bin_, nas, "folder", "add", str(tmp / "nas-data" / label), "--id", fid,
                    "--label", label, "--share", id_ws)
        run(bin_, nas, "folder", "add", str(tmp / "nas-data" / "Camera"), "--id", "camera",
            "--label", "Camera", "--share", id_ws)
        for rel, size in [("Documents/report-q3.pdf", 420_000), ("Documents/cv.odt", 38_000),
                          ("Photos/2026/lisbon-01.jpg", 2_400_000),
                          ("Photos/2026/lisbon-02.jpg", 2_100_000),
                          ("Notes/todo.md", 900)]:
            p = tmp / "ws-data" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rnd.randbytes(size))
        for rel, size in [("Camera/IMG_0001.jpg", 3_100_000), ("Camera/IMG_0002.jpg", 2_900_000)]:
            p = tmp / "nas-data" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rnd.randbytes(size))

        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        procs.append(subprocess.Popen([bin_, "--home", str(nas), "serve"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        tmux = Tmux(tmp / "tmux.sock", "shoal-shots", f"'{bin_}' --home '{ws}' tui")
        tmux.expect("connected")
        # A laptop that knows the workstation's address but is not trusted by it.
        run(bin_, laptop, "device", "add", id_ws, "--name", "workstation",
            "--addr", f"127.0.0.1:{pw}")
        procs.append(subprocess.Popen([bin_, "--home", str(laptop), "serve"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        tmux.expect("Pending (2)")
        # Changes made on the NAS arrive and show as recent changes.
        for rel, size in [("Documents/meeting-notes.md", 4_200),
                          ("Documents/budget-2026.ods", 61_000),
                          ("Documents/plans/roadmap.md", 7_300)]:
            p = tmp / "nas-data" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rnd.randbytes(size))
            time.sleep(0.6)
        tmux.keys("2")
        tmux.expect("roadmap.md")
        tmux.keys("1")
        # A large file on its way gives the rates and sparklines something to show.
        p = tmp / "nas-data" / "Photos" / "2026" / "lisbon-panorama.tif"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rnd.randbytes(80_000_000))
        wait_for(lambda: re.search(r"↓ [1-9][0-9.]* MB/s", tmux.screen()), 10)
        shots = {"overview": tmux.screen(colours=True)}
        tmux.keys("2")
        time.sleep(0.5)
        shots["folders"] = tmux.screen(colours=True)
        tmux.keys("q")
        time.sleep(1)
        return shots
    finally:
        if tmux:
            tmux.kill()
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# Drawing.

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def parse(ansi):
    """The screen as rows of (char, fg, bg, bold)."""
    rows = []
    fg, bg, bold, reverse = None, None, False, False
    for line in ansi.split("\n")[:ROWS]:
        cells = []
        pos = 0
        for m in list(SGR.finditer(line)) + [None]:
            text = line[pos:m.start()] if m else line[pos:]
            for ch in text:
                f, b = (bg, fg) if reverse else (fg, bg)
                cells.append((ch, f, b, bold, reverse))
            if m is None:
                break
            pos = m.end()
            codes = [int(c) if c else 0 for c in m.group(1).split(";")]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold, reverse = None, None, False, False
                elif c == 1:
                    bold = True
                elif c == 22:
                    bold = False
                elif c == 7:
                    reverse = True
                elif c == 27:
                    reverse = False
                elif 30 <= c <= 37:
                    fg = PALETTE[c - 30]
                elif 90 <= c <= 97:
                    fg = PALETTE[c - 90 + 8]
                elif 40 <= c <= 47:
                    bg = PALETTE[c - 40]
                elif 100 <= c <= 107:
                    bg = PALETTE[c - 100 + 8]
                elif c == 39:
                    fg = None
                elif c == 49:
                    bg = None
                elif c in (38, 48) and i + 1 < len(codes):
                    if codes[i + 1] == 5 and i + 2 < len(codes):
                        colour = xterm256(codes[i + 2])
                        i += 2
                    elif codes[i + 1] == 2 and i + 4 < len(codes):
                        colour = tuple(codes[i + 2:i + 5])
                        i += 4
                    else:
                        colour = None
                    if c == 38:
                        fg = colour
                    else:
                        bg = colour
                i += 1
        rows.append(cells)
    while len(rows) < ROWS:
        rows.append([])
    return rows


# Box-drawing lines as (up, down, left, right) arms, heavy or not.
BOX = {
    "─": (0, 0, 1, 1), "│": (1, 1, 0, 0), "┌": (0, 1, 0, 1), "┐": (0, 1, 1, 0),
    "└": (1, 0, 0, 1), "┘": (1, 0, 1, 0), "├": (1, 1, 0, 1), "┤": (1, 1, 1, 0),
    "┬": (0, 1, 1, 1), "┴": (1, 0, 1, 1), "┼": (1, 1, 1, 1), "━": (0, 0, 2, 2),
}
EIGHTHS = {"▁": 1, "▂": 2, "▃": 3, "▄": 4, "▅": 5, "▆": 6, "▇": 7, "█": 8}


def draw_cell(d, x, y, w, h, ch, fg):
    """Draws box and block characters as shapes so they join; False for normal text."""
    if ch in BOX:
        up, down, left, right = BOX[ch]
        cx, cy = x + w // 2, y + h // 2
        for arm, box in [(up, (cx, y, cx, cy)), (down, (cx, cy, cx, y + h)),
                         (left, (x, cy, cx, cy)), (right, (cx, cy, x + w, cy))]:
            if arm:
                d.line(box, fill=fg, width=arm if arm == 1 else 3)
        return True
    if ch in EIGHTHS:
        top = y + h - round(h * EIGHTHS[ch] / 8)
        d.rectangle((x, top, x + w - 1, y + h - 1), fill=fg)
        return True
    if ch == "▀":
        d.rectangle((x, y, x + w - 1, y + h // 2 - 1), fill=fg)
        return True
    return False


def render(ansi, out):
    regular = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono.ttf"), FONT_SIZE)
    bold = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-Bold.ttf"), FONT_SIZE)
    w = round(regular.getlength("M"))
    h = CELL_H
    img = Image.new("RGB", (COLS * w + 2 * PAD, ROWS * h + 2 * PAD), DEFAULT_BG)
    d = ImageDraw.Draw(img)
    for r, cells in enumerate(parse(ansi)):
        for c, (ch, fg, bg, is_bold, reverse) in enumerate(cells[:COLS]):
            x, y = PAD + c * w, PAD + r * h
            fg = fg or (DEFAULT_BG if reverse else DEFAULT_FG)
            bg = bg or (DEFAULT_FG if reverse else None)
            if bg:
                d.rectangle((x, y, x + w - 1, y + h - 1), fill=bg)
            if ch == " " or draw_cell(d, x, y, w, h, ch, fg):
                continue
            font = bold if is_bold else regular
            d.text((x, y + h - 4), ch, font=font, fill=fg, anchor="ls")
    img.save(out)
    print(f"wrote {out.relative_to(ROOT)} ({img.width}x{img.height})")


def main():
    bin_ = sys.argv[1] if len(sys.argv) > 1 else None
    if not bin_:
        for cand in [ROOT / "target/release/shoal", ROOT / "target/debug/shoal"]:
            if cand.exists():
                bin_ = str(cand)
                break
    if not bin_:
        raise SystemExit("build shoal first (cargo build --release) or pass its path")
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed")
    shots = capture(str(Path(bin_).resolve()))
    for name, ansi in shots.items():
        (ASSETS / f"tui-{name}.ansi").write_text(ansi)
        render(ansi, ASSETS / f"tui-{name}.png")


if __name__ == "__main__":
    main()
