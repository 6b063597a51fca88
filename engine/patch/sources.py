"""Where the correspondence comes from: one explicit part of the plan (``TransferPlan.source``).

A source answers one question at every matched layer (UNet) or matching block (DiT) of every matched step: for
each positive target token, which reference token does it take its appearance from? ``matches(plan, run, call,
out, refs, grid, block)`` gets the target features ``out`` ``[B, N, C]`` (the call's positive rows), the reference
features ``refs`` ``[R, N, C]`` on the ``grid`` token map of ``block``, and returns ``[B, N]`` flat indices into ``refs``
(``r * N + m``), ``-1`` where a token keeps its own features. The object masks on the grid are the run's
(``run.token_masks``).

* :data:`SEMANTIC` is the method (the default): each target token of an object takes its cosine nearest neighbour
  among the reference tokens of that object's reference (``matching.match_objects``), frame by frame for video
  (``video_matching``); with correspondence hints (``SemanticMatching(hints)``, ``matching.hints``) the reference
  tokens near where the hints' map sends a target token get a bonus, and a hinted token takes its hinted token.
* :class:`PositionMatching`: token i takes reference token i: the baseline the method must beat.

Evaluations bring their own (the toy world's ground truth, ``bench/toy_tools/evaluate.py``) through
``make_plan(source=...)``; nothing patches the engine. A source holds no per-run state.
"""

from __future__ import annotations

import einops
import torch

from ...matching import match_objects
from ...matching.hints import HintField


class MatchSource:
    """The interface: ``matches(plan, run, call, out, refs, grid, block) -> [B, N]``."""

    name = "source"

    def matches(self, plan, run, call, out: torch.Tensor, refs: torch.Tensor, grid: tuple[int, int],
                block: tuple[str, int]) -> torch.Tensor:
        raise NotImplementedError

    def with_hints(self, hints: HintField) -> MatchSource:
        """This source steered by correspondence hints (only the method's own matching takes them)."""
        raise ValueError(f"hints: they steer the method's own matching; this plan takes its matches from {self.name}")

    def __repr__(self):
        return f"<{self.name}>"


class SemanticMatching(MatchSource):
    """The method's rule: cosine similarity, hard argmax over the reference object (no host synchronisation); with
    ``hints`` (a ``matching.hints.HintField``) steered by the user's correspondence hints."""

    name = "semantic matching"

    def __init__(self, hints: HintField | None = None):
        self.hints = hints

    def with_hints(self, hints: HintField) -> SemanticMatching:
        return SemanticMatching(hints)

    def matches(self, plan, run, call, out, refs, grid, block):
        out_masks, ref_masks = run.token_masks(grid, out.device)
        frames, mode = call.frames, plan.settings.video_matching
        prior = None
        if self.hints is not None:
            prior = run.on_device(("hint prior", grid, str(out.device)),
                                  lambda: self.hints.prior(grid, len(plan.ref_ids)).to(out.device))
        if frames == 1 or mode == "whole clip":
            whole = prior if prior is None or frames == 1 else prior.repeated(frames)  # a clip matched as one
            src = match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(out.shape[0], -1, -1),
                                plan.ref_ids, ref_masks.unsqueeze(0), check=False, prior=whole)
        else:
            src = _match_video(plan, out, refs, out_masks, ref_masks, frames, anchor=mode == "anchor frame",
                               prior=prior)
        if self.hints is not None:
            src = _force(src, self.hints.forced(grid), plan.ref_ids, out_masks, ref_masks, frames)
        return src


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


def _force(src, forced, ref_ids, out_masks, ref_masks, frames: int) -> torch.Tensor:
    """Each hint's target token takes its reference token (on every frame, frame f's in frame f), where both are
    on their object's token masks. ``src`` ``[B, F * n]`` flat indices into the references ``[R, F * n]``."""
    if not forced:
        return src
    total = src.shape[1]
    n = total // frames
    src = src.clone()
    for k, t, j in forced:
        for f in range(frames):
            i, m = f * n + t, f * n + j
            ok = out_masks[k, i] & ref_masks[k, m]  # a device bool: no host synchronisation
            src[:, i] = torch.where(ok, ref_ids[k] * total + m, src[:, i])
    return src


def _match_video(plan, out, refs, out_masks, ref_masks, frames: int, anchor: bool, prior=None) -> torch.Tensor:
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
            first = match_objects(o[:1], r[:1], om[:1], plan.ref_ids, rm[:1], check=False, prior=prior)[0]  # [n]
            # every frame's tokens -> the nearest first-frame token of the same object, in this row
            near = match_objects(o, o[:1, None], om, (0,) * om.shape[1], om[:1], check=False)  # [F, n]
            taken = first[near.clamp(min=0)]
            rows.append(torch.where((near >= 0) & (taken >= 0), taken, -1))
        else:
            rows.append(match_objects(o, r, om, plan.ref_ids, rm, check=False, prior=prior))  # [F, n]
    local = torch.stack(rows)  # [B, F, n]: index r * n + m into a frame of the references
    which, m = local.div(n, rounding_mode="floor"), local.remainder(n)
    frame = 0 if anchor else torch.arange(f, device=out.device).view(1, f, 1)  # anchor: the first frame's
    return torch.where(local >= 0, which * (f * n) + frame * n + m, -1).reshape(local.shape[0], f * n)
