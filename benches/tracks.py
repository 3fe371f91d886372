#!/usr/bin/env python3
"""Summarises one `edge-reid` run's events (stdlib only): milliseconds per frame for each stage,
and the tracks' count and lengths in frames (first frame to end, inclusive).

    ffmpeg -v error -i vtest.avi -f rawvideo -pix_fmt rgb24 - \\
      | edge-reid --input - --size 768x576 > events.jsonl
    python3 benches/tracks.py events.jsonl
"""
import json
import statistics
import sys


def main(path):
    events = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    summary = next((e for e in reversed(events) if e["event"] == "summary"), None)
    if summary is None:
        sys.exit(f"{path}: no summary event (did the run finish?)")
    frames = summary["frames"]
    print(f"{frames} frames, ms per frame:")
    for stage, ms in summary["ms"].items():
        print(f"  {stage:<13} {ms / frames:8.2f}")
    print(f"  {'all':<13} {summary['ms_per_frame']:8.2f}")
    ends = [e for e in events if e["event"] == "track" and e["status"] == "end"]
    if not ends:
        print("no tracks")
        return
    lengths = [e["frame"] - e["first_frame"] + 1 for e in ends]
    print(
        f"{len(ends)} tracks, length in frames: median {statistics.median(lengths):g}, "
        f"longest {max(lengths)}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
