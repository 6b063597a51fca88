"""DDIM Invert Reference through the real ComfyUI sampler on tiny UNets."""

from __future__ import annotations

import pytest
import tiny_models
import torch
from harness import pack_module, pure

STEPS = 8


def _latent(seed=0, batch=1, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, size, size, generator=g) * 2.0


def _reconstruct(model, inv, pos, neg, cfg):
    """Sample with the stored noise maps from the start step (what the transfer sampler does with no patch)."""
    inv_mod = pure("inversion")  # the torch-only package

    sampling = pack_module("engine.backends.sampling")
    res = inv.residuals[inv.start_step:]

    def loop(denoise, x, sig, options):
        x0 = inv.start_latent().to(x)
        return inv_mod.sample_edit_friendly(denoise, x0, sig.to(x.device), res.to(x))

    return sampling.run_loop(model, loop, inv.sampling_sigmas(), pos, neg, cfg,
                             torch.zeros(inv.batch, *inv.latent_shape))


def _invert(model, latent, **kw):
    node = pack_module("engine.backends.invert")
    args = dict(steps=STEPS, cfg=3.5, method="ddpm_edit_friendly", skip_steps=2, scheduler="ddim_uniform", seed=0)
    args.update(kw)
    pos, neg = kw.pop("conds", None) or tiny_models.sd15_conds()
    args.pop("conds", None)
    return node.invert(model, pos, neg, latent, **args), pos, neg


@pytest.mark.parametrize("cfg", [3.5, 1.0])
def test_edit_friendly_reconstructs_exactly(sd15, cfg):
    lat = _latent()
    inv, pos, neg = _invert(sd15, lat, cfg=cfg)
    assert inv.latents.shape == (STEPS + 1, 1, 4, 16, 16) and inv.residuals.shape == (STEPS, 1, 4, 16, 16)
    out = _reconstruct(sd15, inv, pos, neg, cfg)
    assert (out - lat).abs().max() <= 1e-4


def test_edit_friendly_v_prediction(sd15_v):
    lat = _latent(1)
    inv, pos, neg = _invert(sd15_v, lat)
    assert inv.fingerprint.prediction == "v" and inv.fingerprint.family == "sd2"
    out = _reconstruct(sd15_v, inv, pos, neg, 3.5)
    assert (out - lat).abs().max() <= 1e-4


def test_batch_of_two(sd15):
    lat = _latent(2, batch=2)
    inv, pos, neg = _invert(sd15, lat)
    assert inv.batch == 2
    out = _reconstruct(sd15, inv, pos, neg, 3.5)
    assert (out - lat).abs().max() <= 1e-4
    single, _, _ = _invert(sd15, lat[1:2])
    # the noise draw is per batch, so compare the noise-free parts: the clean latents agree
    assert torch.allclose(single.latents[-1], inv.latents[-1, 1:2])


def test_ddim_round_trip_with_refinement(sd15):
    import comfy.sample

    lat = _latent(3)
    pos, neg = tiny_models.sd15_conds()
    errs = []
    for refine in (0, 2):
        inv, _, _ = _invert(sd15, lat, method="ddim", refine_steps=refine, skip_steps=0, cfg=1.0, conds=(pos, neg))
        start = pack_module("engine.backends.sampling").latent_out(sd15, inv.start_latent())
        out = comfy.sample.sample(sd15, torch.zeros_like(lat), STEPS, 1.0, "euler", "ddim_uniform", pos, neg, start,
                                  disable_noise=True, start_step=0, last_step=STEPS, force_full_denoise=True,
                                  seed=0, disable_pbar=True)
        errs.append(float((out - lat).abs().max()))
    assert errs[1] < errs[0], errs


