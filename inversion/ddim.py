"""Deterministic DDIM inversion (eta = 0) with optional fixed-point refinement."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .steps import Denoiser, euler_step

ProgressFn = Callable[..., None]  # progress(done, total, x0): x0 = the current denoised prediction


def invert_ddim(
    denoise: Denoiser,
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    refine_steps: int = 0,
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Invert ``x0`` along the *sampling* schedule ``sigmas`` (descending, ``sigmas[-1]`` usually 0).

    Returns ``latents`` of shape ``[len(sigmas), *x0.shape]`` with ``latents[i]`` at ``sigmas[i]`` and
    ``latents[-1] = x0``, such that a deterministic Euler/DDIM sampler started at ``latents[i]`` walks
    (approximately) through ``latents[i+1:]`` back to ``x0``.

    Each inverted step needs eps at the unknown point ``(x_i, sigma_i)``; the classic inversion takes it at
    the known point ``(x_{i+1}, sigma_{i+1})``. ``refine_steps`` > 0 then solves the implicit equation
    ``x_{i+1} = step(x_i)`` by fixed-point iteration (one UNet call per iteration), which lowers the
    round-trip error. UNet calls: ``n * (1 + refine_steps)`` for ``n = len(sigmas) - 1`` steps.
    """
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise ValueError("sigmas: need a 1-D schedule with at least two entries")
    n = len(sigmas) - 1
    latents = x0.new_empty((n + 1, *x0.shape))
    latents[n] = x0
    x_next = x0
    total = n * (1 + refine_steps)
    done = 0
    for i in range(n - 1, -1, -1):
        s, s_next = sigmas[i], sigmas[i + 1]
        # eps at the known point; at sigma 0 evaluate the clean latent at the target noise level instead
        probe_sigma = s_next if float(s_next) > 0 else s
        d = denoise(x_next, probe_sigma)
        eps = (x_next - d) / probe_sigma
        x = x_next + (s - s_next) * eps
        done += 1
        if progress is not None:
            progress(done, total, d)
        for _ in range(refine_steps):
            # fixed point of x = x_next + (s - s_next) * eps(x, s), i.e. euler_step(x, d(x), s, s_next) == x_next
            d = denoise(x, s)
            x = x_next + (s - s_next) * (x - d) / s
            done += 1
            if progress is not None:
                progress(done, total, d)
        latents[i] = x
        x_next = x
    return latents


def sample_ddim(
    denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, progress: ProgressFn | None = None, callback=None
) -> torch.Tensor:
    """Plain deterministic Euler/DDIM sampling over ``sigmas`` (the forward pass the inversion undoes).

    ``callback(i, x)`` runs after each step and returns the (possibly changed) latent.
    """
    n = len(sigmas) - 1
    for i in range(n):
        d = denoise(x, sigmas[i])
        x = euler_step(x, d, sigmas[i], sigmas[i + 1])
        if callback is not None:
            x = callback(i, x)
        if progress is not None:
            progress(i + 1, n, d)
    return x
