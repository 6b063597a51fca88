"""DDIM Invert Reference: invert an image latent (reference or target) inside ComfyUI."""

from __future__ import annotations

import comfy.model_management
import comfy.samplers
import torch

from ..inversion import METHODS, Inversion, invert_ddim, invert_edit_friendly
from .family import fingerprint
from .sampling import Progress, latent_out, run_loop, schedule

INVERSION_TYPE = "E4E_INVERSION"


def invert(
    model,
    positive,
    negative,
    latent: torch.Tensor,
    steps: int,
    cfg: float,
    method: str,
    skip_steps: int,
    scheduler: str = "ddim_uniform",
    refine_steps: int = 0,
    seed: int = 0,
    eta: float = 1.0,
    offload: bool = True,
) -> Inversion:
    """Invert ``latent`` (VAE space, ``[B, C, H, W]``) along ``steps`` of ``scheduler``; see ``Inversion``."""
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {METHODS}")
    if not 0 <= skip_steps < steps:
        raise ValueError(f"skip_steps: {skip_steps} must be between 0 and steps - 1 ({steps - 1})")
    if latent.ndim != 4:
        raise ValueError(f"latent: expected an image latent [B, C, H, W], got shape {list(latent.shape)}")
    fp = fingerprint(model)  # refuses unsupported families before any UNet call
    sigmas = schedule(model, scheduler, steps)
    n = len(sigmas) - 1
    if skip_steps >= n:  # some schedulers give a step more or less than asked (ddim_uniform)
        raise ValueError(f"skip_steps: {skip_steps} must be below the {n} steps that {scheduler} gives for steps={steps}")
    calls = n * (1 + refine_steps) if method == "ddim" else n
    progress = Progress(calls)
    result = {}

    def loop(denoise, x, sig):
        sig = sig.to(x.device, torch.float32)
        if method == "ddim":
            result["latents"] = invert_ddim(denoise, x, sig, refine_steps=refine_steps, progress=progress)
        else:
            gen = torch.Generator().manual_seed(int(seed))
            lat, res = invert_edit_friendly(denoise, x, sig, eta=eta, generator=gen, progress=progress)
            result["latents"], result["residuals"] = lat, res
        return x

    run_loop(model, loop, sigmas, positive, negative, cfg, latent, seed=seed)
    store = comfy.model_management.intermediate_device() if offload else None
    latents = result["latents"].float()
    residuals = result.get("residuals")
    return Inversion(
        method=method,
        sigmas=sigmas,
        latents=latents.to(store) if store is not None else latents,
        residuals=None if residuals is None else (residuals.to(store) if store is not None else residuals),
        start_step=skip_steps,
        eta=eta if method != "ddim" else 0.0,
        cfg=float(cfg),
        fingerprint=fp,
        scheduler=scheduler,
        info={"refine_steps": refine_steps, "seed": seed, "positive": _cond_summary(positive),
              "negative": _cond_summary(negative) if cfg != 1.0 else None},
    )


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
        "'ddpm_edit_friendly' (the authors' method) stores noise maps so the Appearance Transfer Sampler "
        "reproduces the image exactly when nothing is transferred; 'ddim' is deterministic and also works with "
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
                "model": ("MODEL", {"tooltip": "The model the transfer will sample with (SD1.x, SD2.x or SDXL)."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt used during inversion; the authors use 'A photo of a {domain}'."}),
                "latent": ("LATENT", {"tooltip": "The image latent to invert (VAE Encode of the reference or the target)."}),
                "steps": ("INT", {"default": 100, "min": 2, "max": 1000, "tooltip": "Sampling steps of the whole schedule (authors: 100). The sampler must use the same steps and scheduler."}),
                "skip_steps": ("INT", {"default": 32, "min": 0, "max": 999, "tooltip": "Steps skipped at the start: sampling begins at this step (authors: 32 of 100, a denoise of about 0.68). Lower keeps less of the target's layout."}),
                "cfg": ("FLOAT", {"default": 3.5, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "CFG during inversion (authors: 3.5). At 1.0 no unconditional pass is made."}),
                "method": (list(METHODS), {"default": "ddpm_edit_friendly", "tooltip": "ddpm_edit_friendly: exact reconstruction with stored noise maps (authors). ddim: deterministic, also for KSamplerAdvanced."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "ddim_uniform", "tooltip": "Scheduler of the sampling schedule; ddim_uniform matches the authors' 1000-step DDPM spacing."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": False, "tooltip": "Seed of the independent noise drawn for edit-friendly inversion (unused by ddim). Fixed, so the inversion is not redone on every queue."}),
            },
            "optional": {
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt for CFG (authors: empty). Required when cfg > 1."}),
                "refine_steps": ("INT", {"default": 0, "min": 0, "max": 10, "tooltip": "ddim only: fixed-point iterations per step that make each inverted step consistent with the forward step (lower round-trip error, one extra UNet call each)."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, steps, skip_steps, **_):
        if skip_steps >= steps:
            return f"skip_steps ({skip_steps}) must be lower than steps ({steps})"
        return True

    def run(self, model, positive, latent, steps, skip_steps, cfg, method, scheduler, seed, negative=None, refine_steps=0):
        if negative is None:
            if cfg > 1.0:
                raise ValueError("negative: cfg > 1 needs a negative conditioning; connect one (authors: empty prompt) or set cfg to 1.0")
            negative = positive  # unused at cfg == 1 (ComfyUI skips the unconditional pass)
        inv = invert(model, positive, negative, latent["samples"], steps=steps, cfg=cfg, method=method,
                     skip_steps=skip_steps, scheduler=scheduler, refine_steps=refine_steps, seed=seed)
        start = dict(latent)
        start["samples"] = latent_out(model, inv.start_latent().clone())
        start.pop("noise_mask", None)
        return (inv, start)
