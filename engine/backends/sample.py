"""Sampling a transfer (Appearance Transfer Sampler's engine): from the target's inverted latent at its start step,
along its stored noise maps, with masked AdaIN in the late steps; the patched model does the matching."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

from ...inversion import sample_ddim, sample_edit_friendly, wide_dtype
from ...matching import masked_adain
from ..models import defaults as authors
from ..models.variant import fingerprint
from ..patch.plan import TransferPlan, frame_masks, plan_of, run_step
from ..patch.run import RUN_KEY, TransferRun
from .sampling import Progress, run_loop

ENDINGS = ("authors", "exact")


def patched_plan(model) -> TransferPlan:
    """The plan of a MODEL from Semantic Match Patch (later patches of other packs may wrap it and stay)."""
    plan = plan_of(model)
    if plan is None:
        raise ValueError("model: this MODEL is not patched; connect the MODEL output of Semantic Match Patch")
    if fingerprint(model).model_id != plan.fingerprint.model_id:
        raise ValueError("model: the patch was made for another model; connect Semantic Match Patch's MODEL output")
    return plan


def _fold(x: torch.Tensor) -> torch.Tensor:
    """A video latent ``[B, C, T, H, W]`` as one wide image ``[B, C, H, T * W]`` (statistics over the clip)."""
    return x if x.ndim == 4 else einops.rearrange(x, "b c t h w -> b c h (t w)")


def _unfold(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_fold` for a latent shaped as ``like``."""
    return x if like.ndim == 4 else einops.rearrange(x, "b c h (t w) -> b c t h w", t=like.shape[2])


def _latent_masks(plan: TransferPlan, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft target and reference masks ``[K, 1, h, w]`` on the latent (a video's as ``[K, 1, h, T * w]``, its
    frames side by side as :func:`_fold` lays them out)."""
    tmask, rmask = plan.masks.resized(h, w, "target"), plan.masks.resized(h, w, "reference")
    frames = plan.frames
    if len(plan.target.latent_shape) == 4:  # a frame axis (Wan; Qwen-Image's one frame)
        per = frame_masks(plan.masks, plan.family, frames)
        per = plan.masks.target[:, None] if per is None else per
        per = F.interpolate(per.float(), size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
        tmask = einops.rearrange(per, "k f h w -> k 1 h (f w)")
        rmask = rmask.repeat(1, 1, 1, frames)
    return tmask, rmask


def _core(masks: torch.Tensor) -> torch.Tensor:
    """``[K, 1, h, w]`` soft masks -> where each is fully 1; an object with no such pixel keeps its soft mask."""
    core = (masks >= 1.0 - 1e-6).float()
    empty = core.sum(dim=(1, 2, 3), keepdim=True) == 0
    return torch.where(empty, masks, core)


def transfer(model, positive, negative, cfg: float, adain: bool = authors.ADAIN,
             adain_start_percent: float = authors.ADAIN_START_PERCENT,
             ending: str = authors.ENDING) -> tuple[torch.Tensor, TransferRun]:
    """Run the transfer; returns the output latent (VAE space) ``[B, C, H, W]`` and the run (its correspondence).

    ``ending`` (edit-friendly inversions): "authors" ends on the clean posterior mean, as their pipeline does;
    "exact" adds the target's last stored noise map, so that with nothing transferred (strength 0, the
    inversion's cfg and prompts) the target comes back bit for bit.
    """
    plan = patched_plan(model)
    target = plan.target
    if not 0.0 <= adain_start_percent <= 1.0:
        raise ValueError("adain_start_percent: must be between 0 and 1")
    if ending not in ENDINGS:
        raise ValueError(f"ending: {ending!r} is not one of {ENDINGS}")
    final_sigma = None
    if ending == "authors":  # rectified flow: the last step simply ends on the denoised prediction
        final_sigma = 0.0 if target.flow else float(model.get_model_object("model_sampling").sigma_min)
    start = target.start_step
    adain_from = start + run_step(adain_start_percent, target.steps - start)
    h, w = target.latent_shape[-2:]
    tmask, rmask = _latent_masks(plan, h, w)
    # statistics over the latent pixels fully inside each object (as the authors' code); blend with the soft mask
    masks = (tmask, rmask, _core(tmask), _core(rmask))
    progress = Progress(target.steps - start, model)
    out = {}

    def loop(denoise, x, sig, options):
        run = out["run"] = options["transformer_options"][RUN_KEY]
        refs = run.latents(x.device, x.dtype)[0]
        tm, rm, tc, rc = (m.to(x) for m in masks)

        def after_step(j, x):
            g = start + j + 1  # x now sits at sigmas[g]
            if not adain or g < adain_from or plan.settings.strength <= 0:
                return x
            flat, ref = _fold(x), _fold(refs[g])
            for k, r in enumerate(plan.ref_ids):
                flat = masked_adain(flat, ref[r:r + 1], tm[k:k + 1], rm[k:k + 1], check=False,
                                    x_stats_mask=tc[k:k + 1], ref_stats_mask=rc[k:k + 1])
            return _unfold(flat, x)

        x0 = target.start_latent().to(x)
        if target.residuals is not None:
            res = target.residuals[start:].to(x.device, wide_dtype(x.device))
            return sample_edit_friendly(denoise, x0, sig, res, eta=target.eta, progress=progress,
                                        callback=after_step, final_sigma=final_sigma, flow=target.flow)
        return sample_ddim(denoise, x0, sig, progress=progress, callback=after_step)

    latent = torch.zeros(target.batch, *target.latent_shape)
    samples = run_loop(model, loop, target.sampling_sigmas(), positive, negative, cfg, latent)
    return samples, out["run"]
