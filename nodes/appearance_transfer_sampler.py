"""Appearance Transfer Sampler: the full-fidelity path (edit-friendly DDPM with the target's noise maps)."""

from __future__ import annotations

import base64

import torch

from ..inversion import sample_ddim, sample_edit_friendly, wide_dtype
from ..matching import correspondence_panel, masked_adain
from . import defaults as authors
from .attention_hooks import state_of
from .model_family import fingerprint
from .sampler_stack import Progress, run_loop
from .transfer_state import TransferState
from .ui_images import save_preview


def _state(model) -> TransferState:
    state = state_of(model)
    if state is None:
        raise ValueError("model: this MODEL is not patched; connect the MODEL output of Semantic Match Patch")
    fp = fingerprint(model)
    if fp.model_id != state.target.fingerprint.model_id:
        raise ValueError("model: the patch was made for another model; connect Semantic Match Patch's MODEL output")
    return state


def _core(masks: torch.Tensor) -> torch.Tensor:
    """``[K, 1, h, w]`` soft masks -> where each is fully 1; an object with no such pixel keeps its soft mask."""
    core = (masks >= 1.0 - 1e-6).float()
    empty = core.sum(dim=(1, 2, 3), keepdim=True) == 0
    return torch.where(empty, masks, core)


ENDINGS = ("authors", "exact")


def transfer(model, positive, negative, cfg: float, adain: bool = authors.ADAIN,
             adain_start_percent: float = authors.ADAIN_START_PERCENT, ending: str = authors.ENDING) -> torch.Tensor:
    """Run the transfer; returns the output latent (VAE space) ``[B, C, H, W]``.

    ``ending`` (edit-friendly inversions): "authors" ends on the clean posterior mean, as their pipeline does;
    "exact" adds the target's last stored noise map, so that with nothing transferred (strength 0, the
    inversion's cfg and prompts) the target comes back bit for bit.
    """
    state = _state(model)
    target = state.target
    if not 0.0 <= adain_start_percent <= 1.0:
        raise ValueError("adain_start_percent: must be between 0 and 1")
    if ending not in ENDINGS:
        raise ValueError(f"ending: {ending!r} is not one of {ENDINGS}")
    final_sigma = None
    if ending == "authors":  # rectified flow: the last step simply ends on the denoised prediction
        final_sigma = 0.0 if target.flow else float(model.get_model_object("model_sampling").sigma_min)
    start = target.start_step
    n_run = target.steps - start
    adain_from = start + round(adain_start_percent * n_run)
    h, w = target.latent_shape[-2:]
    tmask = state.masks.resized(h, w, "target")
    rmask = state.masks.resized(h, w, "reference")
    # statistics over the latent pixels fully inside each object (as the authors' code); blend with the soft mask
    tcore, rcore = _core(tmask), _core(rmask)
    progress = Progress(n_run, model)
    state.begin_run()
    on_device = {}  # masks and reference latents, moved to the sampling device once per run

    def after_step(j, x):
        g = start + j + 1  # x now sits at sigmas[g]
        if not adain or g < adain_from or state.settings.strength <= 0:
            return x
        refs = on_device["refs"][g]
        tm, rm, tc, rc = on_device["masks"]
        for k, r in enumerate(state.ref_ids):
            x = masked_adain(x, refs[r:r + 1], tm[k:k + 1], rm[k:k + 1], check=False,
                             x_stats_mask=tc[k:k + 1], ref_stats_mask=rc[k:k + 1])
        return x

    def loop(denoise, x, sig):
        on_device["refs"] = state.latents_on(x.device, x.dtype)[0]
        on_device["masks"] = [m.to(x) for m in (tmask, rmask, tcore, rcore)]
        x0 = target.start_latent().to(x)
        if target.residuals is not None:
            res = target.residuals[start:].to(x.device, wide_dtype(x.device))
            return sample_edit_friendly(denoise, x0, sig, res, eta=target.eta, progress=progress,
                                        callback=after_step, final_sigma=final_sigma, flow=target.flow)
        return sample_ddim(denoise, x0, sig, progress=progress, callback=after_step)

    latent = torch.zeros(target.batch, *target.latent_shape)
    return run_loop(model, loop, target.sampling_sigmas(), positive, negative, cfg, latent)


