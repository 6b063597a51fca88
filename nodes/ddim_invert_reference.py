"""DDIM Invert Reference: invert an image latent (reference or target) inside ComfyUI."""

from __future__ import annotations

import comfy.model_management
import comfy.samplers
import torch

from ..inversion import METHODS, Inversion, independent_noise, invert_ddim, invert_edit_friendly
from . import defaults as authors
from .attention_hooks import STATE_KEY
from .model_family import fingerprint
from .sampler_stack import Progress, latent_out, run_loop, schedule

INVERSION_TYPE = "E4E_INVERSION"


ETA = 1.0  # edit-friendly DDPM inversion and sampling: the DDPM posterior (the authors' eta)


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
) -> Inversion:
    """Invert ``latent`` (VAE space, ``[B, C, H, W]``) along ``steps`` of ``scheduler``; see ``Inversion``.

    Edit-friendly inversion draws each image's noise from ``seed`` and the image itself
    (:func:`independent_noise`): the reference and the target never share noise.
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {METHODS}")
    if not 0 <= skip_steps < steps:
        raise ValueError(f"skip_steps: {skip_steps} must be lower than steps ({steps}); sampling starts at skip_steps")
    check_latent(latent, "latent")
    if STATE_KEY in getattr(model, "model_options", {}):
        raise ValueError("model: this MODEL comes from Semantic Match Patch; invert with the MODEL that goes into "
                         "the patch (the patch would act during the inversion)")
    fp = fingerprint(model)  # refuses unsupported families before any UNet call
    channels = model.model.latent_format.latent_channels
    if latent.shape[1] != channels:
        raise ValueError(f"latent: {latent.shape[1]} channels, but this {fp.family} model works on {channels}-channel "
                         "latents; encode the image with this model's VAE (VAE Encode with the VAE that belongs to "
                         "the checkpoint)")
    sigmas = schedule(model, scheduler, steps)
    n = len(sigmas) - 1
    if skip_steps >= n:  # some schedulers give a step more or less than asked (ddim_uniform)
        raise ValueError(f"skip_steps: {skip_steps} must be below the {n} steps that {scheduler} gives for steps={steps}")
    noise = independent_noise(latent, n, seed) if method != "ddim" else None
    flow = fp.prediction == "flow"
    progress = Progress(n * (1 + refine_steps) if method == "ddim" else n, model)
    result = {}

    def loop(denoise, x, sig):
        sig = sig.to(x.device, torch.float32)
        if method == "ddim":
            result["latents"] = invert_ddim(denoise, x, sig, refine_steps=refine_steps, progress=progress)
        else:
            result["latents"], result["residuals"] = invert_edit_friendly(denoise, x, sig, eta=ETA, noise=noise,
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
        eta=ETA if method != "ddim" else 0.0,
        cfg=float(cfg),
        fingerprint=fp,
        scheduler=scheduler,
        info={"refine_steps": refine_steps, "seed": seed, "positive": _cond_summary(positive),
              "negative": _cond_summary(negative) if cfg != 1.0 else None},
        flow=flow,
    )


def start_for_stock_samplers(model, inv: Inversion) -> torch.Tensor:
    """The start latent (model space) a stock sampler must be given to begin at ``inv.start_latent()``: ComfyUI
    hands a sampler ``noise_scaling(sigma, 0, latent)``, which is the latent itself for eps/v models and
    ``(1 - sigma) * latent`` for rectified flow, so the flow latent is divided back first."""
    ms = model.get_model_object("model_sampling")
    sigma = inv.sigmas[inv.start_step].reshape(1)
    return ms.inverse_noise_scaling(sigma, inv.start_latent().clone())


def check_latent(latent, name: str):
    """An image latent ``[B, C, H, W]`` with finite values, else a clear error (before any UNet call)."""
    if not isinstance(latent, torch.Tensor) or latent.ndim != 4:
        shape = list(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
        raise ValueError(f"{name}: expected an image latent [B, C, H, W], got {shape}")
    if not bool(torch.isfinite(latent).all()):
        raise ValueError(f"{name}: the latent holds NaN or infinite values; check the image and the VAE Encode "
                         "before it (an fp16 VAE can overflow: try the VAE in fp32 or bf16)")


def _cond_summary(cond) -> list:
    """What conditioning an inversion was made with, without keeping its tensors: shape and a checksum each."""
    out = []
    for item in cond or []:
        t = item[0]
        if isinstance(t, torch.Tensor):
            out.append({"shape": list(t.shape), "checksum": round(float(t.float().sum()), 4)})
    return out


class DDIMInvertReference:
    """Node: invert an image latent so the transfer can start from it (use once per image)."""

    DESCRIPTION = (
        "Inverts an image latent (from VAE Encode) along the sampling schedule, for Eye-for-an-eye appearance "
        "transfer. Use it twice: once for the reference (appearance) and once for the target (structure). "
        "'ddpm_edit_friendly' (the authors' method) stores noise maps so that the Appearance Transfer Sampler can "
        "reproduce the image exactly (strength 0, ending 'exact', the inversion's cfg and prompts); 'ddim' is deterministic and also works with "
        "a plain KSamplerAdvanced (add_noise disabled, start_at_step = skip_steps, same steps and scheduler)."
    )
    CATEGORY = "appearance transfer/eye-for-an-eye"
    FUNCTION = "run"
    RETURN_TYPES = (INVERSION_TYPE, "LATENT")
    RETURN_NAMES = ("inversion", "start_latent")
    OUTPUT_TOOLTIPS = (
        "The inverted trajectory (latents per step, noise maps, the model and schedule it was made with).",
        "The latent to start sampling from at skip_steps (for KSamplerAdvanced / SamplerCustomAdvanced).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model the transfer will sample with (SD1.x, SD2.x, SDXL, Flux.1 or SD3)."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt used during inversion; the authors use 'A photo of a {domain}'."}),
                "latent": ("LATENT", {"tooltip": "The image latent to invert (VAE Encode of the reference or the target)."}),
                "steps": ("INT", {"default": authors.STEPS, "min": 2, "max": 1000, "tooltip": "Sampling steps of the whole schedule (authors: 100). The sampler must use the same steps and scheduler."}),
                "skip_steps": ("INT", {"default": authors.SKIP_STEPS, "min": 0, "max": 999, "tooltip": "Steps skipped at the start: sampling begins at this step (authors: 32 of 100, a denoise of about 0.68). Lower keeps less of the target's layout."}),
                "cfg": ("FLOAT", {"default": authors.INVERSION_CFG, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "CFG during inversion (authors: 3.5). At 1.0 no unconditional pass is made."}),
                "method": (list(METHODS), {"default": authors.INVERSION_METHOD, "tooltip": "ddpm_edit_friendly: exact reconstruction with stored noise maps (authors; on Flux/SD3 the same construction on the rectified-flow path). ddim: deterministic (Euler on Flux/SD3), also for KSamplerAdvanced."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": authors.SCHEDULER, "tooltip": "Scheduler of the sampling schedule; ddim_uniform matches the authors' 1000-step DDPM spacing (Flux: simple)."}),
                "seed": ("INT", {"default": authors.INVERSION_SEED, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": False, "tooltip": "Seed of the noise drawn for edit-friendly inversion (unused by ddim), mixed with a hash of the image latent: two different images never share noise, whatever seeds they get; the same image and seed give the same inversion. Fixed, so the inversion is not redone on every queue."}),
            },
            "optional": {
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt for CFG (authors: empty). Required when cfg > 1."}),
                "refine_steps": ("INT", {"default": 0, "min": 0, "max": 10, "tooltip": "ddim only: fixed-point iterations per step that make each inverted step consistent with the forward step (lower round-trip error, one extra UNet call each)."}),
            },
        }

    # No VALIDATE_INPUTS: ComfyUI skips its own min/max/choice checks for every input such a function takes.
    # skip_steps < steps is checked first thing in run(), before any UNet call.

    def run(self, model, positive, latent, steps, skip_steps, cfg, method, scheduler, seed, negative=None, refine_steps=0):
        if negative is None:
            if cfg > 1.0:
                raise ValueError("negative: cfg > 1 needs a negative conditioning; connect one (authors: empty prompt) or set cfg to 1.0")
            negative = positive  # unused at cfg == 1 (ComfyUI skips the unconditional pass)
        inv = invert(model, positive, negative, latent["samples"], steps=steps, cfg=cfg, method=method,
                     skip_steps=skip_steps, scheduler=scheduler, refine_steps=refine_steps, seed=seed)
        start = dict(latent)
        start["samples"] = latent_out(model, start_for_stock_samplers(model, inv))
        start.pop("noise_mask", None)
        return (inv, start)
