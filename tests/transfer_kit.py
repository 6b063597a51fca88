"""Shared set-up for transfer tests: invert a target and references on a tiny UNet, patch, sample."""

from __future__ import annotations

import tiny_models
import torch
from harness import pack_module

STEPS = 12
SKIP = 2
SIZE = 16  # latent size (a 128 px image)


def latent(seed: int, batch: int = 1, size: int = SIZE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, 4, size // 4, size // 4, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return 2.0 * smooth + 0.3 * torch.randn(batch, 4, size, size, generator=g)


def half_masks(size: int = SIZE * 8):
    """Object 1 = left half, object 2 = right half (image resolution)."""
    left = torch.zeros(size, size)
    left[:, : size // 2] = 1
    return left, 1 - left


def invert(model, lat, conds, method="ddpm_edit_friendly", cfg=3.5, seed=0, steps=STEPS, skip=SKIP,
           scheduler="ddim_uniform"):
    pos, neg = conds
    return pack_module("engine.backends.invert").invert(model, pos, neg, lat, steps=steps, cfg=cfg, method=method,
                                               skip_steps=skip, scheduler=scheduler, seed=seed)


def patch(model, target, reference, masks=None, extra_refs=(), **settings):
    node = pack_module("nodes.semantic_match_patch").SemanticMatchPatch()
    kw = dict(layers="auto", custom_layers="output.6-11", start_percent=0.15, end_percent=1.0, structure_every=5,
              structure_end_percent=0.59, strength=1.0)
    kw.update(settings)
    extra = {f"reference_{i + 2}": r for i, r in enumerate(extra_refs)}
    out = node.patch(model, reference, target, masks=masks, **kw, **extra)
    return out["result"][0]


def sample_run(patched, conds, cfg=3.5, adain=True, adain_start=0.72, ending="authors"):
    """``(output latent, the sampling run)``: the run holds what the run matched (its correspondence)."""
    pos, neg = conds
    return pack_module("engine.backends.sample").transfer(patched, pos, neg, cfg, adain, adain_start, ending)


def sample(patched, conds, **kw):
    return sample_run(patched, conds, **kw)[0]


def plan(patched):
    """The transfer plan a patched MODEL carries."""
    return pack_module("engine.patch.install").plan_of(patched)


def masks(target, reference, ref_ids=""):
    node = pack_module("nodes.load_masks").LoadMasks()
    return node.load(ref_ids, False, target_mask=target, reference_mask=reference)["result"][0]


def conds(seed=0):
    return tiny_models.sd15_conds(seed)


def record_events(monkeypatch) -> dict:
    """``(step, block, block_index, kind) -> count`` of the injections the UNet hooks make ("match" or
    "struct"), seen by spying on the attn1 patch and its two injection functions (``engine.unet``)."""
    unet = pack_module("engine.patch.unet")
    events: dict = {}
    where: dict = {}
    real_call = unet.Attn1Patch.__call__

    def call_spy(self, n, context, value, extra):
        where["index"] = extra.get("block_index", 0)
        return real_call(self, n, context, value, extra)

    def count(step, block, kind):
        key = (step, block, where.get("index", 0), kind)
        events[key] = events.get(key, 0) + 1

    real_match, real_struct = unet.inject_matches, unet.inject_structure

    def match_spy(plan, run, call, n, block):
        count(call.step, block, "match")
        return real_match(plan, run, call, n, block)

    def struct_spy(call, n, block):
        count(call.step, block, "struct")
        return real_struct(call, n, block)

    monkeypatch.setattr(unet.Attn1Patch, "__call__", call_spy)
    monkeypatch.setattr(unet, "inject_matches", match_spy)
    monkeypatch.setattr(unet, "inject_structure", struct_spy)
    return events
