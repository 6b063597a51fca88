"""DDIM Invert Reference: invert an image latent (reference or target) inside ComfyUI."""

from __future__ import annotations

import comfy.samplers

from ..engine.backends.checks import finite
from ..engine.backends.invert import invert, start_for_stock_samplers
from ..engine.backends.sampling import latent_out
from ..engine.models import defaults as authors
from ..engine.models.families import family_names
from ..inversion import METHODS
from .types import CATEGORY, INVERSION


class DDIMInvertReference:
    """Node: invert an image latent so the transfer can start from it (use once per image)."""

    DESCRIPTION = (
        "Inverts an image latent (from VAE Encode) along the sampling schedule, for Eye-for-an-eye appearance "
        "transfer. Use it twice: once for the reference (appearance) and once for the target (structure). "
        "'ddpm_edit_friendly' (the authors' method) stores noise maps so that the Appearance Transfer Sampler can "
        "reproduce the image exactly (strength 0, ending 'exact', the inversion's cfg and prompts); 'ddim' is deterministic and also works with "
        "a plain KSamplerAdvanced (add_noise disabled, start_at_step = skip_steps, same steps and scheduler)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "run"
    RETURN_TYPES = (INVERSION, "LATENT")
    RETURN_NAMES = ("inversion", "start_latent")
    OUTPUT_TOOLTIPS = (
        "The inverted trajectory (latents per step, noise maps, the model and schedule it was made with).",
        "The latent to start sampling from at skip_steps (for KSamplerAdvanced / SamplerCustomAdvanced).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": f"The model the transfer will sample with ({family_names(last='or')})."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt used during inversion; the authors use 'A photo of a {domain}'."}),
                "latent": ("LATENT", {"tooltip": "The image latent to invert (VAE Encode of the reference or the target). Wan: the target video's latent (VAE Encode of its frames); the reference one image or a video of the same length."}),
                "steps": ("INT", {"default": authors.STEPS, "min": 2, "max": 1000, "tooltip": "Sampling steps of the whole schedule (authors: 100). The sampler must use the same steps and scheduler."}),
                "skip_steps": ("INT", {"default": authors.SKIP_STEPS, "min": 0, "max": 999, "tooltip": "Steps skipped at the start: sampling begins at this step (authors: 32 of 100, a denoise of about 0.68). Lower keeps less of the target's layout."}),
                "cfg": ("FLOAT", {"default": authors.INVERSION_CFG, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "CFG during inversion (authors: 3.5). At 1.0 no unconditional pass is made."}),
                "method": (list(METHODS), {"default": authors.INVERSION_METHOD, "tooltip": "ddpm_edit_friendly: exact reconstruction with stored noise maps (authors; on Flux/SD3/Qwen-Image/Wan the same construction on the rectified-flow path). ddim: deterministic (Euler on the rectified-flow families), also for KSamplerAdvanced."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": authors.SCHEDULER, "tooltip": "Scheduler of the sampling schedule; ddim_uniform matches the authors' 1000-step DDPM spacing (Flux, Qwen-Image, Wan: simple)."}),
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
        finite(cfg=cfg)
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