def test_node_outputs_start_latent(sd15):
    node = pack_module("nodes.ddim_invert_reference").DDIMInvertReference()
    pos, neg = tiny_models.sd15_conds()
    lat = _latent(4)
    inv, start = node.run(sd15, pos, {"samples": lat}, STEPS, 3, 3.5, "ddpm_edit_friendly", "ddim_uniform", 0,
                          negative=neg)
    assert inv.start_step == 3
    expect = sd15.model.process_latent_out(inv.latents[3])
    assert torch.allclose(start["samples"], expect)


def test_node_refuses_bad_inputs(sd15):
    mod = pack_module("nodes.ddim_invert_reference")
    node = mod.DDIMInvertReference()
    invert = pack_module("engine.backends.invert").invert
    pos, _ = tiny_models.sd15_conds()
    # no VALIDATE_INPUTS (it would switch off ComfyUI's own range checks): skip_steps >= steps fails in run()
    assert not hasattr(mod.DDIMInvertReference, "VALIDATE_INPUTS")
    with pytest.raises(ValueError, match="skip_steps: 10 must be lower than steps"):
        node.run(sd15, pos, {"samples": _latent()}, 10, 10, 1.0, "ddim", "normal", 0)
    with pytest.raises(ValueError, match="negative"):
        node.run(sd15, pos, {"samples": _latent()}, STEPS, 2, 3.5, "ddim", "normal", 0)
    with pytest.raises(ValueError, match="method"):
        invert(sd15, pos, pos, _latent(), STEPS, 1.0, "bogus", 2)
    with pytest.raises(ValueError, match="latent"):
        invert(sd15, pos, pos, torch.zeros(4, 8, 8), STEPS, 1.0, "ddim", 2)


def test_original_model_untouched(sd15):
    before = {k: v.clone() for k, v in sd15.model.state_dict().items()}
    opts = repr(sd15.model_options)
    _invert(sd15, _latent(5))
    assert repr(sd15.model_options) == opts
    after = sd15.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_progress_and_interruption(sd15):
    import comfy.model_management
    import comfy.utils

    seen = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, *rest, **kw: seen.append((value, total)))
    try:
        _invert(sd15, _latent(6), steps=5, skip_steps=1)
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
    assert seen[-1] == (5, 5) and len(seen) == 5
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            _invert(sd15, _latent(6), steps=5, skip_steps=1)
    finally:
        comfy.model_management.interrupt_current_processing(False)


def test_inversion_records_what_it_was_made_with(sd15):
    inv, pos, _ = _invert(sd15, _latent(7), steps=3, skip_steps=1)
    assert inv.fingerprint.model_class == "SD15" and inv.scheduler == "ddim_uniform" and inv.cfg == 3.5
    assert inv.latents.device.type == "cpu"  # kept on ComfyUI's intermediate (offload) device


def test_skip_beyond_the_schedule_is_refused_before_sampling(sd15):
    mod = pack_module("engine.backends.invert")
    pos, neg = tiny_models.sd15_conds()
    # ddim_uniform gives 999 steps for steps=1000: skip_steps 999 passes the widget check, not the schedule's
    with pytest.raises(ValueError, match="skip_steps: 999 must be below the 999 steps that ddim_uniform gives"):
        mod.invert(sd15, pos, neg, _latent(), 1000, 1.0, "ddim", 999, "ddim_uniform")


def test_live_previews_as_a_stock_ksampler(sd15, monkeypatch):
    """The inversion (and the transfer sampler) report each step's denoised latent through
    latent_preview.prepare_callback, as KSampler does."""
    import latent_preview

    calls = []

    def prepare_callback(model, steps, x0_output_dict=None):
        def callback(step, x0, x, total_steps):
            calls.append((step, total_steps, tuple(x0.shape)))

        return callback

    monkeypatch.setattr(latent_preview, "prepare_callback", prepare_callback)
    _invert(sd15, _latent(6), steps=5, skip_steps=1)
    assert [c[:2] for c in calls] == [(i, 5) for i in range(5)]
    assert all(shape == (1, 4, 16, 16) for *_, shape in calls)
