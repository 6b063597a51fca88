"""The harness gives the real ComfyUI core and models with the block layouts the pack relies on."""

from __future__ import annotations

import torch


def _attn_layout(model, conds, size=32, steps=1, cfg=2.0):
    import comfy.sample

    seen = {}

    def record(n, context, value, extra):
        key = extra["block"]
        seen.setdefault(key, set()).add(extra["block_index"])
        return n, context, value

    m = model.clone()
    m.set_model_attn1_patch(record)
    pos, neg = conds
    lat = torch.zeros(1, 4, size, size)
    comfy.sample.sample(m, torch.randn(1, 4, size, size), steps, cfg, "euler", "normal", pos, neg, lat, seed=0,
                        disable_pbar=True)
    return seen


def test_host_is_real_comfy(host):
    import comfy.model_patcher
    import comfy.patcher_extension

    assert hasattr(comfy.model_patcher.ModelPatcher, "set_model_attn1_patch")
    assert hasattr(comfy.model_patcher.ModelPatcher, "add_wrapper_with_key")
    assert (host.path / "main.py").is_file() and comfy.patcher_extension.WrappersMP.OUTER_SAMPLE


def test_sd15_layout(sd15, conds):
    seen = _attn_layout(sd15, conds)
    expected = {("input", i) for i in (1, 2, 4, 5, 7, 8)} | {("middle", 0)} | {("output", i) for i in range(3, 12)}
    assert set(seen) == expected
    assert all(v == {0} for v in seen.values())


def test_sdxl_layout(sdxl):
    import tiny_models

    seen = _attn_layout(sdxl, tiny_models.sdxl_conds(), size=16)
    assert set(seen) == {("input", 4), ("input", 5), ("input", 7), ("input", 8), ("middle", 0)} | {
        ("output", i) for i in range(6)
    }
    assert seen[("output", 0)] == set(range(10)) and seen[("output", 3)] == {0, 1}
    assert seen[("input", 4)] == {0, 1} and seen[("middle", 0)] == set(range(10))


def test_v_prediction_variant(sd15_v):
    import comfy.model_sampling

    ms = sd15_v.get_model_object("model_sampling")
    assert isinstance(ms, comfy.model_sampling.V_PREDICTION)


def test_ten_steps_sample(sd15, conds):
    import comfy.sample

    pos, neg = conds
    out = comfy.sample.sample(sd15, torch.randn(1, 4, 32, 32), 10, 5.0, "euler", "normal", pos, neg,
                              torch.zeros(1, 4, 32, 32), seed=0, disable_pbar=True)
    assert out.shape == (1, 4, 32, 32) and torch.isfinite(out).all()


def test_vae_round_trip_shapes(vae):
    img = torch.rand(1, 64, 48, 3)
    lat = vae.encode(img)
    assert lat.shape == (1, 4, 8, 6)
    dec = vae.decode(lat)
    assert dec.shape[-3:] == (64, 48, 3)
