"""Does a toy model's self-attention carry colour? The one question the method's quality rests on, asked directly.

    python bench/bench_toy_attention.py --family sd15 [--weights PATH] [--pairs 8]
    python bench/bench_toy_attention.py --family flux

The method moves appearance only through the attention of the blocks it rewrites: each target token inside the
object takes its matched reference token's attention input (UNet: the ``attn1`` input; DiT: the Q/K/V of the
image tokens) while the residual stream keeps the target's. If a model keeps colour in its residual stream and
convolutions, no matching can move it. This script measures that without the sampler, in one model call per
noise level: a held-out target noised to level ``t``, its clean-image prediction with and without the
*ground-truth* correspondence injected (the reference noised to the same level, same-part nearest canonical
coordinates), and per target part how far the predicted colour moved towards the reference's same-part colour:

* ``move``: the projection of the change on (reference colour - target colour), divided by its length squared:
  0 = not at all, 1 = all the way; averaged over the parts of every pair;
* ``cfg 2.5 acc``: part-colour accuracy (nearest of the reference's part colours is the same part's) of
  ``plain + 2.5 (injected - plain)``: what a CFG of 2.5 makes of a one-sided change.

Rows: the noise levels; columns: block groups (the family's default blocks, then every attention block). A model
on which the method can work shows clearly positive moves at the middle noise levels (where a part's colour is
still open). Runs in the test environment; a few seconds a level on two cores.

``--siblings`` (UNet) asks where a model pools colour across an image: pictures of two same-coloured siblings,
the right one's colours inverted; how much the left creature's predicted clean latent changes, as a fraction of
the right one's own change, with every attention layer working and with every ``attn1`` output zeroed. The same
fraction either way: the convolutions, not attention, carry colour across the picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LEVELS = {"sd15": (300, 500, 680, 850), "flux": (0.3, 0.5, 0.7, 0.9)}


def attention_modules(family: str, net) -> dict[str, list]:
    """``{group: [(name, module, kind)]}``: where to inject (UNet: ``attn1`` pre-input; DiT: Q/K/V output)."""
    if family == "sd15":
        blocks = [(name, m.attn1, "input") for name, m in net.named_modules()
                  if type(m).__name__ == "BasicTransformerBlock"]
        default = [b for b in blocks if any(b[0].startswith(f"output_blocks.{i}.") for i in range(6, 12))]
        return {"output 6-11 (default)": default, "output 3-11": [b for b in blocks if b[0].startswith("output")],
                "all": blocks}
    from fixtures.toy_world.evaluate import pack_module

    doubles = [(f"double.{i}", b.img_attn.qkv, "double") for i, b in enumerate(net.double_blocks)]
    singles = [(f"single.{i}", b.linear1, "single") for i, b in enumerate(net.single_blocks)]
    every = doubles + singles
    ids = {("double", i) for i in range(len(doubles))} | {("single", i) for i in range(len(singles))}
    auto = {f"{k}.{i}" for k, i in pack_module("engine.layers").resolve_layers("auto", "", "flux", ids)}
    return {"auto (default)": [b for b in every if b[0] in auto], "second half": every[len(every) // 2:],
            "doubles": doubles, "singles": singles, "all": every}


def _alpha_sigma(toy, level) -> tuple[float, float]:
    """``x_t = a x_0 + b noise`` at a noise level: a timestep of SD1.5's schedule or a flow sigma."""
    if toy.family == "flux":
        return 1 - float(level), float(level)
    sigma = float(toy.patcher.model.model_sampling.sigmas[int(level)])
    a = (1 / (1 + sigma**2)) ** 0.5
    return a, (1 - a * a) ** 0.5


def noised(toy, x0, noise, level):
    a, b = _alpha_sigma(toy, level)
    return a * x0 + b * noise


