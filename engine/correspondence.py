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
    frames, mode = call.frames, plan.settings.video_matching
    if frames == 1 or mode == "whole clip":
        src = match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(out.shape[0], -1, -1),
                            plan.ref_ids, ref_masks.unsqueeze(0), check=False)
    else:
        src = _match_video(plan, out, refs, out_masks, ref_masks, frames, anchor=mode == "anchor frame")
    run.correspondence.keep(_first_frame(src, frames), grid, call.step, block)
    return src


def _by_frame(t: torch.Tensor, frames: int) -> torch.Tensor:
    """``[..., F * n, C?]`` token axis -> frames: ``[B, N, C]`` -> ``[B, F, n, C]``; ``[K, N]`` -> ``[K, F, n]``."""
    if t.ndim == 3:
        return t.reshape(t.shape[0], frames, -1, t.shape[-1])
    return t.reshape(t.shape[0], frames, -1)


def _match_video(plan: TransferPlan, out, refs, out_masks, ref_masks, frames: int, anchor: bool) -> torch.Tensor:
    """Frame f of the target against frame f of the reference rows (a reference image is the same in every
    frame); ``anchor``: the first frame only, and every other token takes the match of its nearest first-frame
    token of the same object in its own row. Returns flat indices into ``refs`` ``[R, F * n, C]``.

    Row by row, the frames as match_objects' batch: every tensor is a view of the call's features and masks (no
    copy of the clip's features at every matched layer)."""
    f = frames
    r = _by_frame(refs, f).transpose(0, 1)  # [F, R, n, C]
    om, rm = _by_frame(out_masks, f).transpose(0, 1), _by_frame(ref_masks, f).transpose(0, 1)  # [F, K, n]
    n = r.shape[2]
    rows = []
    for o in _by_frame(out, f):  # [F, n, C]: one positive row's frames
        if anchor:
            first = match_objects(o[:1], r[:1], om[:1], plan.ref_ids, rm[:1], check=False)[0]  # [n]
            # every frame's tokens -> the nearest first-frame token of the same object, in this row
            near = match_objects(o, o[:1, None], om, (0,) * om.shape[1], om[:1], check=False)  # [F, n]
            taken = first[near.clamp(min=0)]
            rows.append(torch.where((near >= 0) & (taken >= 0), taken, -1))
        else:
            rows.append(match_objects(o, r, om, plan.ref_ids, rm, check=False))  # [F, n]
    local = torch.stack(rows)  # [B, F, n]: index r * n + m into a frame of the references
    which, m = local.div(n, rounding_mode="floor"), local.remainder(n)
    frame = 0 if anchor else torch.arange(f, device=out.device).view(1, f, 1)  # anchor: the first frame's
    return torch.where(local >= 0, which * (f * n) + frame * n + m, -1).reshape(local.shape[0], f * n)


def _first_frame(src: torch.Tensor, frames: int) -> torch.Tensor:
    """The first frame of a video's correspondence, its indices on the references' first frames (the picture and
    the viewer show that frame)."""
    if frames == 1:
        return src
    n = src.shape[1] // frames
    first = src[:, :n]
    which, m = first.div(frames * n, rounding_mode="floor"), first.remainder(frames * n).remainder(n)
    return torch.where(first >= 0, which * n + m, -1)


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
