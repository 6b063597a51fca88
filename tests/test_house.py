"""The house: what the patch decides lives in one immutable plan, what a sampling run produces in its own run,
what a model call needs travels with the call; and the defects a review found, each pinned by a test."""

from __future__ import annotations

import logging
import math

import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module

STEPS, SKIP = 4, 1


@pytest.fixture(scope="module")
def invs(sd15):
    c = kit.conds()
    return dict(c=c, target=kit.invert(sd15, kit.latent(1), c, steps=STEPS, skip=SKIP),
                reference=kit.invert(sd15, kit.latent(2), c, steps=STEPS, skip=SKIP, seed=1))


def _pair(model, c):
    return (kit.invert(model, kit.latent(1), c, steps=STEPS, skip=SKIP),
            kit.invert(model, kit.latent(2), c, steps=STEPS, skip=SKIP, seed=1))


# ---------------------------------------------------------------------------------------------- model variants


def _v_prediction(model):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    return ModelSamplingDiscrete().patch(model, "v_prediction", False)[0]


def _freeu_v2(model):
    from comfy_extras.nodes_freelunch import FreeU_V2

    return FreeU_V2().patch(model, 1.3, 1.4, 0.9, 0.2)[0]


def _lora(model):
    m = model.clone()
    key = "diffusion_model.out.2.weight"
    weight = m.model.state_dict()[key]
    assert m.add_patches({key: (0.01 * torch.ones_like(weight),)}, 1.0) == [key]
    return m


@pytest.mark.parametrize("variant, what", [(_v_prediction, "model_sampling"), (_freeu_v2, "output_block_patch"),
                                           (_lora, "weight patches")], ids=["v_prediction", "freeu_v2", "lora"])
def test_an_inversion_of_another_model_variant_is_refused_by_name(sd15, variant, what):
    """ModelSamplingDiscrete, ComfyUI's FreeU_V2 and a LoRA change the denoiser: an inversion made through them is
    not one of the plain MODEL (and the reverse); the message names the input and what differs."""
    c = kit.conds()
    other = variant(sd15)
    target, reference = _pair(other, c)
    with pytest.raises(ValueError, match=f"target: inverted with another model variant .*{what}"):
        kit.patch(sd15, target, reference)
    plain_target, plain_reference = _pair(sd15, c)
    with pytest.raises(ValueError, match=f"target: inverted with another model variant .*{what}"):
        kit.patch(other, plain_target, plain_reference)
    kit.patch(other, target, reference)  # the same variant on both sides: fine


def test_clones_and_the_packs_own_patches_keep_the_variant(sd15, invs):
    """ComfyUI clones models all the time; the patch's own wrappers and attention patch are not a variant."""
    fp = pack_module("engine.models.variant").fingerprint
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    assert fp(sd15.clone()) == fp(sd15) == fp(patched) == fp(patched.clone())


# ---------------------------------------------------------------------------------------------- lifetimes


def test_sampling_writes_nothing_into_the_plan_and_each_run_has_its_own(sd15, invs):
    """The plan (shared by every clone and kept in ComfyUI's cache) is never written to; two samplers on one
    patched MODEL get a run each, and neither run's correspondence is touched by the other's sampling."""
    import dataclasses

    patched = kit.patch(sd15, invs["target"], invs["reference"])
    plan = kit.plan(patched)
    before = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)}
    before_dict = dict(vars(plan))
    values = [(t, t.clone()) for t in _plan_tensors(plan)]
    a_out, a_run = kit.sample_run(patched, invs["c"])
    a_src = a_run.correspondence.src.clone()
    b_out, b_run = kit.sample_run(patched.clone(), invs["c"], cfg=1.0)  # another sampler, another cfg
    assert a_run is not b_run and a_run.correspondence is not b_run.correspondence
    assert not torch.equal(a_out, b_out)
    assert torch.equal(a_run.correspondence.src, a_src)
    assert vars(plan) == before_dict and all(getattr(plan, k) is v for k, v in before.items())
    assert all(torch.equal(t, copy) for t, copy in values)  # the tensors themselves, not only their identity
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.masks = None


