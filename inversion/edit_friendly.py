"""Edit-friendly DDPM inversion (Huberman-Spiegelglas et al., 2023), the authors' inversion.

Every ``x_i`` of the trajectory is drawn independently from q(x_i | x0) (``x_i = x0 + sigma_i * n_i``),
then the noise map of each step is whatever the DDPM (ancestral, eta = 1) sampler must add to land
exactly on the next stored latent. Running that sampler with the stored maps reproduces the trajectory
exactly; running it with a *patched* model keeps the maps and changes only the predicted means, which
is what makes the maps "edit friendly".

The maps are stored as residuals ``r_i = x_{i+1} - mu_i(x_i)`` (i.e. ``sigma_up_i * z_i``): this is also
defined on the last step to sigma 0, where ``sigma_up`` is 0 and ``z`` is not. The step arithmetic (mean and
residual) runs in float64 and the residuals are kept in float64, so that the sampler lands on the stored
float32 latents bit for bit and the UNet sees exactly the inputs it saw during inversion: the round trip
is then exact instead of drifting by float32 rounding amplified over the steps.
"""

from __future__ import annotations

import torch

from .ddim import ProgressFn
from .steps import Denoiser, ancestral_sigmas, flow_ancestral_mean, noisy_point, posterior_mean


def wide_dtype(device) -> torch.dtype:
    """float64 for the step arithmetic; float32 where the device has no float64 (Apple MPS: the round trip is
    then exact only to float32 rounding)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _step_mean(denoise: Denoiser, x, sigmas, i: int, eta: float, sigma_next=None, flow: bool = False):
    """Mean of the ancestral step ``i -> i+1`` (or to ``sigma_next``) in the wide dtype, and the denoised
    prediction (``x`` is fed to the model in its own dtype). ``flow``: the rectified-flow ancestral step."""
    wide = wide_dtype(x.device)
    s = sigmas[i].to(wide)
    s_next = sigmas[i + 1].to(wide) if sigma_next is None else torch.as_tensor(sigma_next, dtype=wide)
    d = denoise(x, sigmas[i])
    if flow:
        return flow_ancestral_mean(x.to(wide), d.to(wide), s, s_next, eta), d
    down, _ = ancestral_sigmas(s, s_next, eta)
    return posterior_mean(x.to(wide), d.to(wide), s, down), d


def invert_edit_friendly(
    denoise: Denoiser,
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    progress: ProgressFn | None = None,
    noise: torch.Tensor | None = None,
    flow: bool = False,
):
    """Return ``(latents [n+1, *x0.shape], residuals [n, *x0.shape] float64)`` for ``n = len(sigmas) - 1`` steps.

    ``latents[i]`` is at ``sigmas[i]`` (``latents[-1] = x0``); ``residuals[i]`` takes step i to i+1.
    ``noise`` (``[n, *x0.shape]``, standard normal; see :func:`independent_noise`) gives the noisy points;
    without it, it is drawn from ``generator`` (on the CPU). One UNet call per step.
    ``flow``: rectified flow (Flux, SD3): the noisy points are ``(1 - sigma) * x0 + sigma * noise`` and the
    sampler's step is the rectified-flow ancestral step (see :func:`flow_ancestral_mean`).
    """
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("sigmas: need a 1-D schedule with at least two entries")
    n = len(sigmas) - 1
    if noise is None:
        noise = torch.randn((n, *x0.shape), generator=generator, dtype=torch.float32, device="cpu")
    elif tuple(noise.shape) != (n, *x0.shape):
        raise ValueError(f"noise: expected shape {[n, *x0.shape]}, got {list(noise.shape)}")
    noise = noise.to(device=x0.device, dtype=x0.dtype)
    latents = x0.new_empty((n + 1, *x0.shape))
    latents[n] = x0
    for i in range(n):
        latents[i] = noisy_point(x0, noise[i], sigmas[i], flow) if float(sigmas[i]) > 0 else x0
    residuals = x0.new_empty((n, *x0.shape), dtype=wide_dtype(x0.device))
    for i in range(n):
        mean, d = _step_mean(denoise, latents[i], sigmas, i, eta, flow=flow)
        residuals[i] = latents[i + 1].to(residuals.dtype) - mean
        if progress is not None:
            progress(i + 1, n, d)
    return latents, residuals


def sample_edit_friendly(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    residuals: torch.Tensor,
    eta: float = 1.0,
    progress: ProgressFn | None = None,
    callback=None,
    final_sigma: float | None = None,
    flow: bool = False,
) -> torch.Tensor:
    """DDPM sampling over ``sigmas`` adding the stored ``residuals`` (``len(residuals) == len(sigmas) - 1``).

    The last step (to ``sigmas[-1] == 0``) ends in one of two ways:

    * ``final_sigma=None`` ("exact"): it adds the last stored residual like every other step, so with the model
      used for inversion this returns the inverted latent (up to float rounding) and strength 0 gives back the
      target bit for bit;
    * ``final_sigma`` given ("authors"): as the authors' pipeline, whose last noise map is zero and whose last
      step goes to ``alpha_cumprod[0]`` instead of 1: the deterministic mean of the step to ``final_sigma``
      (ComfyUI's ``model_sampling.sigma_min``), in DDPM scaling (divided by ``sqrt(1 + final_sigma**2)``) as
      their latent is decoded. No trace of the target's last residual remains. For rectified flow
      (``flow=True``) pass ``final_sigma=0``: the last step ends on the denoised prediction.

    ``callback(i, x)`` runs after each step, before the next (used for masked AdaIN).
    """
    n = len(sigmas) - 1
    if len(residuals) != n:
        raise ValueError(f"residuals: {len(residuals)} maps for {n} steps")
    dtype = x.dtype
    for i in range(n):
        if i == n - 1 and final_sigma is not None and float(sigmas[n]) == 0.0:
            mean, d = _step_mean(denoise, x, sigmas, i, eta, sigma_next=final_sigma, flow=flow)
            x = (mean if flow else mean / (1.0 + float(final_sigma) ** 2) ** 0.5).to(dtype)
        else:
            mean, d = _step_mean(denoise, x, sigmas, i, eta, flow=flow)
            x = (mean + residuals[i].to(mean)).to(dtype)
        if callback is not None:
            x = callback(i, x)
        if progress is not None:
            progress(i + 1, n, d)
    return x
