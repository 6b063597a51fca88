"""Fidelity to the authors' code where the pack once differed: independent inversion noise, their last step,
bad values refused before any UNet call."""

from __future__ import annotations

import pytest
import torch
import transfer_kit as kit
from harness import pack_module


def _noise(inv, steps=range(0, 6)) -> torch.Tensor:
    """The noise of an edit-friendly trajectory: (x_i - x0) / sigma_i at the first (noise-dominated) steps."""
    x0 = inv.latents[-1]
    return torch.stack([(inv.latents[i] - x0) / inv.sigmas[i] for i in steps])


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def test_two_images_with_identical_settings_get_independent_noise(sd15):
    c = kit.conds()
    # identical node settings, seed included (the shipped workflows invert both images with seed 0)
    target = kit.invert(sd15, kit.latent(10), c, seed=0)
    reference = kit.invert(sd15, kit.latent(11), c, seed=0)
    r = _corr(_noise(target), _noise(reference))
    print(f"noise correlation of two images, same seed: {r:+.4f}")
    assert abs(r) < 0.05


def test_same_image_and_seed_are_bit_reproducible_and_the_seed_matters(sd15):
    c = kit.conds()
    lat = kit.latent(10)
    a, b = kit.invert(sd15, lat, c, seed=5), kit.invert(sd15, lat, c, seed=5)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.residuals, b.residuals)
    other = kit.invert(sd15, lat, c, seed=6)
    assert abs(_corr(_noise(a), _noise(other))) < 0.05


def test_an_images_noise_does_not_depend_on_its_batch(sd15):
    c = kit.conds()
    alone = kit.invert(sd15, kit.latent(10), c)
    batch = kit.invert(sd15, torch.cat([kit.latent(12), kit.latent(10)]), c)
    torch.testing.assert_close(_noise(batch)[:, 1:], _noise(alone), atol=1e-5, rtol=1e-5)
    assert abs(_corr(_noise(batch)[:, :1], _noise(batch)[:, 1:])) < 0.05


def test_noise_is_standard_normal_and_keyed_by_content():
    inversion = pack_module("inversion")
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    n = inversion.independent_noise(x, 50, seed=0)
    assert n.shape == (50, 2, 4, 16, 16)
    assert abs(float(n.mean())) < 0.01 and abs(float(n.std()) - 1) < 0.01
    assert torch.equal(n, inversion.independent_noise(x.clone(), 50, seed=0))
    nudged = x.clone()
    nudged[0, 0, 0, 0] += 1e-6  # the exact values are hashed (no rounding): other noise, as independent as any
    other = inversion.independent_noise(nudged, 50, seed=0)
    assert not torch.equal(other[:, 0], n[:, 0]) and abs(_corr(other[:, :1], n[:, :1])) < 0.05
    edited = x.clone()
    edited[0, 0, 0, 0] += 0.1
    assert not torch.equal(inversion.independent_noise(edited, 50, seed=0)[:, 0], n[:, 0])
    assert torch.equal(inversion.independent_noise(edited, 50, seed=0)[:, 1], n[:, 1])


# ---------------------------------------------------------------------------------------------- last step


def test_authors_ending_is_their_ddpm_step_with_zero_noise():
    """The last step with ending "authors" against a transcription of their DDPM step in alpha_cumprod terms
    (their ``perform_ddpm_step`` with z = 0 and ``alpha_prod_t_prev = final_alpha_cumprod = alphas_cumprod[0]``)."""
    inversion = pack_module("inversion")
    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64)

    def denoise(x, sigma):  # some smooth x0 predictor
        return (x + float(sigma) ** 2 * target) / (1 + float(sigma) ** 2)

    acp = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0)
    t_last = 1  # the authors' last timestep with 100 steps
    s_last = float(((1 - acp[t_last]) / acp[t_last]) ** 0.5)
    s_final = float(((1 - acp[0]) / acp[0]) ** 0.5)  # ComfyUI's model_sampling.sigma_min
    sigmas = torch.tensor([2.0, s_last, 0.0], dtype=torch.float64)
    x = torch.randn(1, 4, 8, 8, generator=g, dtype=torch.float64) * 2
    residuals = torch.randn(2, 1, 4, 8, 8, generator=g, dtype=torch.float64) * 0.1
    got = inversion.sample_edit_friendly(denoise, x, sigmas, residuals, final_sigma=s_final)

    # transcription, in DDPM space: x_t = sqrt(a_t) * x_k
    x_k = x
    mean0 = inversion.sample_edit_friendly(denoise, x_k, sigmas[:2], residuals[:1])  # the first (ordinary) step
    a_t, a_prev = acp[t_last], acp[0]
    xt = a_t**0.5 * mean0
    x0_pred = denoise(mean0, s_last)
    eps = (xt - a_t**0.5 * x0_pred) / (1 - a_t) ** 0.5
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    expected = a_prev**0.5 * x0_pred + (1 - a_prev - variance) ** 0.5 * eps  # + eta * sqrt(var) * 0
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    exact = inversion.sample_edit_friendly(denoise, x_k, sigmas, residuals)
    assert (exact - got).abs().max() > 1e-2  # the exact ending adds the last residual instead


def test_ending_choice_on_the_sampler(sd15):
    c = kit.conds()
    tgt = kit.latent(10)
    target, reference = kit.invert(sd15, tgt, c), kit.invert(sd15, kit.latent(11), c)
    off = kit.patch(sd15, target, reference, strength=0.0)
    exact = kit.sample(off, c, ending="exact")
    authors = kit.sample(off, c)  # the node default
    assert (exact - tgt).abs().max() <= 1e-4
    assert (authors - tgt).abs().max() > 1e-3  # the target's last noise map is not added
    with pytest.raises(ValueError, match="ending: 'sideways' is not one of"):
        kit.sample(off, c, ending="sideways")
    default = pack_module("nodes.appearance_transfer_sampler").AppearanceTransferSampler.INPUT_TYPES()
    assert default["required"]["ending"][1]["default"] == "authors"


# ---------------------------------------------------------------------------------------------- bad values


def test_nan_latent_refused_before_any_unet_call(sd15, monkeypatch):
    import comfy.sample

    def no_sampling(*args, **kwargs):
        raise AssertionError("the UNet ran")

    monkeypatch.setattr(comfy.sample, "sample_custom", no_sampling)
    node = pack_module("nodes.ddim_invert_reference").DDIMInvertReference()
    pos, neg = kit.conds()
    for bad in (float("nan"), float("inf")):
        lat = kit.latent(1)
        lat[0, 1, 2, 3] = bad
        with pytest.raises(ValueError, match="latent: the latent holds NaN or infinite values"):
            node.run(sd15, pos, {"samples": lat}, 12, 2, 3.5, "ddpm_edit_friendly", "ddim_uniform", 0, negative=neg)


def test_nan_mask_refused():
    node = pack_module("nodes.load_masks").LoadMasks()
    bad = torch.ones(16, 16)
    bad[3, 3] = float("nan")
    with pytest.raises(ValueError, match="target_mask: the mask holds NaN"):
        node.load("", False, target_mask=bad, reference_mask=torch.ones(16, 16))