def test_the_call_layout_travels_with_the_call(sd15, invs, monkeypatch):
    """What one model call needs (the row layout) is in that call's transformer_options, nowhere else."""
    unet = pack_module("engine.patch.unet")
    rows = pack_module("engine.patch.call")
    seen = []
    real = unet.Attn1Patch.__call__

    def spy(self, n, context, value, extra):
        call, run = rows.call_of(extra)
        if call is not None:
            seen.append((call.step, n.shape[0], run is not None))
        return real(self, n, context, value, extra)

    monkeypatch.setattr(unet.Attn1Patch, "__call__", spy)
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    kit.sample(patched, invs["c"])
    assert seen and all(has_run for *_, has_run in seen)
    assert {rows_ for _, rows_, _ in seen} == {3}  # uncond, cond + one reference / structure row
    assert not [k for k in vars(kit.plan(patched)) if "call" in k]


def _plan_tensors(plan) -> list:
    t = plan.tensors
    return [t.ref_latents, t.tgt_latents, *(m for pair in t.masks.values() for m in pair)]


def test_the_plan_stays_where_it_was_made_and_each_run_copies_what_it_needs(sd15, invs):
    """ComfyUI moves a model's patches (model_patches_to: a device, a dtype, or None for a model built without an
    inference dtype): the plan, shared by every clone, never changes; a run makes one device copy of what it
    needs, in the model's dtype, and keeps it for the run."""
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    plan = kit.plan(patched)
    before = [(t, t.clone()) for t in _plan_tensors(plan)]
    for where in (torch.device("meta"), torch.float16, None, torch.device("cpu")):
        patched.model_patches_to(where)
    assert all(t.device.type == "cpu" and torch.equal(t, copy) for t, copy in before)
    assert [id(t) for t in _plan_tensors(plan)] == [id(t) for t, _ in before]
    run = pack_module("engine.patch.run").TransferRun(plan)
    ref, tgt = run.latents(torch.device("meta"), torch.float16)
    assert ref.device.type == "meta" and ref.dtype == torch.float16 and tgt.shape == plan.tensors.tgt_latents.shape
    assert run.latents(torch.device("meta"), torch.float16)[0] is ref  # one copy per run
    grid = next(iter(plan.tensors.masks))
    masks = run.token_masks(grid, torch.device("meta"))
    assert masks[0].device.type == "meta" and run.token_masks(grid, torch.device("meta"))[0] is masks[0]
    assert all(t.device.type == "cpu" and torch.equal(t, copy) for t, copy in before)


# ---------------------------------------------------------------------------------------------- defects


def test_a_mask_that_vanishes_on_a_matched_map_is_refused_before_sampling(sd15, invs, monkeypatch):
    import comfy.model_base

    calls = []
    real = comfy.model_base.BaseModel.apply_model
    monkeypatch.setattr(comfy.model_base.BaseModel, "apply_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    size = kit.SIZE * 8
    tiny = torch.zeros(size, size)
    tiny[0, 0] = 1  # one pixel in a corner: no token centre of a coarse map sees it
    with pytest.raises(ValueError, match=r"target_mask: object\(s\) \[1\] cover no token of the \d+x\d+ feature map "
                                         r"of output\.\d"):
        kit.patch(sd15, invs["target"], invs["reference"], masks=kit.masks(tiny, torch.ones(size, size)))
    assert not calls


def test_authors_freeu_filters_on_the_cpu_where_the_device_fft_fails(caplog, monkeypatch):
    freeu = pack_module("engine.backends.freeu")
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    expected = freeu.fourier_filter(x, 1, 0.5)
    real = torch.fft.fftn
    failing = {"left": 1}

    def flaky(t, *a, **k):
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("FFT is not implemented for this device")
        return real(t, *a, **k)

    monkeypatch.setattr(torch.fft, "fftn", flaky)
    one_model, other_model = freeu.FourierFilter(1), freeu.FourierFilter(1)
    with caplog.at_level(logging.WARNING):
        got = one_model(x, 0.5)
    assert torch.equal(got, expected) and "filtering on the CPU" in caplog.text
    # the failure is that model's own: another model's filter tries the device again (no process-wide state)
    failing["left"] = 1
    with caplog.at_level(logging.WARNING):
        assert torch.equal(other_model(x, 0.5), expected)
    assert caplog.text.count("filtering on the CPU") == 2 and one_model.fft_failed == {"cpu"}


def test_preview_names_never_repeat_after_deletions(tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "get_temp_directory", lambda: str(tmp_path))
    save = pack_module("engine.backends.previews").save_preview
    first = save(torch.rand(4, 4, 3), "e4e_x")["filename"]
    (tmp_path / first).unlink()
    second = save(torch.rand(4, 4, 3), "e4e_x")["filename"]
    assert first != second and (tmp_path / second).is_file()


def test_an_edited_mask_file_is_read_again(tmp_path, monkeypatch):
    import folder_paths
    import numpy as np
    from PIL import Image

    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path))
    node = pack_module("nodes.load_masks").LoadMasks
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    first = node.IS_CHANGED(target_mask_file="m.png", reference_mask_file="")
    assert node.IS_CHANGED(target_mask_file="m.png", reference_mask_file="") == first
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "m.png")  # the same name, edited
    assert node.IS_CHANGED(target_mask_file="m.png", reference_mask_file="") != first


