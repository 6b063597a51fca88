"""Does a toy model's self-attention carry colour? The one question the method's quality rests on, asked directly.

    python bench/bench_toy_attention.py --family sd1 [--weights PATH] [--pairs 8]
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
the right one's object colours inverted (the background kept); how much the left creature's predicted clean latent changes, as a fraction of
the right one's own change, with every attention layer working and with every ``attn1`` output zeroed. The same
fraction either way: the convolutions, not attention, carry colour across the picture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))  # toy_tools, common (also when imported from the tests)

LEVELS = {"sd1": (300, 500, 680, 850), "flux": (0.3, 0.5, 0.7, 0.9)}


def attention_modules(family: str, net) -> dict[str, list]:
    """``{group: [(name, module, kind)]}``: where to inject (UNet: ``attn1`` pre-input; DiT: Q/K/V output)."""
    if family == "sd1":
        blocks = [(name, m.attn1, "input") for name, m in net.named_modules()
                  if type(m).__name__ == "BasicTransformerBlock"]
        default = [b for b in blocks if any(b[0].startswith(f"output_blocks.{i}.") for i in range(6, 12))]
        return {"output 6-11 (default)": default, "output 3-11": [b for b in blocks if b[0].startswith("output")],
                "all": blocks}
    from toy_tools import pack_module

    doubles = [(f"double.{i}", b.img_attn.qkv, "double") for i, b in enumerate(net.double_blocks)]
    singles = [(f"single.{i}", b.linear1, "single") for i, b in enumerate(net.single_blocks)]
    every = doubles + singles
    ids = {("double", i) for i in range(len(doubles))} | {("single", i) for i in range(len(singles))}
    flux = pack_module("engine.models.families").FAMILIES["flux"]
    auto = {f"{k}.{i}" for k, i in pack_module("engine.models.layers").resolve_layers("auto", "", flux, ids)}
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
    """The model's prediction of the clean latent from a batch ``x`` at ``level`` (the fixed toy prompt)."""
    net = toy.patcher.model.diffusion_model
    ctx = toy.positive[0][0]
    a, b = _alpha_sigma(toy, level)
    if toy.family == "flux":
        pooled = toy.positive[0][1]["pooled_output"]
        n = x.shape[0]
        v = net(x, timestep=torch.full((n,), float(level)), context=ctx.expand(n, -1, -1), y=pooled.expand(n, -1),
                guidance=torch.full((n,), 3.5))
        return x - b * v
    t = torch.full((x.shape[0],), float(level))
    return (x - b * net(x, timesteps=t, context=ctx.expand(x.shape[0], -1, -1))) / a


class Injector:
    """Hooks on every module of the groups: ``record()`` keeps the reference's attention inputs, ``inject(names)``
    gives each target token inside the object its ground-truth match's (``src``: flat reference index per token
    count, -1 = kept) at the named modules, ``off()`` leaves every call alone."""

    def __init__(self, modules, hidden: int, context_len: int):
        self.hidden, self.context_len = hidden, context_len
        self.mode, self.active, self.store, self.src = "off", set(), {}, {}
        self.handles = []
        for name, module, kind in modules:
            if kind == "input":
                self.handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            else:
                self.handles.append(module.register_forward_hook(self._post(name, kind)))

    def record(self):
        self.mode = "record"

    def inject(self, names):
        self.mode, self.active = "inject", set(names)

    def off(self):
        self.mode = "off"

    def close(self):
        for h in self.handles:
            h.remove()

    def _take(self, name, x):
        if self.mode == "record":
            self.store[name] = x.detach().clone()
            return x
        if self.mode != "inject" or name not in self.active:
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
        start = self.context_len if kind == "single" else 0

        def hook(_m, _inputs, out):
            img = out[:, start:, : 3 * self.hidden]
            new = self._take(name, img)
            if new is img:
                return out
            out = out.clone()
            out[:, start:, : 3 * self.hidden] = new
            return out
        return hook


