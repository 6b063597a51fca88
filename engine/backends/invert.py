"""Inverting an image latent inside ComfyUI's sampling stack (DDIM Invert Reference's engine)."""

from __future__ import annotations

import comfy.model_management
import torch

from ...inversion import METHODS, Inversion, frame_shared_noise, invert_ddim, invert_edit_friendly
from ..models import defaults as authors
from ..models.variant import fingerprint
from ..patch.plan import plan_of
from .checks import image_latent
from .sampling import Progress, run_loop, schedule


def invert(
    model,
    positive,
    negative,
    latent: torch.Tensor,
    steps: int,
    cfg: float,
    method: str,
    skip_steps: int,
    scheduler: str = authors.SCHEDULER,
    refine_steps: int = 0,
    seed: int = authors.INVERSION_SEED,
    noise=frame_shared_noise,
) -> Inversion:
    """Invert ``latent`` (VAE space, ``[B, C, H, W]``) along ``steps`` of ``scheduler``; see ``Inversion``.

    Edit-friendly inversion draws each image's noise from ``seed`` and the image itself: the reference and the target
    never share noise. A video's frames share one draw (:func:`frame_shared_noise`; for an image it is
    :func:`independent_noise` itself): noise drawn per frame made a still clip flicker (``bench/bench_video.py
    --only still``). ``noise(latent, steps, seed)`` draws it (an evaluation may give another rule, e.g. noise shared
    by every image, the old defect).
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {METHODS}")
    if not 0 <= skip_steps < steps:
        raise ValueError(f"skip_steps: {skip_steps} must be lower than steps ({steps}); sampling starts at skip_steps")
    dims = model.model.latent_format.latent_dimensions  # 3: Wan and Qwen-Image latents carry a frame axis
    if dims == 3 and isinstance(latent, torch.Tensor) and latent.ndim == 4:
        latent = latent.unsqueeze(2)  # an image for a video-latent model, as ComfyUI's samplers take it
    image_latent(latent, "latent", dims)
    if plan_of(model) is not None:
        raise ValueError("model: this MODEL comes from Semantic Match Patch; invert with the MODEL that goes into "
                         "the patch (the patch would act during the inversion)")
    fp = fingerprint(model)  # refuses unsupported families before any model call
    channels = model.model.latent_format.latent_channels
    if latent.shape[1] != channels:
        raise ValueError(f"latent: {latent.shape[1]} channels, but this {fp.family} model works on {channels}-channel "
                         "latents; encode the image with this model's VAE (VAE Encode with the VAE that belongs to "
                         "the checkpoint)")
    sigmas = schedule(model, scheduler, steps)
    n = len(sigmas) - 1
    if skip_steps >= n:  # some schedulers give a step more or less than asked (ddim_uniform)
        raise ValueError(f"skip_steps: {skip_steps} must be below the {n} steps that {scheduler} gives for steps={steps}")
    drawn = noise(latent, n, seed) if method != "ddim" else None
    flow = fp.prediction == "flow"
    progress = Progress(n * (1 + refine_steps) if method == "ddim" else n, model)
    result = {}

    def loop(denoise, x, sig, options):
        sig = sig.to(x.device, torch.float32)
        if method == "ddim":
            result["latents"] = invert_ddim(denoise, x, sig, refine_steps=refine_steps, progress=progress)
        else:
            result["latents"], result["residuals"] = invert_edit_friendly(denoise, x, sig, eta=authors.ETA, noise=drawn,
                                                                          progress=progress, flow=flow)
        return x

    run_loop(model, loop, sigmas, positive, negative, cfg, latent)
    store = comfy.model_management.intermediate_device()
    residuals = result.get("residuals")
    return Inversion(
        method=method,
        sigmas=sigmas,
        latents=result["latents"].float().to(store),
        residuals=None if residuals is None else residuals.to(store),
        start_step=skip_steps,
        eta=authors.ETA if method != "ddim" else 0.0,
        cfg=float(cfg),
        fingerprint=fp,
        scheduler=scheduler,
        flow=flow,
        asked_steps=steps,
    )


def start_for_stock_samplers(model, inv: Inversion) -> torch.Tensor:
    """The start latent (model space) a stock sampler must be given to begin at ``inv.start_latent()``: ComfyUI
    hands a sampler ``noise_scaling(sigma, 0, latent)``, which is the latent itself for eps/v models and
    ``(1 - sigma) * latent`` for rectified flow, so the flow latent is divided back first."""
    ms = model.get_model_object("model_sampling")
    sigma = inv.sigmas[inv.start_step].reshape(1)
    return ms.inverse_noise_scaling(sigma, inv.start_latent().clone())