def test_a_nul_byte_in_a_mask_file_name_is_named(tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path))
    with pytest.raises(ValueError, match="target_mask_file: the file name .* holds a NUL character"):
        pack_module("nodes.load_masks").LoadMasks().load("", False, target_mask_file="m\0.png",
                                                          reference_mask=torch.ones(8, 8))


NAN = float("nan")


@pytest.mark.parametrize("node, call, name", [
    ("DDIMInvertReference", lambda n, m, c, lat: n.run(m, c[0], {"samples": lat}, STEPS, SKIP, NAN, "ddim",
                                                         "normal", 0, negative=c[1]), "cfg"),
    ("AppearanceTransferSampler", lambda n, m, c, lat: n.sample(m, c[0], c[1], NAN, True, 0.7), "cfg"),
    ("AppearanceTransferSampler", lambda n, m, c, lat: n.sample(m, c[0], c[1], 2.5, True, math.inf),
     "adain_start_percent"),
    ("AuthorsFreeU", lambda n, m, c, lat: n.patch(m, NAN, 1.4, 0.9, 0.2), "b1"),
    ("AuthorsFreeU", lambda n, m, c, lat: n.patch(m, 1.2, 1.4, 0.9, -math.inf), "s2"),
])
def test_non_finite_numbers_are_refused_by_name(sd15, node, call, name):
    """ComfyUI's min/max checks let a JSON NaN through: every float input of the pack refuses it by name."""
    nodes = pack_module("nodes")
    cls = next(c for c in nodes.NODE_CLASS_MAPPINGS.values() if c.__name__ == node)
    with pytest.raises(ValueError, match=f"{name}: (nan|-?inf) is not a number"):
        call(cls(), sd15, kit.conds(), kit.latent(1))


def test_non_finite_patch_settings_are_refused_by_name(sd15, invs):
    for name in ("start_percent", "end_percent", "structure_end_percent", "strength"):
        with pytest.raises(ValueError, match=f"{name}: nan is not a number"):
            kit.patch(sd15, invs["target"], invs["reference"], **{name: NAN})


def test_a_four_channel_latent_into_a_patched_flux_is_refused_by_name():
    """KSamplerAdvanced with a patched Flux MODEL and an SD latent: refused by name, not a raw torch error."""
    import comfy.sample

    flux = tiny_models.build_flux()
    c = tiny_models.flux_conds()
    pos, neg = c

    def invert(seed):
        lat = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(seed))
        return pack_module("engine.backends.invert").invert(flux, pos, neg, lat, STEPS, 1.0, "ddim", SKIP, scheduler="simple")

    patched = kit.patch(flux, invert(1), invert(2))
    four = torch.zeros(1, 4, 16, 16)
    with pytest.raises(ValueError, match="latent: 4 channels, but the patched model and its inversions work on 16"):
        comfy.sample.sample(patched, four, STEPS, 1.0, "euler", "simple", pos, neg, four, disable_noise=True,
                            start_step=SKIP, last_step=10000, force_full_denoise=True, seed=0, disable_pbar=True)


