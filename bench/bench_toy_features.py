"""Do a toy model's features know the parts? The other half of the method's quality, asked directly.

    python bench/bench_toy_features.py --family sd1 [--weights PATH] [--pairs 16]
    python bench/bench_toy_features.py --family flux

The method matches each target token to the reference token whose feature (UNet: the ``attn1`` input; DiT: the
modulated image token before the Q/K/V projection) is most similar. That can only find the same part if the
features say which part a token is in, more loudly than they say its colour. Held-out (reference, target) pairs
are noised to the same level (no sampler: one model call per side and level) and, per attention block:

* ``same``: the method's rule (cosine similarity of the pack's own matching features, hard argmax over the
  reference object: a DiT's features are ``engine.patch.dit.matching_features``, centred, without
  massive-activation channels; a UNet's the attn1 input as it is): the fraction of target object tokens matched
  into the same part;
* ``part``: how well the part can be read off the feature at all: a ridge classifier fitted on the object tokens
  of a separate, larger set of fresh creatures (``--fit``, 128 by default, seeded apart from the pairs: fitted on
  the 16 references alone it learnt "this colour is this part" and failed on new colours), scored on the
  held-out targets' (``majority``: always answering the fitting set's commonest part);

Blocks on token maps coarser than 8 x 8 (a creature there is a few tokens) are left out. A model on which
matching can work has ``part`` far above ``majority`` and ``same`` near it. Runs in the test environment in a
few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))  # toy_tools, common (also when imported from the tests)

from bench_toy_attention import LEVELS, attention_modules, clean_prediction, noised  # noqa: E402


def _short(name: str) -> str:
    """``output_blocks.6.1.transformer_blocks.0`` -> ``output 6``; DiT names are kept."""
    parts = name.split(".")
    return f"{parts[0].split('_')[0]} {parts[1]}" if parts[0].endswith("_blocks") or parts[0] == "middle_block" \
        else name


def _ridge(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, lam: float = 10.0) -> torch.Tensor:
    mu, sd = x.mean(0), x.std(0) + 1e-4

    def design(v):
        return torch.cat([(v - mu) / sd, torch.ones(len(v), 1)], dim=1)

    a = design(x)
    w = torch.linalg.solve(a.T @ a + lam * torch.eye(a.shape[1]), a.T @ y)
    return design(x_test) @ w


def features(toy, images, level, modules, seed=7) -> dict[str, torch.Tensor]:
    """``{block: [B, tokens, C]}``: the matching features of every attention block, images noised to ``level``."""
    context_len = toy.positive[0][0].shape[1]
    store, handles = {}, []
    for name, module, kind in modules:
        start = context_len if kind == "single" else 0

        def hook(_m, args, name=name, start=start):
            store[name] = args[0][:, start:].detach().clone()
        handles.append(module.register_forward_pre_hook(hook))
    try:
        x0 = toy.vae.to_model(images)
        x = noised(toy, x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)), level)
        with torch.no_grad():
            clean_prediction(toy, x, level)
    finally:
        for h in handles:
            h.remove()
    return store


FIT_SEED = 4242  # the fitting set's creatures (the pairs use --seed, training its own stream)


def matching_features(toy, out: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The features the pack matches on: a DiT's through ``engine.patch.dit.matching_features``; a UNet's as they
    are."""
    if toy.family != "flux":
        return out, ref
    from toy_tools import pack_module

    return pack_module("engine.patch.dit").matching_features(out, ref)


def measure(toy, pairs, levels, fit: int = 128, per_pair: bool = False) -> dict:
    """``{(level, block): dict(same, part, majority)}`` over the pairs (blocks on maps of at least 8 x 8); with
    ``per_pair`` also ``same_pairs``: each pair's same-part rate (for intervals)."""
    from toy_tools import world

    ref, tgt = pairs
    fitting = world.sample(fit, FIT_SEED, pattern=toy.pattern) if fit else ref
    modules = attention_modules(toy.family, toy.patcher.model.diffusion_model)["all"]
    out, truth = {}, {}  # truth: {grid: the references', targets' and fitting set's part labels on it}
    for level in levels:
        fr_all, ft_all = features(toy, ref.images, level, modules), features(toy, tgt.images, level, modules)
        ff_all = features(toy, fitting.images, level, modules, seed=11) if fit else fr_all
        for name, _, _ in modules:
            fr, ft, ff = fr_all[name], ft_all[name], ff_all[name]
            grid = int(round(fr.shape[1] ** 0.5))
            if grid < 8:
                continue
            if grid not in truth:
                truth[grid] = tuple(world.ground_truth(c.poses, grid)[0].flatten(1) for c in (ref, tgt, fitting))
            rl, tl, fl = truth[grid]
            mt, mr = matching_features(toy, ft, fr)
            sim = torch.nn.functional.normalize(mt, dim=-1) @ torch.nn.functional.normalize(mr, dim=-1).transpose(1, 2)
            matched = rl.gather(1, sim.masked_fill((rl == 0)[:, None], -9.0).argmax(2))  # part of each match
            tin = tl > 0
            xf, yf, xt, yt = ff[fl > 0], fl[fl > 0] - 1, ft[tl > 0], tl[tl > 0] - 1
            part = _ridge(xf, torch.nn.functional.one_hot(yf, world.N_PARTS).float(), xt).argmax(1)
            hit = (matched == tl) & tin
            entry = dict(
                same=float(hit.sum() / tin.sum().clamp(min=1)), part=float((part == yt).float().mean()),
                majority=float((yt == torch.bincount(yf, minlength=world.N_PARTS).argmax()).float().mean()))
            if per_pair:
                entry["same_pairs"] = (hit.sum(1).float() / tin.sum(1).clamp(min=1)).tolist()
            out[(level, _short(name))] = entry
    return out


def main(argv=None):
    from common import toy_and_pairs, toy_parser

    ap = toy_parser(__doc__, pairs=32)
    ap.add_argument("--fit", type=int, default=128, help="fresh creatures the part readout is fitted on")
    args = ap.parse_args(argv)
    toy, pairs = toy_and_pairs(args)
    table = measure(toy, pairs, LEVELS[args.family], fit=args.fit)
    levels = LEVELS[args.family]
    blocks = list(dict.fromkeys(b for _, b in table))
    print(f"toy {args.family} ({args.weights or 'bundled'}): {args.pairs} held-out pairs; per cell "
          f"same part (the method's rule) / part read off the feature linearly (fitted on {args.fit} other creatures)")
    print("\n| block | " + " | ".join(f"noise {lv}" for lv in levels) + " | majority part |")
    print("|---|" + "---:|" * (len(levels) + 1))
    for b in blocks:
        cells = [f"{table[(lv, b)]['same']:.2f} / {table[(lv, b)]['part']:.2f}" for lv in levels]
        print(f"| {b} | " + " | ".join(cells) + f" | {table[(levels[0], b)]['majority']:.2f} |")


if __name__ == "__main__":
    main()
