"""The method inside the sampler graph, on tiny UNets through the real ComfyUI sampler."""

from __future__ import annotations

import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module


@pytest.fixture(scope="module")
def pair(sd15):
    c = kit.conds()
    tgt_lat, ref_lat = kit.latent(10), kit.latent(11)
    return dict(c=c, tgt_lat=tgt_lat, ref_lat=ref_lat, target=kit.invert(sd15, tgt_lat, c),
                reference=kit.invert(sd15, ref_lat, c, seed=1))


def test_strength_zero_gives_back_the_target(sd15, pair, monkeypatch):
    events = kit.record_events(monkeypatch)
    patched = kit.patch(sd15, pair["target"], pair["reference"], strength=0.0)
    out = kit.sample(patched, pair["c"], ending="exact")
    assert (out - pair["tgt_lat"]).abs().max() <= 1e-4
    assert not events  # nothing ran


def test_empty_window_gives_back_the_target(sd15, pair):
    patched = kit.patch(sd15, pair["target"], pair["reference"], start_percent=1.0, end_percent=1.0)
    out = kit.sample(patched, pair["c"], adain=False, ending="exact")
    assert (out - pair["tgt_lat"]).abs().max() <= 1e-4


def test_transfer_changes_the_masked_object_and_keeps_the_background(sd15, pair):
    left, right = kit.half_masks()
    m = kit.masks(left, left)
    patched = kit.patch(sd15, pair["target"], pair["reference"], masks=m)
    out = kit.sample(patched, pair["c"], ending="exact")  # the authors' ending also drops the target's last noise
    diff = (out - pair["tgt_lat"]).abs().mean(dim=1)[0]  # [H, W]
    inside, outside = diff[:, : kit.SIZE // 2 - 1].mean(), diff[:, kit.SIZE // 2 + 1:].mean()
    print(f"mean |out - target| inside {float(inside):.4f}, outside {float(outside):.4f}")
    assert inside > 0.05
    # attention mixes tokens, so the background moves a little, but much less than the object
    assert outside < 0.2 * inside  # measured: inside 0.87, outside 0.041 (VAE latent units)


def _expected_phases(state, steps, skip):
    match, struct = set(), set()
    for g in range(skip, steps):
        p = state.phase(g)
        if p == "match":
            match.add(g)
        elif p == "struct":
            struct.add(g)
    return match, struct


def test_matching_at_exactly_the_configured_layers_and_steps(sd15, pair, monkeypatch):
    ev = kit.record_events(monkeypatch)
    patched = kit.patch(sd15, pair["target"], pair["reference"])
    kit.sample(patched, pair["c"])
    state = kit.plan(patched)
    steps = state.target.steps  # ddim_uniform may give a step more than asked (1000 // 12 spacing)
    match, struct = _expected_phases(state, steps, kit.SKIP)
    # authors' rule at ~10 run steps: matching from run step 2 (round(0.15 * n)), structure at run step 2 only
    assert struct == {kit.SKIP + 2} and match == set(range(kit.SKIP + 3, steps))
    layers = {("output", i) for i in range(6, 12)}
    assert {(s, b) for (s, b, i, k) in ev if k == "match"} == {(s, b) for s in match for b in layers}
    assert {(s, b) for (s, b, i, k) in ev if k == "struct"} == {(s, b) for s in struct for b in layers}
    assert all(i == 0 for (_, _, i, _) in ev) and all(v == 1 for v in ev.values())


def test_custom_layers_and_window(sd15, pair, monkeypatch):
    ev = kit.record_events(monkeypatch)
    patched = kit.patch(sd15, pair["target"], pair["reference"], layers="custom", custom_layers="output.3, output.9-10",
                        start_percent=0.5, end_percent=0.8, structure_every=0)
    kit.sample(patched, pair["c"])
    assert {b for (_, b, _, _) in ev} == {("output", 3), ("output", 9), ("output", 10)}
    target = kit.plan(patched).target
    n_run = target.steps - target.start_step
    assert {s for (s, *_) in ev} == set(range(kit.SKIP + round(0.5 * n_run), kit.SKIP + round(0.8 * n_run)))
    assert {k for (*_, k) in ev} == {"match"}


def test_the_model_is_never_touched(sd15, pair):
    import comfy.sample

    pos, neg = pair["c"]
    noise = torch.randn(1, 4, kit.SIZE, kit.SIZE, generator=torch.Generator().manual_seed(3))

    def plain():
        return comfy.sample.sample(sd15, noise, 4, 3.0, "euler", "normal", pos, neg, torch.zeros_like(noise), seed=0,
                                   disable_pbar=True)

    before = plain()
    options = repr(sd15.model_options)
    patched = kit.patch(sd15, pair["target"], pair["reference"])
    kit.sample(patched, pair["c"])
    assert torch.equal(plain(), before)
    assert repr(sd15.model_options) == options
    assert "attn1_patch" not in repr(sd15.model_options)


def test_cfg_one_matches_without_structure_injection(sd15, pair, monkeypatch):
    ev = kit.record_events(monkeypatch)
    patched = kit.patch(sd15, pair["target"], pair["reference"])
    out = kit.sample(patched, pair["c"], cfg=1.0)
    kinds = {k for (*_, k) in ev}
    assert kinds == {"match"}  # no unconditional rows at cfg 1: nothing to inject structure into
    assert torch.isfinite(out).all()


def test_separate_cond_and_uncond_calls_give_the_same_result(sd15, pair, monkeypatch):
    patched = kit.patch(sd15, pair["target"], pair["reference"])
    together = kit.sample(patched, pair["c"])
    calls = []
    rows = pack_module("engine.patch.call")
    orig = rows.on_model_call

    def spy(plan, apply_model, x, t, **c):
        calls.append(list(c["transformer_options"]["cond_or_uncond"]))
        return orig(plan, apply_model, x, t, **c)

    monkeypatch.setattr(rows, "on_model_call", spy)
    ev = kit.record_events(monkeypatch)
    # "no free memory" as seen by the sampler's batching only: ComfyUI then runs cond and uncond apart
    import types

    import comfy.samplers

    real = comfy.samplers.model_management
    low = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    low.get_free_memory = lambda *a, **k: 0
    monkeypatch.setattr(comfy.samplers, "model_management", low)
    apart = kit.sample(patched, pair["c"])
    assert calls and all(len(c) == 1 for c in calls)
    assert (apart - together).abs().max() < 1e-3
    assert {k for (*_, k) in ev} == {"match", "struct"}


def test_two_objects_from_two_references_never_cross(sd15, pair):
    c = pair["c"]
    ref2 = kit.invert(sd15, kit.latent(12), c, seed=2)
    left, right = kit.half_masks()
    top = torch.zeros_like(left)
    top[: top.shape[0] // 2] = 1
    m = kit.masks(torch.stack([left, right]), torch.stack([top, 1 - top]), "1,2")
    patched = kit.patch(sd15, pair["target"], pair["reference"], masks=m, extra_refs=[ref2])
    corr = kit.sample_run(patched, c)[1].correspondence
    h, w = corr.grid
    src = corr.src[0].view(h, w)
    n = h * w
    left_src, right_src = src[:, : w // 2], src[:, w // 2:]
    assert (left_src >= 0).all() and (left_src < n).all()  # object 1 -> reference 1
    assert (right_src >= n).all()  # object 2 -> reference 2
    ys_left = torch.div(left_src, w, rounding_mode="floor")
    ys_right = torch.div(right_src - n, w, rounding_mode="floor")
    assert (ys_left < h // 2).all() and (ys_right >= h // 2).all()  # inside each reference's object mask


def test_batch_of_two_targets(sd15, pair):
    c = pair["c"]
    lat = torch.cat([pair["tgt_lat"], kit.latent(13)])
    target = kit.invert(sd15, lat, c)
    patched = kit.patch(sd15, target, pair["reference"], strength=0.0)
    assert (kit.sample(patched, c, ending="exact") - lat).abs().max() <= 1e-4
    patched = kit.patch(sd15, target, pair["reference"])
    out, run = kit.sample_run(patched, c)
    assert out.shape == lat.shape and run.correspondence.src.shape[0] == 2


def test_standard_ksampler_advanced_path(sd15, monkeypatch):
    """DDIM-inverted target + patched MODEL in the stock KSamplerAdvanced code path (no noise, start at skip)."""
    import comfy.sample

    c = kit.conds()
    pos, neg = c
    tgt_lat = kit.latent(20)
    target = kit.invert(sd15, tgt_lat, c, method="ddim", cfg=1.0)
    reference = kit.invert(sd15, kit.latent(21), c, method="ddim", cfg=1.0)
    start = sd15.model.process_latent_out(target.start_latent())

    def ksampler_advanced(model):
        return comfy.sample.sample(model, torch.zeros_like(start), kit.STEPS, 2.5, "ddim", "ddim_uniform", pos, neg,
                                   start, disable_noise=True, start_step=kit.SKIP, last_step=10000,
                                   force_full_denoise=True, seed=0, disable_pbar=True)

    plain = ksampler_advanced(sd15)
    off = ksampler_advanced(kit.patch(sd15, target, reference, strength=0.0))
    assert torch.equal(off, plain)
    ev = kit.record_events(monkeypatch)
    on = ksampler_advanced(kit.patch(sd15, target, reference))
    assert {k for (*_, k) in ev} == {"match", "struct"}
    assert (on - plain).abs().mean() > 1e-3


def test_v_prediction_model(sd15_v):
    c = kit.conds()
    tgt = kit.latent(30)
    target, reference = kit.invert(sd15_v, tgt, c), kit.invert(sd15_v, kit.latent(31), c, seed=1)
    assert (kit.sample(kit.patch(sd15_v, target, reference, strength=0.0), c, ending="exact") - tgt).abs().max() <= 1e-4
    out = kit.sample(kit.patch(sd15_v, target, reference), c)
    assert torch.isfinite(out).all() and (out - tgt).abs().mean() > 1e-3


def test_sdxl_model(sdxl, monkeypatch):
    c = tiny_models.sdxl_conds(size=kit.SIZE * 8)
    tgt = kit.latent(40)
    target, reference = kit.invert(sdxl, tgt, c, steps=8), kit.invert(sdxl, kit.latent(41), c, seed=1, steps=8)
    assert (kit.sample(kit.patch(sdxl, target, reference, strength=0.0), c, ending="exact") - tgt).abs().max() <= 1e-4
    ev = kit.record_events(monkeypatch)
    out = kit.sample(kit.patch(sdxl, target, reference), c)
    blocks = {(b, i) for (_, b, i, _) in ev}
    assert {b for b, _ in blocks} == {("output", i) for i in range(6)}
    assert {i for b, i in blocks if b == ("output", 0)} == set(range(10))
    assert torch.isfinite(out).all()


def test_bf16_model_keeps_its_dtype(sd15, pair, monkeypatch):
    import copy

    import comfy.model_patcher

    base = copy.deepcopy(sd15.model)
    base.diffusion_model.to(torch.bfloat16)
    base.diffusion_model.dtype = torch.bfloat16  # what ComfyUI sets when it loads a model in bf16
    cpu = torch.device("cpu")
    model = comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)
    c = kit.conds()
    target, reference = kit.invert(model, pair["tgt_lat"], c), kit.invert(model, pair["ref_lat"], c, seed=1)
    patched = kit.patch(model, target, reference)
    seen = []
    unet = pack_module("engine.patch.unet")
    orig = unet.Attn1Patch.__call__

    def spy(self, n, ctx, val, extra):
        out = orig(self, n, ctx, val, extra)
        seen.append((n.dtype, out[0].dtype))
        return out

    monkeypatch.setattr(unet.Attn1Patch, "__call__", spy)
    ev = kit.record_events(monkeypatch)
    out = kit.sample(patched, c)
    assert torch.isfinite(out).all()
    assert seen and all(a == torch.bfloat16 and b == torch.bfloat16 for a, b in seen)
    assert any(k == "match" for (*_, k) in ev)


def test_sampler_node_outputs_latent_picture_and_viewer_data(sd15, pair, monkeypatch):
    import base64

    import numpy as np

    patched = kit.patch(sd15, pair["target"], pair["reference"])
    node = pack_module("nodes.appearance_transfer_sampler").AppearanceTransferSampler()
    pos, neg = pair["c"]
    runs = []
    node_module = pack_module("nodes.appearance_transfer_sampler")
    real = node_module.transfer
    monkeypatch.setattr(node_module, "transfer", lambda *a, **k: runs.append(real(*a, **k)) or runs[-1])
    out = node.sample(patched, pos, neg, 3.5, True, 0.73)
    latent, picture = out["result"]
    assert latent["samples"].shape == pair["tgt_lat"].shape
    size = kit.SIZE * 8
    assert picture.shape == (1, size, 2 * size, 3) and 0 <= float(picture.min()) and float(picture.max()) <= 1
    entry = out["ui"]["e4e_correspondence"][0]
    corr = runs[0][1].correspondence
    src = np.frombuffer(base64.b64decode(entry["src"]), dtype="<i4")
    assert entry["grid"] == list(corr.grid) and entry["n_refs"] == 1
    assert np.array_equal(src, corr.src[0].numpy())
    assert (src >= 0).all()  # whole-image masks: every token matched


def test_a_later_unet_wrapper_from_another_pack(sd15, pair, monkeypatch):
    """The patch's keyed wrappers (comfy.patcher_extension) keep acting when another node later sets the single
    model_function_wrapper slot."""
    ev = kit.record_events(monkeypatch)
    patched = kit.patch(sd15, pair["target"], pair["reference"]).clone()
    seen = []

    def other(apply_model, args):
        seen.append(len(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched.set_model_unet_function_wrapper(other)
    kit.sample(patched, pair["c"])
    assert seen
    assert ev
