#!/usr/bin/env python3
"""Scores the tracker with motmetrics on synthetic scenes and on vtest.avi, as a Markdown table.

    python3 benches/tracking.py [EDGE_REID] [--model MODEL.onnx] [--frames N]

EDGE_REID is the binary (default target/release/edge-reid), MODEL the model (default the shipped
models/edge-reid.onnx). Each synthetic scene runs `edge-reid --synthetic --synthetic-people P
--synthetic-seed S --mot tracks.txt --truth truth.txt` (the camera's true boxes are the proposals,
so what is scored is the association) and is scored on every frame; vtest.avi (ffmpeg, Debian's
opencv-doc) runs its first 290 frames through motion proposals and is scored on the keyframes of
tests/fixtures/vtest/identities.txt (`--frames-from-gt`). Scores come from
tests/reference/mot_score.py (motmetrics, IoU 0.5).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
# (people in view at most, seed)
SCENES = [(3, 0), (3, 1), (6, 2), (6, 3)]


def score(truth, hyp, keyframes):
    cmd = [sys.executable, os.path.join(ROOT, "tests/reference/mot_score.py"), truth, hyp, "--json"]
    if keyframes:
        cmd.append("--frames-from-gt")
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def tracks(events):
    return sum(1 for line in open(events) if '"status":"new"' in line)


def row(name, frames, s, n_tracks):
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    print(f"| {name} | {frames} | {s['num_unique_objects']} | {n_tracks} | {f(s['idf1'])} | "
          f"{f(s['mota'])} | {s['num_switches']} | {f(s['recall'])} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary", nargs="?", default=os.path.join(ROOT, "target/release/edge-reid"))
    p.add_argument("--model", default=os.path.join(ROOT, "models/edge-reid.onnx"))
    p.add_argument("--frames", type=int, default=300)
    a = p.parse_args()
    print("| scene | frames | people (GT ids) | tracks | IDF1 | MOTA | ID switches | recall |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        run = lambda args, **kw: subprocess.run(  # noqa: E731
            [a.binary, *args, "--model", a.model], cwd=tmp, check=True, **kw)
        events = os.path.join(tmp, "events.jsonl")
        for people, seed in SCENES:
            with open(events, "w") as out:
                run(["--synthetic", "--frames", str(a.frames), "--synthetic-people", str(people),
                     "--synthetic-seed", str(seed), "--mot", "tracks.txt", "--truth", "truth.txt"],
                    stdout=out, stderr=subprocess.DEVNULL)
            s = score(os.path.join(tmp, "truth.txt"), os.path.join(tmp, "tracks.txt"), False)
            row(f"synthetic, {people} in view, seed {seed}", a.frames, s, tracks(events))
        if not os.path.exists(VIDEO):
            print(f"| vtest.avi | skipped: {VIDEO} missing | | | | | | |")
            return
        ffmpeg = subprocess.Popen(["ffmpeg", "-v", "error", "-i", VIDEO, "-frames:v", "290", "-f",
                                   "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
        with open(events, "w") as out:
            run(["--input", "-", "--size", "768x576", "--mot", "tracks.txt"], stdin=ffmpeg.stdout,
                stdout=out, stderr=subprocess.DEVNULL)
        if ffmpeg.wait() != 0:
            sys.exit(f"ffmpeg failed on {VIDEO}")
        truth = os.path.join(ROOT, "tests/fixtures/vtest/identities.txt")
        s = score(truth, os.path.join(tmp, "tracks.txt"), True)
        row("vtest.avi frames 0-289, motion, 23 hand-made keyframes", 290, s, tracks(events))


if __name__ == "__main__":
    main()
