"""Where the correspondence comes from: one explicit part of the plan (``TransferPlan.source``).

A source answers one question at every matched layer (UNet) or matching block (DiT) of every matched step: for
each positive target token, which reference token does it take its appearance from? ``matches(plan, run, call,
out, refs, grid, block)`` gets the target features ``out`` ``[B, N, C]`` (the call's positive rows), the reference
features ``refs`` ``[R, N, C]`` on the ``grid`` token map of ``block``, and returns ``[B, N]`` flat indices into ``refs``
(``r * N + m``), ``-1`` where a token keeps its own features. The object masks on the grid are the run's
(``run.token_masks``).

* :data:`SEMANTIC` is the method (the default): each target token of an object takes its cosine nearest neighbour
  among the reference tokens of that object's reference (``matching.match_objects``), frame by frame for video
  (``video_matching``).
* :class:`PositionMatching`: token i takes reference token i: the baseline the method must beat.

Evaluations bring their own (the toy world's ground truth, ``bench/toy_tools/evaluate.py``) through
``make_plan(source=...)``; nothing patches the engine. A source holds no per-run state.
"""

from __future__ import annotations

import einops
import torch

from ...matching import match_objects


class MatchSource:
    """The interface: ``matches(plan, run, call, out, refs, grid, block) -> [B, N]``."""

    name = "source"

    def matches(self, plan, run, call, out: torch.Tensor, refs: torch.Tensor, grid: tuple[int, int],
                block: tuple[str, int]) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self):
        return f"<{self.name}>"


class SemanticMatching(MatchSource):
    """The method's rule: cosine similarity, hard argmax over the reference object (no host synchronisation)."""

    name = "semantic matching"

    def matches(self, plan, run, call, out, refs, grid, block):
        out_masks, ref_masks = run.token_masks(grid, out.device)
        frames, mode = call.frames, plan.settings.video_matching
        if frames == 1 or mode == "whole clip":
            return match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(out.shape[0], -1, -1),
                                 plan.ref_ids, ref_masks.unsqueeze(0), check=False)
        return _match_video(plan, out, refs, out_masks, ref_masks, frames, anchor=mode == "anchor frame")


class PositionMatching(MatchSource):
    """Each target token inside an object takes the reference token at its own position (a baseline)."""

    name = "position matching"

    def matches(self, plan, run, call, out, refs, grid, block):
        out_masks, _ = run.token_masks(grid, out.device)
        pos = torch.arange(out.shape[1], device=out.device)
        return torch.where(out_masks.any(dim=0), pos, -1).unsqueeze(0).expand(out.shape[0], -1)


SEMANTIC = SemanticMatching()


def _by_frame(t: torch.Tensor, frames: int) -> torch.Tensor:
    """The token axis by frame: features ``[B, (F n), C]`` -> ``[B, F, n, C]``; masks ``[K, (F n)]`` -> ``[K, F, n]``
    (views, no copies)."""
    pattern = "b (f n) c -> b f n c" if t.ndim == 3 else "k (f n) -> k f n"
    return einops.rearrange(t, pattern, f=frames)


def _match_video(plan, out, refs, out_masks, ref_masks, frames: int, anchor: bool) -> torch.Tensor:
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
