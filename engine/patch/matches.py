"""The correspondence inside a model call: asked of the plan's source at every matched layer (UNet) or matching
block (DiT) of every matched step, and kept by the run (its finest map of the last matched step) for the
sampler's picture and the editor's viewer."""

from __future__ import annotations

import torch

from .call import CallLayout
from .plan import TransferPlan
from .run import TransferRun


def find_matches(plan: TransferPlan, run: TransferRun, call: CallLayout, out: torch.Tensor, refs: torch.Tensor,
                 grid: tuple[int, int], block: tuple[str, int]) -> torch.Tensor:
    """``[B, N]`` flat indices into ``refs`` of the reference token each target token of an object takes (-1:
    kept), for target features ``out`` ``[B, N, C]`` and reference features ``refs`` ``[R, N, C]`` on the ``grid``
    token map (``plan.source``); kept as the run's correspondence. No host synchronisation."""
    src = plan.source.matches(plan, run, call, out, refs, grid, block)
    run.correspondence.keep(_first_frame(src, call.frames), grid, call.step, block)
    return src


def _first_frame(src: torch.Tensor, frames: int) -> torch.Tensor:
    """The first frame of a video's correspondence, its indices on the references' first frames (the picture and
    the viewer show that frame)."""
    if frames == 1:
        return src
    n = src.shape[1] // frames
    first = src[:, :n]
    which, m = first.div(frames * n, rounding_mode="floor"), first.remainder(frames * n).remainder(n)
    return torch.where(first >= 0, which * n + m, -1)