def clean_prediction(toy, x, level):
    """The model's prediction of the clean latent from ``x`` at ``level`` (the fixed toy prompt)."""
    net = toy.patcher.model.diffusion_model
    ctx = toy.positive[0][0]
    a, b = _alpha_sigma(toy, level)
    if toy.family == "flux":
        pooled = toy.positive[0][1]["pooled_output"]
        v = net(x, timestep=torch.tensor([float(level)]), context=ctx, y=pooled, guidance=torch.tensor([3.5]))
        return x - b * v
    return (x - b * net(x, timesteps=torch.tensor([float(level)]), context=ctx)) / a


class Injector:
    """Hooks that record the reference's attention inputs, then give each target token inside the object its
    ground-truth match's."""

    def __init__(self, modules, hidden: int, context_len: int):
        self.modules, self.hidden, self.context_len = modules, hidden, context_len
        self.mode, self.store, self.src = "off", {}, {}
        self.handles = []
        for name, module, kind in modules:
            if kind == "input":
                self.handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            else:
                self.handles.append(module.register_forward_hook(self._post(name, kind)))

    def close(self):
        for h in self.handles:
            h.remove()

    def _take(self, name, x):
        if self.mode == "record":
            self.store[name] = x.detach().clone()
            return x
        if self.mode != "inject":
            return x
        src = self.src[x.shape[1]]
        inside = src >= 0
        x = x.clone()
        x[:, inside] = self.store[name][:, src[inside]]
        return x

    def _pre(self, name):
        def hook(_m, args, kwargs):
            return (self._take(name, args[0]),) + tuple(args[1:]), kwargs
        return hook

    def _post(self, name, kind):
        def hook(_m, _inputs, out):
            start = self.context_len if kind == "single" else 0
            width = 3 * self.hidden
            img = out[:, start:, :width]
            new = self._take(name, img)
            if new is img:
                return out
            out = out.clone()
            out[:, start:, :width] = new
            return out
        return hook


