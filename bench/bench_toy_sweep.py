"""Which training recipe gives a toy model both halves of the method? Several recipes trained side by side, each
probed the same way, in one call (made for a lent GPU: one H200 call trains eight recipes for minutes each).

    python bench/bench_toy_sweep.py --device cuda --minutes 5 --out $OUT          # every recipe, on one GPU
    python bench/bench_toy_sweep.py --recipes sd1,flux-pattern --device cpu --minutes 30
    python bench/bench_toy_sweep.py --tiny                                         # the same paths, seconds, CPU
    python bench/bench_toy_sweep.py --score PATH --family flux --json F            # score one trained toy

The method needs a model whose features tell the parts apart across poses (for the matching) and whose attention
carries colour (for the injection); each bundled toy has only one of the two (README, "The toy world"). Trained
on two CPU cores for 40 minutes, no recipe tried gave both. This runs every recipe of ``RECIPES`` (``python -m
bench/toy_tools/train.py`` with its options, ``--minutes`` each, all at once; the world is drawn on the CPU,
two threads each), then scores each trained toy in its own process on the CPU:

* ``part``: the best block's linear part readout minus always answering the commonest part, and ``same``: the
  method's own matching rule into the same part, at the noise level where the transfer decides the colour
  (t 680 / sigma 0.7), from ``bench_toy_features.py``;
* ``move``: how far ground-truth injection into the family's default blocks moves each part's predicted colour
  towards the reference's (``bench_toy_attention.py``, same level);
* part-colour accuracy of the whole pipeline (``bench/toy_tools/evaluate.py``, the shipped defaults on a
  halved schedule): the method, ground-truth matching, position matching and no transfer.

A recipe worth bundling has ``part`` well above 0, ``move`` well above 0 and the method far above position
matching. Each recipe's logs, card and weights go to ``--work`` (default: ``runs/`` in ``--out``); ``--out``
(default ``bench/results/toy_sweep``) gets five files: ``sweep.md`` (the table), ``sweep.json`` (every card and
score), ``logs.tar.gz`` and the best toy of each family (``best_<family>_<recipe>.safetensors``), so that with
``--out $OUT`` on the device machine all of it comes back (at most 8 files return from there).

On the lent H200 (nothing to install there but two small wheels; ComfyUI travels as the test set-up's copy):

    # here, once: the wheels ComfyUI's samplers import that the machine lacks (pure Python)
    python3 -m pip download --no-deps --only-binary=:all: -d .whl torchsde==0.2.6 trampoline==0.1.2
    # device run, carry [".comfyui/ComfyUI", ".whl"], timeout_s 590:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    COMFYUI_PATH=$PWD/.comfyui/ComfyUI PYTHONUNBUFFERED=1 python3 bench/bench_toy_sweep.py --device cuda \
        --minutes 5 --out $OUT --work /tmp/sweep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))  # toy_tools, common (also when imported from the tests)

DEEP = ["--set", "depth=3", "--set", "depth_single_blocks=6"]  # a Flux toy of 3 + 6 blocks, 1.8 M parameters
# name: (family, options of bench/toy_tools/train.py). The first of each family is the bundled recipe.
RECIPES = {
    "sd1": ("sd1", []),
    "sd1-twins": ("sd1", ["--siblings", "twins"]),
    "sd1-eps": ("sd1", ["--weighting", "eps"]),
    "sd1-stripes": ("sd1", ["--pattern", "stripes:0.25"]),
    "flux": ("flux", []),
    "flux-pattern": ("flux", ["--pattern", "0.3"]),
    "flux-stripes": ("flux", ["--pattern", "stripes:0.25"]),
    "flux-deep-stripes": ("flux", [*DEEP, "--pattern", "stripes:0.25"]),
}
LEVEL = {"sd1": 680, "flux": 0.7}  # where the transfer decides a part's colour (the authors' start)
WORLD_VARIANTS = ("method", "oracle", "position", "no_transfer")


def train_recipe(name: str, args, out: Path) -> dict:
    family, options = RECIPES[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(REPO / "bench" / "toy_tools" / "train.py"), "--family", family, "--device", args.device,
           "--batch", str(args.batch), "--threads", "2", "--out", str(folder), "--seed", str(args.seed), *options]
    cmd += ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]
    t0 = time.time()
    with (folder / "train.log").open("w") as log:
        rc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=args.train_timeout).returncode
    print(f"  trained {name}: exit {rc}, {time.time() - t0:.0f} s", flush=True)
    card = folder / f"{family}_toy.json"
    return {"recipe": name, "family": family, "options": options, "exit": rc,
            "card": json.loads(card.read_text()) if rc == 0 and card.is_file() else None}


def score_recipe(entry: dict, args, out: Path) -> dict:
    if entry["card"] is None:
        return entry
    folder = out / entry["recipe"]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--score", str(folder / f"{entry['family']}_toy.safetensors"),
           "--family", entry["family"], "--pairs", str(args.pairs), "--json", str(folder / "score.json")]
    cmd += ["--tiny"] if args.tiny else []
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # scored on the CPU, as the bench scripts run here
    with (folder / "score.log").open("w") as log:
        rc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=args.score_timeout,
                            env=env).returncode
    if rc == 0:
        entry["score"] = json.loads((folder / "score.json").read_text())
    print(f"  scored {entry['recipe']}: exit {rc}", flush=True)
    return entry


def score(path: Path, family: str, pairs_n: int, tiny: bool) -> dict:
    """The probes and the pipeline on one trained toy (in this process, on the CPU)."""
    import bench_toy_attention as attention
    import bench_toy_features as features
    from bench_toy_world import variants
    from common import toy_and_pairs

    toy, pairs = toy_and_pairs(argparse.Namespace(family=family, weights=path, pairs=pairs_n, seed=1000,
                                                  pattern=None, threads=2))
    from toy_tools import evaluate as ev

    level = LEVEL[family]
    feat = features.measure(toy, pairs, (level,))
    best = max(feat.values(), key=lambda v: v["part"] - v["majority"])
    groups = attention.attention_modules(family, toy.patcher.model.diffusion_model)
    default = next(iter(groups))
    move = attention.probe(toy, pairs, (level,), {default: groups[default]}, progress=lambda _l: None)
    settings = dict(ev.shipped_defaults(family), **(dict(steps=4, skip_steps=1) if tiny else ev.SHORT_SCHEDULE[family]))
    table = variants(ev)
    cache, colour = {}, {}
    for name in WORLD_VARIANTS:
        colour[name] = ev.evaluate(toy, pairs, table[name], settings, inversions=cache).mean("part_colour")
    return {"part": best["part"] - best["majority"], "same": max(v["same"] for v in feat.values()),
            "move": move[(level, default)][0], "part_colour": colour}


def table(entries: list[dict]) -> str:
    head = ("| recipe | steps x batch | train s | eval loss | part - majority | same part | move | "
            + " | ".join(WORLD_VARIANTS) + " |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(WORLD_VARIANTS)]
    for e in entries:
        c, s = e.get("card"), e.get("score")
        if c is None:
            lines.append(f"| {e['recipe']} | failed (exit {e['exit']}, see train.log) |")
            continue
        cells = [f"{c['steps']} x {c['batch']}", f"{c['train_seconds']:.0f}", f"{c['eval_loss']:.4f}"]
        if s is None:
            cells.append("scoring failed (score.log)")
        else:
            cells += [f"{s['part']:+.2f}", f"{s['same']:.2f}", f"{s['move']:+.3f}"]
            cells += [f"{s['part_colour'][v]:.3f}" for v in WORLD_VARIANTS]
        lines.append(f"| {e['recipe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_of(entries: list[dict], family: str) -> dict | None:
    """The recipe whose method beats position matching and no transfer by the most."""
    scored = [e for e in entries if e["family"] == family and e.get("score")]
    if not scored:
        return None

    def margin(e):
        pc = e["score"]["part_colour"]
        return pc["method"] - max(pc["position"], pc["no_transfer"])
    return max(scored, key=margin)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=5.0, help="training time of each recipe (they run at once)")
    ap.add_argument("--steps", type=int, default=None, help="a number of steps instead of --minutes")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=8, help="held-out pairs each toy is scored on")
    ap.add_argument("--parallel", type=int, default=8, help="recipes trained (and scored) at once")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "toy_sweep")
    ap.add_argument("--work", type=Path, default=None, help="each recipe's folder (default: OUT/runs)")
    ap.add_argument("--tiny", action="store_true", help="two recipes, 3 steps of batch 4, 2 pairs: a smoke run")
    ap.add_argument("--score", type=Path, default=None,
                    help="only score this trained toy (with --family and --json; what each recipe's process runs)")
    ap.add_argument("--family", choices=("sd1", "flux"), default=None)
    ap.add_argument("--json", type=Path, default=None, help="where --score writes its figures")
    args = ap.parse_args(argv)
    if args.score is not None:
        if args.family is None or args.json is None:
            raise SystemExit("--score needs --family and --json")
        args.json.write_text(json.dumps(score(args.score, args.family, args.pairs, args.tiny)))
        return
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"--recipes: unknown {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.tiny:
        names = names if args.recipes != ",".join(RECIPES) else ["sd1", "flux"]
        args.steps, args.batch, args.pairs = 3, 4, 2
    args.train_timeout = None if args.steps else args.minutes * 60 + 300
    args.score_timeout = 1800
    work = args.work or args.out / "runs"
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"sweep: {', '.join(names)} on {args.device}, "
          f"{f'{args.steps} steps' if args.steps else f'{args.minutes:g} min'} each, batch {args.batch}", flush=True)
    t0 = time.time()
    with ThreadPoolExecutor(args.parallel) as pool:
        entries = list(pool.map(lambda n: train_recipe(n, args, work), names))
        entries = list(pool.map(lambda e: score_recipe(e, args, work), entries))
    text = (f"toy sweep on {args.device} ({os.cpu_count()} CPU cores), {time.time() - t0:.0f} s; each toy scored on "
            f"{args.pairs} held-out pairs at t {LEVEL['sd1']} / sigma {LEVEL['flux']}\n\n{table(entries)}\n")
    (args.out / "sweep.md").write_text(text)
    (args.out / "sweep.json").write_text(json.dumps(entries, indent=1))
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as tar:
        for log in sorted(work.glob("*/*.log")):
            tar.add(log, arcname=f"{log.parent.name}/{log.name}")
    for family in ("sd1", "flux"):
        best = best_of(entries, family)
        if best is not None:
            src = work / best["recipe"] / f"{family}_toy.safetensors"
            shutil.copy(src, args.out / f"best_{family}_{best['recipe']}.safetensors")
    print(text)


if __name__ == "__main__":
    main()
