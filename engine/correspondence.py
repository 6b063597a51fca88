"""The correspondence: found at every matched layer of every model call, kept per run, shown after it.

``find_matches`` is the one place the method's rule runs inside a model call (the UNet and the DiT hooks both
call it): each target token of an object takes its cosine nearest neighbour among the reference tokens of that
object's reference (``matching.match_objects``). The run keeps the finest correspondence of its last matched
step; the sampler turns it into a picture and into the viewer's data.
"""

from __future__ import annotations

import base64

import torch

from ..matching import correspondence_panel, match_objects
from .plan import TransferPlan
from .previews import save_preview
from .rows import CallLayout
from .run import Correspondence, TransferRun


def find_matches(plan: TransferPlan, run: TransferRun, call: CallLayout, out: torch.Tensor, refs: torch.Tensor,
                 grid: tuple[int, int], block: tuple[str, int]) -> torch.Tensor:
    """``[B, N]`` flat indices into ``refs`` of the nearest reference token of each target token of an object
    (-1: kept), for target features ``out`` ``[B, N, C]`` and reference features ``refs`` ``[R, N, C]`` on the
    ``grid`` token map; kept as the run's correspondence. No host synchronisation."""
    out_masks, ref_masks = run.token_masks(grid, out.device)
    src = match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(out.shape[0], -1, -1), plan.ref_ids,
                        ref_masks.unsqueeze(0), check=False)
    run.correspondence.keep(src, grid, call.step, block)
    return src


def pictures(corr: Correspondence, n_refs: int, batch: int, size: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W * (1 + R), 3]``: per target, its correspondence picture beside the references' colour codes."""
    if corr.src is None:
        grid = (max(1, size[0] // 8), max(1, size[1] // 8))
        src = torch.full((batch, grid[0] * grid[1]), -1, dtype=torch.long)
    else:
        grid, src = corr.grid, corr.src.cpu()
    return torch.stack([correspondence_panel(src[i], grid, grid, n_refs, size) for i in range(batch)]).float()


def viewer_entries(corr: Correspondence, n_refs: int, target_image=None, reference_image=None) -> list[dict]:
    """The editor viewer's data: per target, the grid, the correspondence (base64 int32) and preview images."""
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
