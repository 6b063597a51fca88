#!/usr/bin/env python3
"""Model-free quality figures of appearance-transfer results (for users with a real checkpoint).

    python scripts/evaluate_quality.py --pairs pairs.csv --results results/ [--json scores.json]

``pairs.csv`` rows: ``reference,target[,reference_mask,target_mask]`` (the same file ``e4e_run.py --pairs``
takes); ``results/`` holds one output image per row, named by ``e4e_run.py`` (``<row>_*.png``), or give
``--outputs`` with one path per row. For every row it reports:

* **structure**: correlation of the Sobel edge magnitudes of output and target (1 = the target's edges kept,
  whatever their new contrast);
* **appearance**: per object, 1 - the Hellinger distance between the colour histograms (8x8x8 RGB bins)
  of the output inside the target mask and of the reference inside its mask (1 = the same colours);
  ``appearance_gain`` is that minus the same figure for the untouched target (> 0: moved towards the
  reference);
* **background**: PSNR between output and target outside the target masks (higher = background kept).

These are proxies (the paper also uses learned metrics), but they need no weights, and they separate a
transfer that keeps structure and moves colours from one that does neither.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def load_rgb(path, size=None) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    if size is not None and img.size != size:
        img = img.resize(size, Image.BICUBIC)
    return np.asarray(img, dtype=np.float64) / 255.0


def load_mask(path, size) -> np.ndarray:
    img = Image.open(path)
    band = img.getchannel("A") if "A" in img.getbands() else img.convert("L")
    if band.size != size:
        band = band.resize(size, Image.BILINEAR)
    return np.asarray(band, dtype=np.float64) / 255.0 > 0.5


def sobel_magnitude(rgb: np.ndarray) -> np.ndarray:
    g = rgb @ np.array([0.299, 0.587, 0.114])
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two edge maps (0 when either is flat)."""
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def colour_histogram(rgb: np.ndarray, mask: np.ndarray, bins: int = 8) -> np.ndarray:
    px = rgb[mask]
    if len(px) == 0:
        raise ValueError("mask: empty, no pixels to compare")
    idx = np.minimum((px * bins).astype(int), bins - 1)
    flat = idx[:, 0] * bins * bins + idx[:, 1] * bins + idx[:, 2]
    h = np.bincount(flat, minlength=bins**3).astype(np.float64)
    return h / h.sum()


def colour_similarity(a, a_mask, b, b_mask) -> float:
    ha, hb = colour_histogram(a, a_mask), colour_histogram(b, b_mask)
    return float(1.0 - np.sqrt(max(0.0, 1.0 - np.sqrt(ha * hb).sum())))


def psnr(a, b, mask) -> float:
    if not mask.any():
        return float("nan")
    mse = float(((a - b) ** 2)[mask].mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def score(output, target, reference, target_masks=None, reference_masks=None) -> dict:
    """Scores of one result; images ``[H, W, 3]`` in 0..1 (output and target the same size), masks bool."""
    h, w = target.shape[:2]
    t_masks = target_masks if target_masks is not None else [np.ones((h, w), bool)]
    r_masks = reference_masks if reference_masks is not None else [np.ones(reference.shape[:2], bool)]
    if len(t_masks) != len(r_masks):
        raise ValueError("masks: one reference mask per target mask")
    appearance = [colour_similarity(output, tm, reference, rm) for tm, rm in zip(t_masks, r_masks)]
    baseline = [colour_similarity(target, tm, reference, rm) for tm, rm in zip(t_masks, r_masks)]
    background = ~np.any(np.stack(t_masks), axis=0)
    return {
        "structure": edge_correlation(sobel_magnitude(output), sobel_magnitude(target)),
        "appearance": float(np.mean(appearance)),
        "appearance_gain": float(np.mean(appearance) - np.mean(baseline)),
        "background_psnr": psnr(output, target, background),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--results", help="folder with one output per row (<row>_*.png)")
    ap.add_argument("--outputs", nargs="*", help="output images, one per row, instead of --results")
    ap.add_argument("--json", help="write all scores here")
    args = ap.parse_args(argv)
    rows = [r for r in csv.reader(open(args.pairs)) if r and not r[0].startswith("#")]
    outputs = args.outputs or []
    if not outputs:
        if not args.results:
            ap.error("give --results or --outputs")
        for i in range(len(rows)):
            found = sorted(Path(args.results).glob(f"{i}_*.png")) or sorted(Path(args.results).glob(f"{i:03d}_*.png"))
            if not found:
                sys.exit(f"results: no output for row {i} in {args.results} (expected {i}_*.png)")
            outputs.append(found[0])
    if len(outputs) != len(rows):
        sys.exit(f"outputs: {len(outputs)} images for {len(rows)} rows")
    scores = []
    for row, out_path in zip(rows, outputs):
        ref_p, tgt_p = row[0], row[1]
        out = load_rgb(out_path)
        size = (out.shape[1], out.shape[0])
        tgt, ref = load_rgb(tgt_p, size), load_rgb(ref_p)
        tm = rm = None
        if len(row) >= 4 and row[2] and row[3]:
            rm, tm = [load_mask(row[2], (ref.shape[1], ref.shape[0]))], [load_mask(row[3], size)]
        s = score(out, tgt, ref, tm, rm)
        s["output"] = str(out_path)
        scores.append(s)
    keys = ["structure", "appearance", "appearance_gain", "background_psnr"]
    print("| output | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for s in scores:
        print(f"| {Path(s['output']).name} | " + " | ".join(f"{s[k]:.3f}" for k in keys) + " |")
    mean = {k: float(np.nanmean([s[k] for s in scores])) for k in keys}
    print("| **mean** | " + " | ".join(f"{mean[k]:.3f}" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": scores, "mean": mean}, indent=2))


if __name__ == "__main__":
    main()