def probe(toy, pairs, levels, groups, progress=print) -> dict:
    """``{(level, group): (move, cfg accuracy)}`` over the pairs."""
    from fixtures.toy_world import evaluate as ev
    from fixtures.toy_world import world

    net = toy.patcher.model.diffusion_model
    ref, tgt = pairs
    ctx = toy.positive[0][0]
    flux = toy.family == "flux"
    hidden = getattr(net, "hidden_size", 0)
    down = toy.vae.downscale
    out = {}
    for group, modules in groups.items():
        inj = Injector(modules, hidden, ctx.shape[1])
        try:
            for level in levels:
                moves, right = [], []
                for i in range(len(ref)):
                    g = torch.Generator().manual_seed(1000 + i)
                    xr0, xt0 = toy.vae.to_model(ref.images[i:i + 1]), toy.vae.to_model(tgt.images[i:i + 1])
                    nr, nt = torch.randn(xr0.shape, generator=g), torch.randn(xt0.shape, generator=g)
                    xr, xt = noised(toy, xr0, nr, level), noised(toy, xt0, nt, level)
                    h = xt.shape[-2]
                    patch = 2 if flux else 1
                    for grid in {h // patch // k for k in (1, 2, 4, 8) if h // patch // k >= 2}:
                        tl, _ = world.ground_truth(tgt.poses.take([i]), grid)
                        rl, _ = world.ground_truth(ref.poses.take([i]), grid)
                        inj.src[grid * grid] = ev.oracle_src(ref.poses.take([i]), tgt.poses.take([i]), (grid, grid),
                                                             (tl[0] > 0).flatten(), (rl[0] > 0).flatten())

                    with torch.no_grad():
                        inj.mode = "record"
                        clean_prediction(toy, xr, level)
                        inj.mode = "off"
                        plain = clean_prediction(toy, xt, level)
                        inj.mode = "inject"
                        moved = clean_prediction(toy, xt, level)
                        inj.mode = "off"
                    labels = ev._core_labels(tgt.labels[i:i + 1], down)[0]
                    c0, c1 = toy.vae.colours(plain)[0], toy.vae.colours(moved)[0]
                    for p in range(1, world.N_PARTS + 1):
                        where = labels == p
                        if int(where.sum()) == 0:
                            continue
                        m0, m1 = c0[:, where].mean(1), c1[:, where].mean(1)
                        d = ref.colours[i, p - 1] - tgt.colours[i, p - 1]
                        moves.append(float(((m1 - m0) * d).sum() / d.pow(2).sum()))
                        cfg = m0 + 2.5 * (m1 - m0)
                        right.append(float(int((ref.colours[i] - cfg).norm(dim=1).argmin()) == p - 1))
                out[(level, group)] = (sum(moves) / len(moves), sum(right) / len(right))
                progress(f"  {group} at {level}: move {out[(level, group)][0]:+.3f}, cfg 2.5 acc "
                         f"{out[(level, group)][1]:.3f}")
        finally:
            inj.close()
    return out


def sibling_pull(toy, levels, n: int = 16, seed: int = 5) -> dict:
    """``{(level, zeroed): fraction}``: the left sibling's clean-prediction change over the right one's input
    change when the right one's object colours are inverted (``zeroed``: every attn1 output set to zero)."""
    from fixtures.toy_world import world

    net = toy.patcher.model.diffusion_model
    images = world.siblings(n, seed)
    corner = images[:, :, :1, :1]
    right = images[..., world.SIZE:]
    on_right = (right - corner).abs().sum(1, keepdim=True) > 0.3  # the object: away from the background
    other = images.clone()
    other[..., world.SIZE:] = torch.where(on_right, 1 - right, right)
    d = toy.vae.downscale
    on_left = ((images[..., :world.SIZE] - corner).abs().sum(1, keepdim=True) > 0.3)[:, :, ::d, ::d]
    half = world.SIZE // d
    out = {}
    for zeroed in (False, True):
        handles = [m.attn1.register_forward_hook(lambda _m, _i, o: o * 0) for m in net.modules()
                   if zeroed and type(m).__name__ == "BasicTransformerBlock"]
        try:
            for level in levels:
                xa, xb = toy.vae.to_model(images), toy.vae.to_model(other)
                noise = torch.randn(xa.shape, generator=torch.Generator().manual_seed(int(level)))
                with torch.no_grad():
                    pa = torch.cat([clean_prediction(toy, noised(toy, xa[i:i + 1], noise[i:i + 1], level), level)
                                    for i in range(n)])
                    pb = torch.cat([clean_prediction(toy, noised(toy, xb[i:i + 1], noise[i:i + 1], level), level)
                                    for i in range(n)])
                left = (pa - pb)[..., :half].masked_select(on_left.expand(-1, pa.shape[1], -1, -1))
                out[(level, zeroed)] = float(left.pow(2).mean().sqrt() / (xa - xb)[..., half:].pow(2).mean().sqrt())
        finally:
            for h in handles:
                h.remove()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=("sd15", "flux"), default="sd15")
    ap.add_argument("--weights", type=Path, default=None, help="another trained fixture of the family")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--siblings", action="store_true", help="also the sibling test (UNet families)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from fixtures.toy_world.host import setup_comfyui

    setup_comfyui()
    from fixtures.toy_world import models, world

    toy = models.load(args.family, path=args.weights)
    net = toy.patcher.model.diffusion_model
    groups = attention_modules(args.family, net)
    pairs = world.pairs(args.pairs, args.seed)
    print(f"toy {args.family} ({args.weights or 'bundled'}): {args.pairs} held-out pairs, ground-truth injection")
    table = probe(toy, pairs, LEVELS[args.family], groups)
    names = list(groups)
    print("\n| noise level | " + " | ".join(f"{n}: move / cfg 2.5 acc" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for level in LEVELS[args.family]:
        cells = " | ".join(f"{table[(level, n)][0]:+.3f} / {table[(level, n)][1]:.2f}" for n in names)
        print(f"| {level} | {cells} |")
    if args.siblings and args.family == "sd15":
        pull = sibling_pull(toy, LEVELS[args.family])
        print("\n| noise level | left sibling's change / right's: attention on | every attn1 zeroed |\n|---|---:|---:|")
        for level in LEVELS[args.family]:
            print(f"| {level} | {pull[(level, False)]:.3f} | {pull[(level, True)]:.3f} |")


if __name__ == "__main__":
    main()
