#!/usr/bin/env python3
"""Soak: a long run of the synthetic camera through a model with tracking, MQTT (to a Mosquitto
broker this script starts) and Prometheus metrics, sampling the process's resident memory and open
file descriptors. Prints a Markdown table of the samples and the growth after warm-up, and exits 1
when memory grew more than --max-growth-mb or a descriptor stayed open:

    python3 tests/soak/soak.py --binary target/release/edge-reid \
        --model tests/fixtures/models/small-64x32.onnx --frames 1000000

Warm-up is the first --warmup share of the run (buffers, caches and the gallery of anonymous
people filling up); growth is the largest resident size after it minus the size at its end.
"""
import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def sample(pid):
    """Resident memory in KiB and open descriptors of a live process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except (FileNotFoundError, ProcessLookupError):
        return None
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, fds


def frames_done(metrics_port):
    """The run's frame counter, from its Prometheus metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("edge_reid_frames_total"):
                    return int(float(line.split()[-1]))
    except OSError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run that is warm-up")
    parser.add_argument("--max-growth-mb", type=float, default=5.0)
    parser.add_argument("--json", help="also write the samples and the verdict here")
    parser.add_argument("--size", help="the synthetic camera's frame size WxH (default: the runtime's)")
    parser.add_argument("--threads", type=int, help="the runtime's --threads (default: the cores available)")
    args = parser.parse_args()
    if not shutil.which("mosquitto"):
        sys.exit("mosquitto is not installed (Debian: apt-get install mosquitto)")
    work = Path(tempfile.mkdtemp(prefix="edge-reid-soak-"))
    mqtt_port, metrics_port = free_port(), free_port()
    (work / "mosquitto.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(work / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subscriber = None
    try:
        wait_for_port(mqtt_port)
        # A subscriber takes every message, as a site's would.
        subscriber = subprocess.Popen(["mosquitto_sub", "-p", str(mqtt_port), "-t", "#"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        command = [args.binary, "run", "--model", args.model, "--synthetic", "--auto-enroll", "--max-distance", "1.0",
                   "--gallery", str(work / "soak.gallery"), "--frames", str(args.frames), "--quiet",
                   "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--metrics", f"127.0.0.1:{metrics_port}"]
        if args.size:
            command += ["--size", args.size]
        if args.threads:
            command += ["--threads", str(args.threads)]
        run = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL, stderr=open(work / "run.log", "w"))
        started = time.monotonic()
        samples = []
        while run.poll() is None:
            taken = sample(run.pid)
            if taken is not None:
                samples.append((time.monotonic() - started, frames_done(metrics_port), *taken))
            time.sleep(args.every)
        code = run.wait()
    finally:
        for process in (subscriber, broker):
            if process is not None:
                process.terminate()
                process.wait()
    if code != 0:
        sys.exit(f"the run exited {code}: {(work / 'run.log').read_text()[-2000:]}")
    if len(samples) < 10:
        sys.exit(f"only {len(samples)} samples: run more frames or sample more often (--every)")
    warm = max(1, int(len(samples) * args.warmup))
    base_rss, base_fds = samples[warm - 1][2], samples[warm - 1][3]
    growth_mb = (max(s[2] for s in samples[warm:]) - base_rss) / 1024
    fd_growth = max(s[3] for s in samples[warm:]) - base_fds
    elapsed = samples[-1][0]
    print(f"{args.frames} frames in {elapsed:.0f} s; resident memory after warm-up "
          f"{base_rss / 1024:.1f} MiB, growth {growth_mb:+.2f} MiB; descriptors {base_fds}, growth {fd_growth:+d}")
    print()
    print("| seconds | frames | resident MiB | open descriptors |")
    print("|---|---|---|---|")
    step = max(1, len(samples) // 20)
    for t, frames, rss, fds in samples[::step] + [samples[-1]]:
        print(f"| {t:.0f} | {frames if frames is not None else '-'} | {rss / 1024:.1f} | {fds} |")
    ok = growth_mb <= args.max_growth_mb and fd_growth <= 0
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": args.frames, "samples": samples,
                                               "growth_mb": growth_mb, "fd_growth": fd_growth, "ok": ok}))
    if not ok:
        print(f"FAILED: growth {growth_mb:.2f} MiB (at most {args.max_growth_mb}), "
              f"descriptors {fd_growth:+d} (at most 0)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