def test_a_wan_2_2_5b_clip_is_handled_at_its_vae_stride():
    """The Wan 2.2 5B VAE compresses 16x (Wan 2.1 and the SD VAEs 8x): the stride comes from the model's latent
    format, so the correspondence picture is the image's size and messages give its true pixel sizes."""
    wan22 = tiny_models.build_wan(channels=48)
    c = tiny_models.wan_conds()
    g = torch.Generator().manual_seed(5)

    def invert(lat):
        pos, neg = c
        return pack_module("engine.backends.invert").invert(wan22, pos, neg, lat, 6, 1.0, "ddim", 2, scheduler="simple")

    target = invert(torch.randn(1, 48, 2, 8, 8, generator=g))
    reference = invert(torch.randn(1, 48, 1, 8, 8, generator=g))
    patched = kit.patch(wan22, target, reference)
    plan = kit.plan(patched)
    assert plan.vae_stride == 16 and plan.image_size() == (128, 128)
    _, run = kit.sample_run(patched, c, cfg=1.0)
    pictures = pack_module("engine.backends.pictures").pictures(run)
    assert pictures.shape[1:3] == (128, 256)  # the 128 px frame and the reference's colour code beside it
    small = invert(torch.randn(1, 48, 1, 4, 4, generator=g))
    with pytest.raises(ValueError, match=r"reference: latent 64x64 differs from the target's 128x128"):
        kit.patch(wan22, target, small)


def test_the_schedule_refusal_gives_advice_that_works(sd15):
    """A 'ddim' inversion at 6 steps (ddim_uniform gives 7) sampled through KSamplerAdvanced with 30 karras steps is
    refused with the inputs to set; setting exactly those works."""
    import re

    import comfy.sample

    c = kit.conds()
    pos, neg = c
    target = kit.invert(sd15, kit.latent(40), c, method="ddim", cfg=1.0, steps=6, skip=3)
    reference = kit.invert(sd15, kit.latent(41), c, method="ddim", cfg=1.0, steps=6, skip=3)
    assert target.steps == 7  # what the scheduler gave for steps=6
    patched = kit.patch(sd15, target, reference)
    start = sd15.model.process_latent_out(target.start_latent())

    def ksampler_advanced(steps, scheduler, start_step):
        return comfy.sample.sample(patched, torch.zeros_like(start), steps, 1.0, "ddim", scheduler, pos, neg, start,
                                   disable_noise=True, start_step=start_step, last_step=10000,
                                   force_full_denoise=True, seed=0, disable_pbar=True)

    with pytest.raises(ValueError, match="far from every step of the inversion") as refused:
        ksampler_advanced(30, "karras", 3)
    advice = re.search(r"Sample with steps=(\d+), scheduler=(\w+), start_at_step=(\d+)", str(refused.value))
    steps, scheduler, start_step = int(advice.group(1)), advice.group(2), int(advice.group(3))
    assert (steps, scheduler, start_step) == (6, "ddim_uniform", 3)
    assert torch.isfinite(ksampler_advanced(steps, scheduler, start_step)).all()


def test_a_sampler_that_skips_the_outer_wrapper_gets_a_run_per_model_call(sd15, invs, caplog):
    """A sampler that calls the model without ComfyUI's outer-sample wrapper (no stock sampler does): each model call
    gets a run of its own; the transfer still acts at that call, and nothing carries over to the next call."""
    import copy

    patched = kit.patch(sd15, invs["target"], invs["reference"])
    plan = kit.plan(patched)
    step = next(s for s, p in plan.phases.items() if p == "match")
    x = plan.tensors.tgt_latents[step].repeat(2, 1, 1, 1)
    sigma = plan.target.sigmas[step].reshape(1).repeat(2)
    t = patched.model.model_sampling.timestep(sigma)
    pos, neg = invs["c"]
    context = torch.cat([neg[0][0], pos[0][0]])

    def call(model):
        opts = copy.deepcopy(model.model_options.get("transformer_options", {}))
        opts["cond_or_uncond"] = [1, 0]
        opts["wrappers"] = {kind: dict(by_key) for kind, by_key in model.wrappers.items()
                            if kind == "apply_model"}  # as samplers merge them; no outer-sample wrapper runs
        xin = model.model.model_sampling.calculate_input(sigma, x)
        return model.model.apply_model(xin, sigma, c_crossattn=context, transformer_options=opts)

    ours, plain = call(patched), call(sd15)
    assert not torch.equal(ours[1], plain[1])  # the positive row was rewritten at this call
    assert torch.equal(ours, call(patched))  # and again at the next one, from scratch: no state carried
    assert t is not None and not caplog.records


def test_an_inversion_keeps_nothing_it_did_not_have_when_made(invs):
    """Inversions are kept in ComfyUI's cache and shared by every node that reads them: looking a sigma up writes
    nothing into them."""
    inv = invs["target"]
    before = dict(vars(inv))
    inv.nearest_step(float(inv.sigmas[3]))
    assert dict(vars(inv)).keys() == before.keys() and all(vars(inv)[k] is v for k, v in before.items())
