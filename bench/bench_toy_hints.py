"""Correspondence hints, measured on a trained toy: how many hints bring the method's matching and its part-wise
colour to ground-truth matching, on held-out pairs in flipped poses.

    python bench/bench_toy_hints.py --family flux [--pairs 32] [--hints 0,1,2,3,5] [--hint-strength 1] [--short]
                                    [--figure bench/figures/toy_hints.png]

Hints are drawn from the world's ground truth: ``k`` random spots of the target object per pair, each to the
reference pixel of the same part with the nearest canonical coordinates (``evaluate.ground_truth_hints``), given to
Semantic Match Patch as a user would type or click them. Per ``k``: the share of the method's matches (every
matched block and step) that land in the same part, and the part-colour accuracy of the output, each with its 95 %
interval over the pairs, beside ground-truth matching and position matching. Every target faces the other way
from its reference (the world's held-out pairs), the case hints are for.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))  # toy_tools, common (also when imported from the tests)


def same_part_per_pair(report) -> list[float]:
    """Each pair's same-part rate of its matches (mean over every matched block and step)."""
    return [sum(a for a, _ in d.values()) / len(d) for d in report.corr if d]


def run(toy, pairs, ks, strength: float, settings: dict, progress=print) -> dict:
    """``{row name: dict(k, same, colour)}``, each figure ``(mean, low, high)``."""
    from toy_tools import evaluate as ev

    cache, rows = {}, {}
    variants = [(f"method, {k} hint{'s' if k != 1 else ''}", ev.METHOD.but(hint_strength=strength), k) for k in ks]
    variants += [("ground-truth matching", ev.ORACLE, None), ("position matching", ev.BASELINES[2], None)]
    for name, variant, k in variants:
        t0 = time.time()
        rep = ev.evaluate(toy, pairs, ev.replace(variant, hints=k or 0), settings, inversions=cache)
        rows[name] = dict(k=k, same=ev.interval(same_part_per_pair(rep)),
                          colour=ev.interval([d["part_colour"] for d in rep.images]))
        progress(f"  {name}: same part {rows[name]['same'][0]:.3f}, part colour {rows[name]['colour'][0]:.3f} "
                 f"({time.time() - t0:.0f} s)")
    return rows


def main(argv=None):
    from common import toy_and_pairs, toy_parser

    ap = toy_parser(__doc__, pairs=32)
    ap.set_defaults(family="flux")
    ap.add_argument("--hints", default="0,1,2,3,5", help="hints per pair, comma-separated")
    ap.add_argument("--hint-strength", type=float, default=None, help="default: the node's")
    ap.add_argument("--short", action="store_true", help="the shortened schedule of the tests (evaluate.SHORT_SCHEDULE)")
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args(argv)
    toy, pairs = toy_and_pairs(args)
    from toy_tools import evaluate as ev
    from toy_tools import pack_module, pictures

    strength = args.hint_strength if args.hint_strength is not None else pack_module(
        "engine.models.defaults").HINT_STRENGTH
    settings = dict(ev.shipped_defaults(args.family), **(ev.SHORT_SCHEDULE[args.family] if args.short else {}))
    ks = [int(k) for k in args.hints.split(",")]
    print(f"toy {args.family} ({args.weights or 'bundled'}), {args.pairs} held-out pairs (targets flipped), hint "
          f"strength {strength:g}, {settings['steps']} steps ({settings['skip_steps']} skipped)", flush=True)
    rows = run(toy, pairs, ks, strength, settings)
    print("\n| matching | same part [95 %] | part-colour accuracy [95 %] |\n|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['same'][0]:.3f} [{r['same'][1]:.3f}, {r['same'][2]:.3f}] | "
              f"{r['colour'][0]:.3f} [{r['colour'][1]:.3f}, {r['colour'][2]:.3f}] |")
    if args.figure is not None:
        method = [(r["k"], *r["colour"]) for r in rows.values() if r["k"] is not None]
        same = [(r["k"], *r["same"]) for r in rows.values() if r["k"] is not None]
        pictures.line_plot({"part colour, method + hints": method, "same part, method + hints": same}, args.figure,
                           "hints per pair", "share (95 % interval)",
                           bands={"part colour, ground truth": rows["ground-truth matching"]["colour"],
                                  "part colour, positions": rows["position matching"]["colour"]})
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
