#!/usr/bin/env python3
"""Crash injection: kills the gallery's writers with SIGKILL at random moments and checks, after
each kill, that the gallery still loads and holds every change that was acknowledged before it.

The writers, chosen at random in turn on one gallery file:
  - `edge-reid enroll --name N PICTURES...`  (acknowledged: exit 0)
  - `edge-reid gallery remove N`              (acknowledged: exit 0)
  - `edge-reid run --synthetic --auto-enroll --http ...` with photos of a new person uploaded to
    `POST /api/gallery/N/photos`             (acknowledged: HTTP 200)
each killed after a random delay drawn from 0 to a little past how long it takes when left alone,
so kills land before, during and after its write.

After each kill `edge-reid gallery list` must succeed (the file loads: magic, CRCs, structure) and
show every acknowledged person with exactly the embeddings enrolled, no acknowledged removal, and
for a change cut short either all of it or none (the first list after it decides which, and later
lists must agree). Prints one line per round with --verbose, and a summary:

    python3 tests/crash/kill_gallery_writers.py --binary target/release/edge-reid \
        --model models/edge-reid.onnx --kills 1000
"""
import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def bmp(width, height, rng):
    """An uncompressed 24-bit BMP of random colour blocks (any picture enrolls)."""
    row = (3 * width + 3) & ~3
    pixels = bytearray()
    blocks = [bytes(rng.randrange(256) for _ in range(3)) for _ in range(8)]
    for y in range(height):
        line = b"".join(blocks[(y * 8 // height + x * 2 // width) % 8] for x in range(width))
        pixels += line + bytes(row - 3 * width)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + bytes(pixels)


class Gallery:
    """What the gallery must hold: names acknowledged (with their embedding counts), names that
    must be absent, and names whose change was cut short (decided by the next list)."""

    def __init__(self):
        self.present = {}
        self.absent = set()
        self.pending = {}  # name -> embedding count if it is there

    def check(self, listed, round_):
        for name, count in self.present.items():
            if listed.get(name) != count:
                fail(round_, f"acknowledged {name!r} ({count} embeddings) is {listed.get(name)}")
        for name in self.absent:
            if name in listed:
                fail(round_, f"{name!r} is back after its acknowledged removal")
        for name, count in self.pending.items():
            if name in listed:
                if listed[name] != count:
                    fail(round_, f"{name!r} has {listed[name]} embeddings, not {count}: half an enrollment")
                self.present[name] = count
                self.absent.discard(name)
            else:
                self.present.pop(name, None)
                self.absent.add(name)
        self.pending.clear()
        unknown = set(listed) - set(self.present)
        if unknown:
            fail(round_, f"names nobody enrolled: {sorted(unknown)}")


def fail(round_, message):
    print(f"round {round_}: {message}", file=sys.stderr)
    sys.exit(1)


def listing(args, gallery):
    out = subprocess.run([args.binary, "gallery", "--gallery", str(gallery), "list"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    listed = {}
    for line in out.stdout.splitlines():
        name, count = line.split("\t")[:2]
        listed[name] = int(count)
    return listed, ""


def kill_after(process, delay):
    timer = threading.Timer(delay, lambda: process.poll() is None and process.send_signal(signal.SIGKILL))
    timer.start()
    return timer


def enroll(args, gallery, name, pictures, delay):
    process = subprocess.Popen([args.binary, "enroll", "--model", args.model, "--gallery", str(gallery),
                                "--name", name, *map(str, pictures)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timer = kill_after(process, delay)
    _, err = process.communicate()
    timer.cancel()
    return process.returncode, err.decode(errors="replace")


def remove(args, gallery, name, delay):
    process = subprocess.Popen([args.binary, "gallery", "--gallery", str(gallery), "remove", name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timer = kill_after(process, delay)
    _, err = process.communicate()
    timer.cancel()
    return process.returncode, err.decode(errors="replace")


def upload(base, name, pictures):
    boundary = uuid.uuid4().hex
    body = b""
    for i, picture in enumerate(pictures):
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
                 f"filename=\"{i}.bmp\"\r\nContent-Type: image/bmp\r\n\r\n").encode()
        body += picture.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{base}/api/gallery/{name}/photos", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def run_and_upload(args, gallery, name, pictures, delay):
    """A run with the live page: uploads photos of `name`, killed `delay` after it started.
    Returns whether the upload was acknowledged (HTTP 200) before the kill."""
    process = subprocess.Popen([args.binary, "run", "--model", args.model, "--gallery", str(gallery),
                                "--synthetic", "--auto-enroll", "--max-distance", "1.0", "--no-pre-detector", "--quiet",
                                "--http", "127.0.0.1:0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    timer = kill_after(process, delay)
    acknowledged = False
    for line in process.stderr:
        if "live page on " in line:
            base = line.split("live page on ", 1)[1].strip().rstrip("/")
            try:
                acknowledged = upload(base, name, pictures) == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            break
    if not acknowledged:
        timer.join()
    timer.cancel()
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    return acknowledged


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="edge-reid-kills-"))
    gallery = work / "people.gallery"
    pictures = []
    for i in range(6):
        path = work / f"p{i}.bmp"
        path.write_bytes(bmp(64, 128, rng))
        pictures.append(path)

    # How long each writer takes when left alone: the kills are drawn from 0 to 1.2 times that.
    started = time.monotonic()
    code, err = enroll(args, gallery, "base", pictures[:2], 1e9)
    if code != 0:
        sys.exit(f"enroll failed: {err}")
    enroll_time = time.monotonic() - started
    started = time.monotonic()
    if not run_and_upload(args, gallery, "base-web", pictures[:1], 120):
        sys.exit("the run's upload was not acknowledged")
    run_time = time.monotonic() - started
    enroll(args, gallery, "base-gone", pictures[:1], 1e9)
    started = time.monotonic()
    code, err = remove(args, gallery, "base-gone", 1e9)
    if code != 0:
        sys.exit(f"gallery remove failed: {err}")
    remove_time = time.monotonic() - started
    state = Gallery()
    state.present.update({"base": 2, "base-web": 1})
    state.absent.add("base-gone")

    kills = {"enroll": 0, "remove": 0, "run": 0}
    acks = {"enroll": 0, "remove": 0, "run": 0}
    rounds = 0
    serial = 0
    while sum(kills.values()) < args.kills:
        rounds += 1
        op = rng.choice(["enroll", "enroll", "remove", "run"])
        if op == "remove" and not state.present:
            op = "enroll"
        serial += 1
        name = f"person-{serial}"
        count = rng.randint(1, 3)
        chosen = rng.sample(pictures, count)
        if op == "enroll":
            delay = rng.uniform(0, 1.2 * enroll_time)
            code, _ = enroll(args, gallery, name, chosen, delay)
            acked = code == 0
            if code not in (0, -signal.SIGKILL):
                fail(rounds, f"enroll exited {code}")
        elif op == "remove":
            name = rng.choice(sorted(state.present))
            count = state.present[name]
            delay = rng.uniform(0, 1.2 * remove_time)
            code, err = remove(args, gallery, name, delay)
            acked = code == 0
            if code not in (0, -signal.SIGKILL):
                fail(rounds, f"gallery remove exited {code}: {err}")
        else:
            delay = rng.uniform(0, 1.2 * run_time)
            acked = run_and_upload(args, gallery, name, chosen, delay)
            code = 0 if acked else -signal.SIGKILL
        killed = code == -signal.SIGKILL or op == "run"
        if killed:
            kills[op] += 1
        if acked:
            acks[op] += 1
        if op == "remove":
            del state.present[name]
            if acked:
                state.absent.add(name)
            else:
                state.pending[name] = count
        elif acked:
            state.present[name] = count
        else:
            state.pending[name] = count
        listed, err = listing(args, gallery)
        if listed is None:
            fail(rounds, f"the gallery no longer loads after a killed {op}: {err}")
        state.check(listed, rounds)
        if args.verbose:
            print(f"round {rounds}: {op} {name} after {delay:.3f} s: "
                  f"{'acknowledged' if acked else 'cut short'}; {len(listed)} people")
        # Keep the gallery small: its size does not change what a kill can break.
        while len(state.present) > 40:
            name = sorted(state.present)[0]
            code, err = remove(args, gallery, name, 1e9)
            if code != 0:
                fail(rounds, f"gallery remove {name} failed: {err}")
            del state.present[name]
            state.absent.add(name)
    leftovers = sorted(p.name for p in work.iterdir() if p.name.startswith("people.gallery") and p.name != "people.gallery")
    print(json.dumps({"kills": kills, "acknowledged": acks, "rounds": rounds,
                      "enroll_s": round(enroll_time, 3), "remove_s": round(remove_time, 3),
                      "run_s": round(run_time, 3),
                      "people": len(state.present), "left_beside_the_gallery": leftovers}))
    print(f"{sum(kills.values())} kills, every acknowledged change kept")


if __name__ == "__main__":
    main()
