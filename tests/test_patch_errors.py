"""Bad input is refused before any sampling, with the input named; the user's objects stay as they were."""

from __future__ import annotations

import pytest
import torch
import transfer_kit as kit
from harness import pack_module

STEPS = 4


@pytest.fixture(scope="module")
def invs(sd15):
    c = kit.conds()
    return dict(
        c=c,
        target=kit.invert(sd15, kit.latent(1), c, steps=STEPS, skip=1),
        reference=kit.invert(sd15, kit.latent(2), c, steps=STEPS, skip=1, seed=1),
    )


def test_other_family_is_refused_by_name():
    import types

    import comfy.supported_models

    families = pack_module("engine.models.families")
    aura_config = comfy.supported_models.AuraFlow({"cond_seq_dim": 2048})
    fake = types.SimpleNamespace(model=types.SimpleNamespace(model_config=aura_config, diffusion_model=None))
    with pytest.raises(ValueError, match="model: this is a AuraFlow model.*SD1.x, SD2.x.*SDXL, Flux.1.*SD3"):
        families.family_of(fake)


def test_family_and_prediction(sd15, sd15_v, sdxl):
    families, variant = pack_module("engine.models.families"), pack_module("engine.models.variant")
    layers = pack_module("engine.models.layers")
    assert families.family_of(sd15).key == "sd1" and variant.prediction_type(sd15) == "eps"
    assert families.family_of(sd15_v).key == "sd2" and variant.prediction_type(sd15_v) == "v"
    assert families.family_of(sdxl).key == "sdxl"
    sd1, sdxl_family = families.FAMILIES["sd1"], families.FAMILIES["sdxl"]
    assert layers.resolve_layers("auto", "", sdxl_family) == [("output", i) for i in range(6)]
    assert layers.resolve_layers("custom", "output 3, output.6-7", sd1) == [("output", 3), ("output", 6), ("output", 7)]
    for bad in ("", "decoder.3", "output.x", "output.5-2"):
        with pytest.raises(ValueError, match="custom_layers"):
            layers.parse_layers(bad)


def test_inversion_from_another_model(sd15, sd15_v, invs):
    with pytest.raises(ValueError, match="target: inverted with another model"):
        kit.patch(sd15_v, invs["target"], invs["reference"])


def test_reference_of_another_size(sd15, invs):
    small = kit.invert(sd15, kit.latent(3, size=8), invs["c"], steps=STEPS, skip=1)
    with pytest.raises(ValueError, match="reference: latent 64x64 differs from the target's 128x128.*resize"):
        kit.patch(sd15, invs["target"], small)


def test_reference_with_other_steps(sd15, invs):
    other = kit.invert(sd15, kit.latent(3), invs["c"], steps=STEPS + 3, skip=1)
    with pytest.raises(ValueError, match="reference_2: inverted with .* steps.*same steps and scheduler"):
        kit.patch(sd15, invs["target"], invs["reference"], extra_refs=[other])


def test_masks_that_do_not_fit(sd15, invs):
    wide = torch.ones(64, 200)
    m = kit.masks(wide, torch.ones(128, 128))
    with pytest.raises(ValueError, match="target_mask: mask of 200x64 does not fit the target image"):
        kit.patch(sd15, invs["target"], invs["reference"], masks=m)


def test_object_naming_a_missing_reference(sd15, invs):
    left, right = kit.half_masks()
    m = kit.masks(torch.stack([left, right]), torch.stack([left, right]), "1,2")
    with pytest.raises(ValueError, match="reference_of_object: reference \\[2\\] named but only 1"):
        kit.patch(sd15, invs["target"], invs["reference"], masks=m)


def test_settings_out_of_range(sd15, invs):
    with pytest.raises(ValueError, match="start_percent"):
        kit.patch(sd15, invs["target"], invs["reference"], start_percent=0.9, end_percent=0.2)
    with pytest.raises(ValueError, match="layers"):
        kit.patch(sd15, invs["target"], invs["reference"], layers="bogus")


def test_sampler_needs_a_patched_model(sd15, invs):
    pos, neg = invs["c"]
    with pytest.raises(ValueError, match="model: this MODEL is not patched"):
        pack_module("engine.backends.sample").transfer(sd15, pos, neg, 2.5)


