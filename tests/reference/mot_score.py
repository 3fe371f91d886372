#!/usr/bin/env python3
"""Scores a tracker's output against MOTChallenge ground truth with `motmetrics` (IDF1, MOTA, ...).

    python3 tests/reference/mot_score.py GT.txt HYP.txt [--frames-from-gt] [--json]

GT.txt is MOTChallenge ground truth, one box a line: `frame,id,x,y,w,h,conf,class,visibility`
(e.g. tests/fixtures/vtest/identities.txt; pixels, frames counted from 1). Rows with conf 0 are
ignore regions (people too small or too hidden to demand of a tracker), not people to find.
HYP.txt is MOTChallenge tracker output: `frame,id,x,y,w,h,conf,-1,-1,-1` (only the first six
columns are read).

- A hypothesis box whose IoU with an ignore region of its frame is 0.5 or more is removed before
  matching: it counts neither as a match nor as a false positive (the rule of
  tests/fixtures/vtest/README.md, the one tests/runtime/video.rs applies to detections).
- --frames-from-gt: only frames that appear in GT are scored, hypotheses on other frames are
  dropped. Use it with sparse ground truth such as identities.txt (keyframes every 10 frames).
  Without it every frame of GT or HYP is scored, so a hypothesis on a frame GT lacks is false.
- Boxes match at IoU 0.5 or more: the distance is 1 - IoU, pairs farther than 0.5 cannot match,
  exactly motmetrics' `distances.iou_matrix(objs, hyps, max_iou=0.5)`.
- Prints a Markdown table, or with --json one JSON object with the keys idf1, idp, idr, mota,
  motp, num_switches, num_unique_objects (GT ids), num_hyp_ids, num_frames, precision, recall,
  num_objects (GT boxes), num_matches (motmetrics' count: matches that are not switches),
  num_false_positives, num_misses (NaN is written as null). num_frames counts the frames scored,
  empty ones included. MOTP is motmetrics' own: the mean 1 - IoU of the matches (lower is better;
  MOTChallenge's MOTP in % is 100 * (1 - this)).

Checks: identities.txt against itself gives IDF1 = MOTA = 1.0, 0 switches, 8 GT ids, 23 frames;
with ids 1/6, 2/3 and 4/5 swapped from frame 172 on (the second half) IDF1 0.592, MOTA 0.959,
6 switches (--frames-from-gt; the same numbers under both environments below).

Dependencies: `pip install motmetrics` (1.4.0, the newest on PyPI, pulls numpy, pandas, scipy).
Checked with motmetrics 1.4.0 + numpy 2.4.6 + pandas 3.1.1 + scipy 1.17.1 on Python 3.11, and with
motmetrics 1.4.0 + numpy 1.26.4 + pandas 2.3.3 (`pip install motmetrics "numpy<2" "pandas<3"`).
`import motmetrics` works under NumPy 2, but `motmetrics.distances.iou_matrix` calls
`np.asfarray`, which NumPy 2.0 removed (AttributeError), so this script computes the same IoU
distance matrix itself with numpy and needs no numpy pin; the rest of motmetrics (accumulator,
metrics) runs under NumPy 2. To use motmetrics' own iou_matrix instead, pin `numpy<2`.
"""

import argparse
import json
import math
import sys

import motmetrics as mm
import numpy as np

MAX_IOU_DISTANCE = 0.5  # motmetrics' max_iou: pairs with 1 - IoU above this cannot match


