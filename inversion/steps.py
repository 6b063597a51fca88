"""Single steps of the samplers the inversions are exact for, in ComfyUI's k-diffusion form.

Latents live in ComfyUI's sampling space: ``x = x0 + sigma * eps`` for eps- *and* v-prediction models
(ComfyUI's ``model_sampling`` scales inputs accordingly), and ``x = (1 - sigma) * x0 + sigma * eps`` for
rectified-flow models (Flux, SD3: ComfyUI's ``CONST``); a ``denoise(x, sigma) -> x0_hat`` callable hides the
parameterisation. The deterministic (Euler/DDIM) step has the same form in both spaces. ``sigma`` here is a
0-dim tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ancestral_sigmas(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0):
    """``(sigma_down, sigma_up)`` of a DDPM (eta=1) / DDIM-eta step from ``sigma`` to ``sigma_next``.

    With eta = 1 this is exactly the DDPM posterior written in k-diffusion form.
    """
    if float(sigma_next) == 0.0 or eta == 0.0:
        return sigma_next, torch.zeros_like(sigma_next)
    up = eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5
    up = torch.minimum(up, sigma_next)
    down = (sigma_next**2 - up**2) ** 0.5
    return down, up


def posterior_mean(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_down: torch.Tensor):
    """The deterministic part of an ancestral step: move ``x`` from ``sigma`` to ``sigma_down`` along eps."""
    return denoised + (sigma_down / sigma) * (x - denoised)


def noisy_point(x0: torch.Tensor, noise: torch.Tensor, sigma, flow: bool) -> torch.Tensor:
    """A point of the forward process at ``sigma``: ``x0 + sigma * noise``, or ``(1 - sigma) * x0 + sigma * noise``
    for rectified flow."""
    return (1 - sigma) * x0 + sigma * noise if flow else x0 + sigma * noise


def flow_ancestral_mean(x: torch.Tensor, denoised: torch.Tensor, sigma, sigma_next, eta: float = 1.0):
    """The deterministic part of an ancestral rectified-flow step (ComfyUI's ``euler_ancestral_RF``): an Euler step
    to ``sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)``, rescaled to ``sigma_next``'s signal
    level. ``eta = 0`` is the plain Euler step; to ``sigma_next == 0`` it is ``denoised``."""
    if float(sigma_next) == 0.0:
        return denoised
    down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    ratio = down / sigma
    return ((1 - sigma_next) / (1 - down)) * (ratio * x + (1 - ratio) * denoised)


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor):
    """Deterministic step (DDIM, eta = 0, for eps models; ComfyUI's "euler"/"ddim" samplers)."""
    return denoised + (sigma_next / sigma) * (x - denoised)
