"""Run the pack's own sampling loops inside ComfyUI's standard sampling stack.

Both the inversion and the transfer sampler are k-diffusion-style functions handed to
``comfy.samplers.KSAMPLER`` and run through ``comfy.sample.sample_custom``: ComfyUI then does what it does
for any sampler (loads the model, encodes conditioning, CFG, model patches and wrappers, latent
in/out scaling), and our loop only decides which sigmas to visit and what to add.
"""

from __future__ import annotations

from collections.abc import Callable

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch


class Progress:
    """Progress bar, live latent preview (as a stock KSampler shows it) and interruption check.

    Called as ``progress(done, total, x0)`` by the loops, ``x0`` being the current denoised prediction in the
    model's latent space (``None`` where there is none).
    """

    def __init__(self, total: int, model=None):
        self.total = total
        self.preview = latent_preview.prepare_callback(model, total) if model is not None else None
        self.bar = comfy.utils.ProgressBar(total)

    def __call__(self, done: int, total: int, x0: torch.Tensor | None = None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self.preview is not None and x0 is not None:
            self.preview(done - 1, x0, None, total)
        else:
            self.bar.update_absolute(done, total)


def schedule(model, scheduler: str, steps: int) -> torch.Tensor:
    """The sampling sigmas ComfyUI's KSampler would use (descending, ending in 0)."""
    ms = model.get_model_object("model_sampling")
    return comfy.samplers.calculate_sigmas(ms, scheduler, steps).cpu().float()


def run_loop(model, loop: Callable, sigmas: torch.Tensor, positive, negative, cfg: float, latent: torch.Tensor):
    """Run ``loop(denoise, x, sigmas, options) -> x`` as a sampler. ``x`` starts at ``process_latent_in(latent)``.

    ``denoise(x, sigma)`` is ComfyUI's CFG-combined x0 prediction (the patched model, if patched); ``options``
    are the run's ``model_options`` (where a patched model's run lives). Returns the loop's result in VAE latent
    space (``process_latent_out``).
    """

    def sampler_function(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        extra_args = extra_args or {}

        def denoise(xx, sigma):
            s = sigma.to(xx.device, torch.float32).reshape(()) * xx.new_ones([xx.shape[0]])
            return model_k(xx, s, **extra_args)

        # ComfyUI hands a sampler noise_scaling(sigmas[0], noise, latent): the latent itself for eps/v models,
        # (1 - sigma) * latent for flow models. Our loops start from the latent as it is.
        start = getattr(model_k, "latent_image", None)
        with torch.no_grad():
            return loop(denoise, x if start is None else start.to(x), sigmas, extra_args.get("model_options", {}))

    sampler = comfy.samplers.KSAMPLER(sampler_function)
    latent = comfy.sample.fix_empty_latent_channels(model, latent)
    noise = torch.zeros_like(latent, device="cpu")  # our loops add their own noise (or none)
    return comfy.sample.sample_custom(
        model, noise, cfg, sampler, sigmas, positive, negative, latent, disable_pbar=True, seed=0
    )


def latent_out(model, latent: torch.Tensor) -> torch.Tensor:
    return model.model.process_latent_out(latent)
