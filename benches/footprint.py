#!/usr/bin/env python3
"""What the runtime costs a box: resident memory, load times and the size of the binary.

    python3 benches/footprint.py [--model models/edge-reid.onnx] [--identities 100000] \
        [--frames 300] [--threads 2] [--profiles release,dist]

Builds the runtime in the release profile and in the `dist` profile (the one to copy to a box:
stripped, LTO), writes a gallery of `--identities` made-up people in the model's embedding space
(`examples/synthetic_gallery.rs`, which also times writing and opening it), then runs
`edge-reid` on the synthetic camera for `--frames` frames twice: with its own four-person
gallery and with the large one. Resident memory is sampled from /proc every 20 ms (the median over
the second half of the run, when every part is loaded) and the peak is the kernel's (ru_maxrss).
The model's load time is the library's (`Model::load`, `examples/model_latency.rs`). Prints the
CPU model and one Markdown table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO, cpu_flags, cpu_model  # noqa: E402


def build(profile):
    subprocess.run(["cargo", "build", "--quiet", "--profile", profile, "--bin", "edge-reid",
                    "--example", "synthetic_gallery", "--example", "model_latency"],
                   cwd=REPO, check=True)
    return REPO / "target" / profile


def example(target, name, *args):
    out = subprocess.run([str(target / "examples" / name), *map(str, args)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def rss_kib(pid):
    """Resident KiB of a running process; None once it has exited (a zombie has no VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def run(binary, model, gallery, frames, threads):
    """Median resident MiB over the second half of the run, and peak MiB."""
    cmd = [str(binary), "--model", str(model), "--gallery", str(gallery), "--synthetic",
           "--frames", str(frames), "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if (kib := rss_kib(proc.pid)) is not None:
            samples.append(kib)
        time.sleep(0.02)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {status}")
    steady = samples[len(samples) // 2:]
    return statistics.median(steady) / 1024, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "edge-reid.onnx")
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profiles", default="release,dist",
                        help="cargo profiles to build and measure, comma-separated")
    args = parser.parse_args()

    targets = {profile: build(profile) for profile in args.profiles.split(",")}
    print(f"CPU: {cpu_model()} ({cpu_flags()}), {os.cpu_count()} cores\n")

    print("| build | binary MiB | model load s | gallery | gallery open s | resident MiB "
          "(steady median) | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for profile, target in targets.items():
            binary = target / "edge-reid"
            load_s = example(target, "model_latency", args.model, "--rounds", "1", "--crops",
                             "1")["load_s"]
            large = tmp / f"{profile}-{args.identities}.gallery"
            made = example(target, "synthetic_gallery", args.model, large, "--identities",
                           args.identities)
            small = tmp / f"{profile}-none.gallery"
            for label, gallery, open_s in [("4 people", small, None),
                                           (f"{args.identities:,} people", large,
                                            made["open_s"])]:
                steady, peak = run(binary, args.model, gallery, args.frames, args.threads)
                shown_open = "" if open_s is None else f"{open_s:.3f}"
                print(f"| {profile} | {binary.stat().st_size / 2**20:.1f} | {load_s:.2f} | "
                      f"{label} | {shown_open} | {steady:.0f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