def read_mot(path, gt):
    """{frame: [(id, x, y, w, h)]} of counted boxes, and {frame: [(x, y, w, h)]} of ignore regions
    (GT rows with conf 0; a hypothesis file has none)."""
    boxes, ignore = {}, {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cols = [c.strip() for c in line.replace(" ", ",").split(",") if c.strip()]
            if len(cols) < 6:
                sys.exit(f"{path}:{number}: expected at least 6 comma-separated columns: {line}")
            frame, tid = int(float(cols[0])), int(float(cols[1]))
            x, y, w, h = (float(c) for c in cols[2:6])
            if gt and len(cols) > 6 and float(cols[6]) == 0:
                ignore.setdefault(frame, []).append((x, y, w, h))
            else:
                boxes.setdefault(frame, []).append((tid, x, y, w, h))
    return boxes, ignore


def iou(a, b):
    """IoU of [x, y, w, h] boxes a (n, 4) and b (m, 4), as an (n, m) array (motmetrics' boxiou)."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    a_min, a_max = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b_min, b_max = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.prod(np.clip(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0, None), axis=-1)
    union = np.prod(a[:, None, 2:], axis=-1) + np.prod(b[None, :, 2:], axis=-1) - inter
    return np.where(inter > 0, inter / np.where(union > 0, union, 1), 0.0)


def score(gt_path, hyp_path, frames_from_gt):
    gt, ignore = read_mot(gt_path, gt=True)
    hyp, _ = read_mot(hyp_path, gt=False)
    gt_frames = set(gt) | set(ignore)
    frames = sorted(gt_frames if frames_from_gt else gt_frames | set(hyp))
    acc = mm.MOTAccumulator(auto_id=False)
    hyp_ids = set()
    for frame in frames:
        objs = gt.get(frame, [])
        hyps = hyp.get(frame, [])
        if hyps and ignore.get(frame):
            overlap = iou([h[1:] for h in hyps], ignore[frame]).max(axis=1)
            hyps = [h for h, o in zip(hyps, overlap) if o < 0.5]
        hyp_ids.update(h[0] for h in hyps)
        if objs and hyps:
            dist = 1.0 - iou([o[1:] for o in objs], [h[1:] for h in hyps])
            dist = np.where(dist > MAX_IOU_DISTANCE, np.nan, dist)
        else:
            dist = np.empty((len(objs), len(hyps)))
        acc.update([o[0] for o in objs], [h[0] for h in hyps], dist, frameid=frame)
    names = [
        "idf1", "idp", "idr", "mota", "motp", "num_switches", "num_unique_objects", "num_frames",
        "precision", "recall", "num_objects", "num_matches", "num_false_positives", "num_misses",
    ]
    summary = mm.metrics.create().compute(acc, metrics=names, name="all")
    out = {}
    for name in names:
        value = float(summary[name].iloc[0])
        # Scores without a defined value (no GT boxes: MOTA is -inf) are null, which JSON allows
        if name.startswith("num_"):
            value = int(value) if math.isfinite(value) else None
        out[name] = None if value is None or not math.isfinite(value) else value
    out["num_hyp_ids"] = len(hyp_ids)
    # num_frames counts the frames with any event; report the frames scored, empty ones included
    out["num_frames"] = len(frames)
    return out


def markdown(r):
    def f(v, digits=3):
        return "n/a" if v is None else f"{v:.{digits}f}"

    head = ["IDF1", "IDP", "IDR", "MOTA", "MOTP (1-IoU)", "ID switches", "GT ids", "hyp ids",
            "frames"]
    row = [f(r["idf1"]), f(r["idp"]), f(r["idr"]), f(r["mota"]), f(r["motp"]),
           str(r["num_switches"]), str(r["num_unique_objects"]), str(r["num_hyp_ids"]),
           str(r["num_frames"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|",
             "| " + " | ".join(row) + " |", "",
             f"precision {f(r['precision'])}, recall {f(r['recall'])}: "
             f"{r['num_objects'] - r['num_misses']} of {r['num_objects']} GT boxes found at "
             f"IoU 0.5 ({r['num_switches']} of them on a switch), {r['num_false_positives']} false "
             f"hypotheses, {r['num_misses']} misses"]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gt", help="MOTChallenge ground truth (conf 0 rows are ignore regions)")
    p.add_argument("hyp", help="MOTChallenge tracker output")
    p.add_argument("--frames-from-gt", action="store_true",
                   help="score only the frames that appear in GT (sparse keyframe ground truth)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args()
    r = score(a.gt, a.hyp, a.frames_from_gt)
    print(json.dumps(r, sort_keys=True) if a.json else markdown(r))


if __name__ == "__main__":
    main()