def _oracle_maps(pairs, i: int, side: int, patch: int) -> dict:
    """``{tokens: src}``: pair ``i``'s ground-truth correspondence on every token map of a ``side`` latent."""
    from toy_tools import evaluate as ev
    from toy_tools import world

    ref, tgt = (c.poses.take([i]) for c in pairs)
    maps = {}
    for grid in {side // patch // k for k in (1, 2, 4, 8) if side // patch // k >= 2}:
        inside = (world.ground_truth(tgt, grid)[0][0] > 0).flatten()
        ref_inside = (world.ground_truth(ref, grid)[0][0] > 0).flatten()
        maps[grid * grid] = ev.oracle_src(ref, tgt, (grid, grid), inside, ref_inside)
    return maps


def probe(toy, pairs, levels, groups, progress=print) -> dict:
    """``{(level, group): (move, cfg accuracy)}`` over the pairs. Per pair and level the reference pass and the
    plain target pass run once; each group adds one injected pass."""
    from toy_tools import evaluate as ev
    from toy_tools import world

    net = toy.patcher.model.diffusion_model
    ref, tgt = pairs
    modules = {m[0]: m for group in groups.values() for m in group}
    inj = Injector(modules.values(), getattr(net, "hidden_size", 0), toy.positive[0][0].shape[1])
    scores = {(level, group): ([], []) for level in levels for group in groups}
    try:
        for i in range(len(ref)):
            g = torch.Generator().manual_seed(1000 + i)
            xr0, xt0 = toy.vae.to_model(ref.images[i:i + 1]), toy.vae.to_model(tgt.images[i:i + 1])
            nr, nt = torch.randn(xr0.shape, generator=g), torch.randn(xt0.shape, generator=g)
            inj.src = _oracle_maps(pairs, i, xt0.shape[-2], 2 if toy.family == "flux" else 1)
            labels = ev._core_labels(tgt.labels[i:i + 1], toy.vae.downscale)[0]
            parts = [p for p in range(1, world.N_PARTS + 1) if int((labels == p).sum()) > 0]
            for level in levels:
                xr, xt = noised(toy, xr0, nr, level), noised(toy, xt0, nt, level)
                with torch.no_grad():
                    inj.record()
                    clean_prediction(toy, xr, level)
                    inj.off()
                    c0 = toy.vae.colours(clean_prediction(toy, xt, level))[0]
                    for group, members in groups.items():
                        inj.inject(m[0] for m in members)
                        c1 = toy.vae.colours(clean_prediction(toy, xt, level))[0]
                        inj.off()
                        moves, right = scores[(level, group)]
                        for p in parts:
                            m0, m1 = c0[:, labels == p].mean(1), c1[:, labels == p].mean(1)
                            d = ref.colours[i, p - 1] - tgt.colours[i, p - 1]
                            moves.append(float(((m1 - m0) * d).sum() / d.pow(2).sum()))
                            cfg = m0 + 2.5 * (m1 - m0)
                            right.append(float(int((ref.colours[i] - cfg).norm(dim=1).argmin()) == p - 1))
    finally:
        inj.close()
    out = {key: (sum(m) / len(m), sum(r) / len(r)) for key, (m, r) in scores.items()}
    for (level, group), (move, acc) in out.items():
        progress(f"  {group} at {level}: move {move:+.3f}, cfg 2.5 acc {acc:.3f}")
    return out


def sibling_pull(toy, levels, n: int = 16, seed: int = 5) -> dict:
    """``{(level, zeroed): fraction}``: the left sibling's clean-prediction change over the right one's input
    change when the right one's object colours are inverted (background kept; ``zeroed``: every attn1 output
    set to zero)."""
    from toy_tools import world

    net = toy.patcher.model.diffusion_model
    images, poses = world.siblings(n, seed, with_poses=True)
    on = (world.sibling_labels(*poses) > 0)[:, None]  # [n, 1, H, 2H]
    other = torch.where(on & (torch.arange(2 * world.SIZE) >= world.SIZE), 1 - images, images)
    d, half = toy.vae.downscale, world.SIZE // toy.vae.downscale
    on_left = on[..., :world.SIZE][..., ::d, ::d]
    xa, xb = toy.vae.to_model(images), toy.vae.to_model(other)
    out = {}
    for zeroed in (False, True):
        handles = [m.attn1.register_forward_hook(lambda _m, _i, o: o * 0) for m in net.modules()
                   if zeroed and type(m).__name__ == "BasicTransformerBlock"]
        try:
            for level in levels:
                noise = torch.randn(xa.shape, generator=torch.Generator().manual_seed(int(level)))
                with torch.no_grad():
                    pa = clean_prediction(toy, noised(toy, xa, noise, level), level)
                    pb = clean_prediction(toy, noised(toy, xb, noise, level), level)
                left = (pa - pb)[..., :half].masked_select(on_left.expand(-1, pa.shape[1], -1, -1))
                out[(level, zeroed)] = float(left.pow(2).mean().sqrt() / (xa - xb)[..., half:].pow(2).mean().sqrt())
        finally:
            for h in handles:
                h.remove()
    return out


def main(argv=None):
    from common import toy_and_pairs, toy_parser

    ap = toy_parser(__doc__, pairs=8)
    ap.add_argument("--siblings", action="store_true", help="also the sibling test (UNet families)")
    args = ap.parse_args(argv)
    toy, pairs = toy_and_pairs(args)
    groups = attention_modules(args.family, toy.patcher.model.diffusion_model)
    print(f"toy {args.family} ({args.weights or 'bundled'}): {args.pairs} held-out pairs, ground-truth injection")
    table = probe(toy, pairs, LEVELS[args.family], groups)
    names = list(groups)
    print("\n| noise level | " + " | ".join(f"{n}: move / cfg 2.5 acc" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for level in LEVELS[args.family]:
        cells = " | ".join(f"{table[(level, n)][0]:+.3f} / {table[(level, n)][1]:.2f}" for n in names)
        print(f"| {level} | {cells} |")
    if args.siblings and args.family == "sd1":
        pull = sibling_pull(toy, LEVELS[args.family])
        print("\n| noise level | left sibling's change / right's: attention on | every attn1 zeroed |\n|---|---:|---:|")
        for level in LEVELS[args.family]:
            print(f"| {level} | {pull[(level, False)]:.3f} | {pull[(level, True)]:.3f} |")


if __name__ == "__main__":
    main()
