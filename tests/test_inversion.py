"""Inversion maths with torch alone, on a Gaussian data prior whose exact denoiser is known."""

from __future__ import annotations

import pytest
import torch
from harness import pure

inversion = pure("inversion")


def gaussian_denoiser(mu: torch.Tensor, scale: float = 1.0):
    """Exact E[x0 | x] for x0 ~ N(mu, scale^2 I) and x = x0 + sigma * eps (a non-trivial, smooth denoiser)."""

    def denoise(x, sigma):
        v = scale**2
        return (v * x + sigma**2 * mu) / (v + sigma**2)

    return denoise


def karras(n=20, smin=0.03, smax=14.6):
    ramp = torch.linspace(0, 1, n)
    s = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    return torch.cat([s, s.new_zeros(1)])


@pytest.fixture()
def setup():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2, 4, 8, 8, generator=g)
    x0 = mu + 0.5 * torch.randn(2, 4, 8, 8, generator=g)
    return gaussian_denoiser(mu), x0, karras()


def test_edit_friendly_reproduces_input(setup):
    denoise, x0, sigmas = setup
    latents, residuals = inversion.invert_edit_friendly(denoise, x0, sigmas, generator=torch.Generator().manual_seed(1))
    assert latents.shape == (len(sigmas), *x0.shape) and residuals.shape == (len(sigmas) - 1, *x0.shape)
    for start in (0, 7):
        out = inversion.sample_edit_friendly(denoise, latents[start], sigmas[start:], residuals[start:])
        assert (out - x0).abs().max() <= 1e-4


def test_edit_friendly_trajectory_is_marginally_noisy(setup):
    denoise, x0, sigmas = setup
    latents, _ = inversion.invert_edit_friendly(denoise, x0, sigmas, generator=torch.Generator().manual_seed(2))
    i = 3
    noise = (latents[i] - x0) / sigmas[i]
    assert abs(float(noise.std()) - 1.0) < 0.15  # x_i ~ q(x_i | x0), drawn independently


def test_edit_friendly_is_seeded(setup):
    denoise, x0, sigmas = setup
    a = inversion.invert_edit_friendly(denoise, x0, sigmas, generator=torch.Generator().manual_seed(5))[0]
    b = inversion.invert_edit_friendly(denoise, x0, sigmas, generator=torch.Generator().manual_seed(5))[0]
    c = inversion.invert_edit_friendly(denoise, x0, sigmas, generator=torch.Generator().manual_seed(6))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_round_trip_and_refinement(setup):
    denoise, x0, sigmas = setup
    errs = []
    for refine in (0, 1, 3, 6):
        latents = inversion.invert_ddim(denoise, x0, sigmas, refine_steps=refine)
        out = inversion.sample_ddim(denoise, latents[0], sigmas)
        errs.append(float((out - x0).abs().max()))
    assert errs[0] > 0.05  # the plain inversion is not exact for this denoiser
    assert all(b < a * 0.5 for a, b in zip(errs, errs[1:])), errs  # each refinement helps
    assert errs[-1] < 1e-4


def test_ddim_inversion_counts_unet_calls(setup):
    denoise, x0, sigmas = setup
    calls = []

    def counted(x, s):
        calls.append(float(s))
        return denoise(x, s)

    inversion.invert_ddim(counted, x0, sigmas, refine_steps=2)
    assert len(calls) == 3 * (len(sigmas) - 1)


def test_progress_reports_every_call(setup):
    denoise, x0, sigmas = setup
    seen = []
    inversion.invert_edit_friendly(denoise, x0, sigmas, progress=lambda i, n, *_: seen.append((i, n)))
    assert seen[-1] == (len(sigmas) - 1, len(sigmas) - 1) and len(seen) == len(sigmas) - 1


def test_ancestral_sigmas_match_ddpm_posterior():
    s, sn = torch.tensor(2.0), torch.tensor(1.0)
    down, up = inversion.ancestral_sigmas(s, sn, 1.0)
    assert torch.isclose(down**2 + up**2, sn**2)
    assert torch.isclose(up**2, sn**2 * (s**2 - sn**2) / s**2)
    down0, up0 = inversion.ancestral_sigmas(s, torch.tensor(0.0), 1.0)
    assert float(down0) == 0 and float(up0) == 0


def test_bad_schedule_is_refused(setup):
    denoise, x0, _ = setup
    with pytest.raises(ValueError, match="sigmas"):
        inversion.invert_ddim(denoise, x0, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="sigmas"):
        inversion.invert_edit_friendly(denoise, x0, torch.ones(2, 2))


def _inv(**over):
    fp = inversion.ModelFingerprint("sd1", "eps", "SD15", 1)
    kw = dict(method="ddim", sigmas=karras(10), latents=torch.zeros(11, 2, 4, 8, 8), residuals=None,
              start_step=3, eta=0.0, cfg=1.0, fingerprint=fp)
    kw.update(over)
    return inversion.Inversion(**kw)


def test_inversion_object():
    inv = _inv()
    assert inv.steps == 10 and inv.batch == 2 and inv.latent_shape == (4, 8, 8)
    assert torch.equal(inv.sampling_sigmas(), inv.sigmas[3:])
    i, rel = inv.nearest_step(float(inv.sigmas[4]) * 1.01)
    assert i == 4 and rel < 0.02
    assert inv.select(1).batch == 1
    with pytest.raises(ValueError, match="method"):
        _inv(method="bogus")
    with pytest.raises(ValueError, match="start_step"):
        _inv(start_step=10)