def test_far_sampler_schedule_is_refused_with_the_steps_to_set(sd15, invs):
    import comfy.sample

    patched = kit.patch(sd15, invs["target"], invs["reference"])
    pos, neg = invs["c"]
    lat = torch.zeros(1, 4, kit.SIZE, kit.SIZE)
    with pytest.raises(ValueError, match=f"sampler: .*steps={invs['target'].steps}, scheduler=ddim_uniform"):
        comfy.sample.sample(patched, lat, 40, 2.0, "euler", "karras", pos, neg, lat, seed=0, disable_pbar=True)


def test_near_schedule_warns_once(sd15, invs, caplog):
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    state = pack_module("engine.patch.run").TransferRun(kit.plan(patched))  # the warning is said once per run
    sigmas = invs["target"].sigmas
    with caplog.at_level("WARNING"):
        assert state.step_of_sigma(float(sigmas[1]) * 1.001) == 1  # the same step: silent
        assert state.step_of_sigma(float(sigmas[2]) * 1.08) == 2  # near: nearest step, one warning
        assert state.step_of_sigma(float(sigmas[1]) * 0.93) == 1
    assert sum("nearest stored step" in r.message for r in caplog.records) == 1


def test_patching_leaves_the_input_model_alone(sd15, invs):
    options = repr(sd15.model_options)
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    assert patched is not sd15 and patched.model is sd15.model
    assert repr(sd15.model_options) == options
    clone = patched.clone()  # ComfyUI clones models all the time: the plan is shared, not copied
    assert kit.plan(clone) is kit.plan(patched)


def test_patching_twice_is_refused(sd15, invs):
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    with pytest.raises(ValueError, match="model: this MODEL already comes from a Semantic Match Patch"):
        kit.patch(patched, invs["target"], invs["reference"])


def test_layers_without_attention_are_refused(sd15, invs):
    with pytest.raises(ValueError, match="layers: output.0, output.1 has no self-attention in this sd1 model"):
        kit.patch(sd15, invs["target"], invs["reference"], layers="custom", custom_layers="output.0-1, output.6")
    with pytest.raises(ValueError, match="layers: .* has no self-attention"):
        kit.patch(sd15, invs["target"], invs["reference"], layers="output 0-2 (SDXL 32x32)")


def test_inpainting_models_are_refused():
    import tiny_models

    families = pack_module("engine.models.families")
    with pytest.raises(ValueError, match="model: this SD15 model takes 9 input channels"):
        families.family_of(tiny_models.build_sd15(in_channels=9))


def test_other_attention_patches_see_whole_chunks(sd15, invs):
    """IPAdapter-style patches split the batch by len(cond_or_uncond): the extra rows come labelled."""
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    seen = []

    def spy(n, context, value, extra):
        seen.append((n.shape[0], list(extra["cond_or_uncond"])))
        return n, context, value

    patched.set_model_attn1_patch(spy)
    kit.sample(patched, invs["c"])
    assert seen and all(rows % len(labels) == 0 for rows, labels in seen)
    assert any(labels == [1, 0, 0] for _, labels in seen)  # uncond, cond, + the reference row as positive
    assert any(labels == [1, 0, 1] for _, labels in seen)  # + the structure row as negative


def test_inverting_through_a_patched_model_is_refused(sd15, invs):
    patched = kit.patch(sd15, invs["target"], invs["reference"])
    pos, neg = invs["c"]
    with pytest.raises(ValueError, match="model: this MODEL comes from Semantic Match Patch; invert with the MODEL"):
        pack_module("engine.backends.invert").invert(patched, pos, neg, kit.latent(1), kit.STEPS, 3.5,
                                                          "ddpm_edit_friendly", kit.SKIP)


def test_a_latent_of_another_size_is_refused_by_name(sd15, invs):
    import comfy.sample

    patched = kit.patch(sd15, invs["target"], invs["reference"])
    pos, neg = invs["c"]
    lat = torch.zeros(1, 4, kit.SIZE + 8, kit.SIZE)
    with pytest.raises(ValueError, match="latent: the sampler's latent is 16x24 but the inversions are 16x16"):
        comfy.sample.sample(patched, lat, invs["target"].steps, 2.0, "ddim", "ddim_uniform", pos, neg, lat,
                            disable_noise=True, start_step=kit.SKIP, seed=0, disable_pbar=True)
