"""Part-wise appearance transfer, measured: the pack on the trained toy models, against baselines, in one run.

    python bench/bench_toy_world.py --family sd1 [--pairs 16] [--seed 1000] [--figure bench/figures/toy_sd1.png]
    python bench/bench_toy_world.py --family flux

Runs in the test environment (a ComfyUI found as the demo finds it: COMFYUI_PATH, the install folder, or the
test set-up's copy). Held-out (reference, target) pairs from the toy world (each target faces the other way,
with its own pose and colours), the pack's own nodes with the shipped defaults, and the baselines of
``bench/toy_tools/evaluate.py``. Prints:

1. per variant: part-colour accuracy, colour error, layout accuracy, background PSNR, and the correspondence's
   part accuracy and PCK@0.1 (averaged over every matched layer and step);
2. the method's correspondence per layer, and per step (in bins of the sampled steps);
with ``--csv DIR`` the whole (step, layer) table; with ``--figure PATH`` a picture of the first pairs (the
method's outputs, or another variant's with ``--figure-variant``).
``--set name=value`` changes a setting of every pipeline variant (e.g. ``--set layers=custom
--set custom_layers=double.0-1``): how the Flux defaults were chosen.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))  # toy_tools, common (also when imported from the tests)

VARIANTS = ("method", "oracle", "no_transfer", "adain_only", "position", "shared_noise", "random_weights")


def variants(ev):
    by_name = dict(zip(("no_transfer", "adain_only", "position", "shared_noise", "random_weights"), ev.BASELINES))
    return {"method": ev.METHOD, "oracle": ev.ORACLE, **by_name}


def parse_sets(items, defaults: dict) -> dict:
    """``--set NAME=VALUE`` items as settings, each VALUE read as the type of NAME's shipped default (a bool from
    true/false, yes/no, on/off or 1/0; a number; text): "adain=false" turns AdaIN off (it once stayed on, the text
    "false" being truthy). A name the pipeline does not have, or a value its type cannot read, is refused."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or key not in defaults:
            raise SystemExit(f"--set {item!r}: write NAME=VALUE with NAME one of {sorted(defaults)}")
        kind = type(defaults[key])
        word = value.strip().lower()
        if kind is bool:
            if word not in BOOLS:
                raise SystemExit(f"--set {item!r}: {key} is on or off; write {key}=true or {key}=false")
            out[key] = BOOLS[word]
            continue
        try:
            out[key] = kind(value) if kind in (int, float) else value
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise SystemExit(f"--set {item!r}: {key} is {what} (shipped: {defaults[key]!r})") from None
    return out


BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def main(argv=None):
    from common import toy_and_pairs, toy_parser

    ap = toy_parser(__doc__, pairs=32)
    ap.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "oracle"),
                    help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a setting of the pipeline")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--figure-variant", default="method", choices=VARIANTS,
                    help="whose outputs the figure shows (one of --variants; default: the method's)")
    args = ap.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {VARIANTS}")
    toy, pairs = toy_and_pairs(args)
    from toy_tools import evaluate as ev
    from toy_tools import models

    # the same layout as the toy (its card's config), with fresh random weights
    random_toy = models.load(args.family, untrained=True, config=toy.card.get("config")) \
        if "random_weights" in chosen else None
    settings = ev.shipped_defaults(args.family)
    settings.update(parse_sets(args.set, settings))
    table = variants(ev)
    cache = {}
    reports = {}
    print(f"toy {args.toy}: {toy.card.get('parameters', '?')} parameters, trained {toy.card.get('steps', '?')} "
          f"steps; {args.pairs} held-out pairs (seed {args.seed}); settings {settings}", flush=True)
    for name in chosen:
        t0 = time.time()
        rep = ev.evaluate(toy, pairs, table[name], settings, random_toy=random_toy, inversions=cache)
        rep.seconds = time.time() - t0
        reports[name] = rep
        print(f"  {name}: part-colour {rep.mean('part_colour'):.3f} ({rep.seconds:.0f} s)", flush=True)

    print(f"\n{args.pairs} held-out pairs; [95 % interval over the pairs]\n")
    print("| variant | part-colour accuracy | colour error | layout accuracy | background PSNR dB | "
          "correspondence: same part | PCK@0.1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, rep in reports.items():
        cm = rep.corr_mean()
        corr = f"{cm[0]:.3f} | {cm[1]:.3f}" if cm else "– | –"
        accuracy = ev.with_interval(d["part_colour"] for d in rep.images)
        print(f"| {table[name].name} | {accuracy} | {rep.mean('colour_error'):.3f} | "
              f"{rep.mean('layout'):.3f} | {min(rep.mean('background_psnr'), 99):.1f} | {corr} |")

    for name in ("method", "oracle"):
        if name in reports:
            print_correspondence(reports[name], table[name].name)
    if args.csv is not None and "method" in reports:
        args.csv.mkdir(parents=True, exist_ok=True)
        path = args.csv / f"toy_{args.toy}_correspondence.csv"
        with path.open("w") as f:
            f.write("step,layer,same_part,pck\n")
            for (step, layer), (a, b) in reports["method"].corr_table().items():
                f.write(f"{step},{layer},{a:.4f},{b:.4f}\n")
        print(f"\nwrote {path}")
    if args.figure is not None and args.figure_variant in reports:
        figure(reports[args.figure_variant], pairs, toy, args.figure)
        print(f"wrote {args.figure}")


def print_correspondence(rep, title: str, bins: int = 4):
    table = rep.corr_table()
    if not table:
        return
    layers = sorted({layer for _, layer in table}, key=lambda s: (s.split(".")[0], int(s.split(".")[1])))
    steps = sorted({step for step, _ in table})
    print(f"\n{title}: correspondence per layer (mean over the {len(steps)} matched steps)\n")
    print("| layer | same part | PCK@0.1 |")
    print("|---|---:|---:|")
    for layer in layers:
        vals = [v for (s, lay), v in table.items() if lay == layer]
        print(f"| {layer} | {sum(a for a, _ in vals) / len(vals):.3f} | {sum(b for _, b in vals) / len(vals):.3f} |")
    print(f"\n{title}: correspondence per step (same part / PCK@0.1, steps of the whole schedule)\n")
    edges = [steps[round(i * (len(steps) - 1) / bins)] for i in range(bins + 1)]
    print("| steps | " + " | ".join(layers) + " |")
    print("|---|" + "---:|" * len(layers))
    for lo, hi in zip(edges[:-1], edges[1:]):
        cells = []
        for layer in layers:
            vals = [v for (s, lay), v in table.items() if lay == layer and lo <= s <= hi]
            cells.append(f"{sum(a for a, _ in vals) / len(vals):.2f} / {sum(b for _, b in vals) / len(vals):.2f}"
                         if vals else "–")
        print(f"| {lo}-{hi} | " + " | ".join(cells) + " |")


def figure(rep, pairs, toy, path: Path, rows: int = 4):
    from toy_tools import pictures

    ref, tgt = pairs
    out_rows = []
    for i in range(min(rows, len(ref))):
        run = rep.runs[i]
        out = toy.vae.decode(run.output)[0]
        last = run.last_match()
        tiles = [ref.images[i], tgt.images[i], out, pictures.part_map(tgt.labels[i])]
        if last is not None:
            src, grid = last
            tiles.append(pictures.matched_parts(src, grid, ref.poses.take([i])))
        if run.picture is not None:
            tiles.append(run.picture)
        out_rows.append(tiles)
    captions = ["reference", "target", "output", "target parts", "matched parts", "correspondence"]
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures.grid_image(out_rows, captions).save(path)


if __name__ == "__main__":
    main()
