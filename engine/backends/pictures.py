"""What a run matched, shown: the sampler's correspondence picture and the editor viewer's data."""

from __future__ import annotations

import base64

import torch

from ...matching import correspondence_panel
from ..patch.run import TransferRun
from .previews import save_preview


def pictures(run: TransferRun) -> torch.Tensor:
    """``[B, H, W * (1 + R), 3]`` at the target image's size: per target, its correspondence picture beside the
    references' colour codes (grey everywhere when nothing was matched)."""
    plan, corr = run.plan, run.correspondence
    size, batch = plan.image_size(), plan.target.batch
    if corr.src is None:
        grid = tuple(plan.target.latent_shape[-2:])
        src = torch.full((batch, grid[0] * grid[1]), -1, dtype=torch.long)
    else:
        grid, src = corr.grid, corr.src.cpu()
    return torch.stack([correspondence_panel(src[i], grid, grid, plan.n_refs, size) for i in range(batch)]).float()


def viewer_entries(run: TransferRun, target_image=None, reference_image=None) -> list[dict]:
    """The editor viewer's data: per target, the grid, the correspondence (base64 int32) and preview images."""
    corr, n_refs = run.correspondence, run.plan.n_refs
    if corr.src is None:
        return []
    h, w = corr.grid
    ref_previews = []
    if reference_image is not None:
        ref_previews = [save_preview(reference_image[min(r, reference_image.shape[0] - 1)], "e4e_ref")
                        for r in range(n_refs)]
    entries = []
    for i, row in enumerate(corr.src.cpu().to(torch.int32)):
        entries.append({
            "grid": [h, w],
            "ref_grids": [[h, w]] * n_refs,
            "n_refs": n_refs,
            "src": base64.b64encode(row.numpy().astype("<i4").tobytes()).decode("ascii"),
            "layer": corr.layer,
            "step": corr.step,
            "target": None if target_image is None else save_preview(
                target_image[min(i, target_image.shape[0] - 1)], "e4e_target"),
            "references": ref_previews or [None] * n_refs,
        })
    return entries