def correspondence_images(state: TransferState, size: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W * (1 + R), 3]``: per target, its correspondence picture beside the references' colour codes."""
    corr = state.correspondence
    b = state.target.batch
    if corr.src is None:
        grid = (max(1, size[0] // 8), max(1, size[1] // 8))
        src = torch.full((b, grid[0] * grid[1]), -1, dtype=torch.long)
    else:
        grid, src = corr.grid, corr.src.cpu()
    return torch.stack([correspondence_panel(src[i], grid, grid, state.n_refs, size) for i in range(b)]).float()


def correspondence_ui(state: TransferState, target_image=None, reference_image=None) -> list[dict]:
    corr = state.correspondence
    if corr.src is None:
        return []
    h, w = corr.grid
    entries = []
    ref_previews = []
    if reference_image is not None:
        ref_previews = [save_preview(reference_image[min(r, reference_image.shape[0] - 1)], "e4e_ref")
                        for r in range(state.n_refs)]
    for i, row in enumerate(corr.src.cpu().to(torch.int32)):
        entries.append({
            "grid": [h, w],
            "ref_grids": [[h, w]] * state.n_refs,
            "n_refs": state.n_refs,
            "src": base64.b64encode(row.numpy().astype("<i4").tobytes()).decode("ascii"),
            "layer": corr.layer,
            "step": corr.step,
            "target": None if target_image is None else save_preview(
                target_image[min(i, target_image.shape[0] - 1)], "e4e_target"),
            "references": ref_previews or [None] * state.n_refs,
            "output": None,
        })
    return entries


class AppearanceTransferSampler:
    DESCRIPTION = (
        "Samples the Eye-for-an-eye transfer: starts from the target's inverted latent at its start step and "
        "follows the target's stored noise maps (edit-friendly DDPM); the patched MODEL rearranges reference "
        "features at every step, and masked AdaIN matches the latent statistics of each object to its reference "
        "in the last steps. With nothing transferred (strength 0), ending 'exact', and the inversion's cfg and "
        "prompts, it gives back the target exactly. Outputs the latent and a picture of what was matched (each "
        "target spot coloured by where in the reference it comes from)."
    )
    CATEGORY = "appearance transfer/eye-for-an-eye"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "IMAGE")
    RETURN_NAMES = ("latent", "correspondence")
    OUTPUT_TOOLTIPS = (
        "The transferred latent (decode with VAE Decode).",
        "Correspondences of the last matched step: each target token coloured by the reference position it "
        "takes its appearance from (the reference colour code is shown beside it); grey = kept.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The MODEL output of Semantic Match Patch."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt; the authors use 'A photo of a {domain}' for every branch."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt (authors: empty)."}),
                "cfg": ("FLOAT", {"default": authors.CFG, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "CFG scale (authors: 2.5). Only the conditional branch is rearranged, so CFG pushes towards the reference appearance."}),
                "adain": ("BOOLEAN", {"default": authors.ADAIN, "tooltip": "Masked AdaIN on the latent in the last steps: inside each object, the latent's channel mean/std are set to the reference's."}),
                "adain_start_percent": ("FLOAT", {"default": authors.ADAIN_START_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where AdaIN starts in the sampled steps (0.73: after steps 49..67 of 68, as the authors' code runs it)."}),
                "ending": (list(ENDINGS), {"default": authors.ENDING, "tooltip": "The last step (edit-friendly inversions). authors: their zeroed last noise map, ending on the clean posterior mean at the smallest noise level. exact: adds the target's last stored noise map, so strength 0 with the inversion's cfg and prompts gives back the target bit for bit (but every output keeps a trace of the target's finest detail)."}),
            },
            "optional": {
                "target_image": ("IMAGE", {"tooltip": "The target image, only for the correspondence viewer in the editor."}),
                "reference_image": ("IMAGE", {"tooltip": "The reference image(s), only for the correspondence viewer in the editor."}),
            },
        }

    def sample(self, model, positive, negative, cfg, adain, adain_start_percent, ending=authors.ENDING,
               target_image=None, reference_image=None):
        samples = transfer(model, positive, negative, cfg, adain, adain_start_percent, ending)
        state = state_of(model)
        h, w = state.target.latent_shape[-2:]
        pictures = correspondence_images(state, (h * 8, w * 8))
        out = {"result": ({"samples": samples}, pictures)}
        entries = correspondence_ui(state, target_image, reference_image)
        if entries:
            out["ui"] = {"e4e_correspondence": entries}
        return out
