"""What one sampling run produces and owns: made by the outer-sample wrapper, reachable from every model call of
the run through ``transformer_options``, dropped when the run ends.

A ``TransferRun`` holds the run's device copies of the plan's tensors (made once, on the model's device and in its
dtype, at the first call that needs them), the correspondence the run found (for the sampler's picture and the
editor's viewer; on a diffusion transformer also each step's correspondence from the matching block, which the
other rewritten blocks take), and whether the run was already told that its sigmas are off the inversion's. Two
samplers on one patched MODEL have two runs, so neither sees the other's correspondence; the plan they share is
never written to.

A sampler that skips ComfyUI's outer-sample wrapper (no stock sampler does) gets a run per model call
(``call.on_model_call``): matching and injection work as always, but nothing carries from one call to the next:
the sampler's correspondence picture and viewer stay empty, a diffusion transformer's blocks before its matching
block are not rewritten, and the off-schedule warning is logged at every call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .plan import TransferPlan

log = logging.getLogger("eye_for_an_eye")

RUN_KEY = "e4e_run"  # transformer_options entry of the current run (set by the outer-sample wrapper)


@dataclass
class Correspondence:
    """The run's last correspondence at its finest feature map: for the picture and the viewer."""

    src: torch.Tensor | None = None  # [B, N] flat indices into the references' tokens, -1 = kept
    grid: tuple[int, int] | None = None
    layer: str = ""
    step: int = -1

    def keep(self, src: torch.Tensor, grid: tuple[int, int], step: int, block: tuple[str, int]):
        """Keep ``src`` if it is of a later step, or of the same step at a map at least as fine."""
        if step > self.step or (step == self.step and grid[0] * grid[1] >= self.grid[0] * self.grid[1]):
            self.src, self.grid, self.step, self.layer = src.detach(), grid, step, f"{block[0]}.{block[1]}"


class TransferRun:
    def __init__(self, plan: TransferPlan, notices: list[str] | None = None):
        self.plan = plan
        self.notices = list(notices or [])  # what the sampler's UI says (nodes added after the patch)
        self.correspondence = Correspondence()
        self.shared: tuple[int, torch.Tensor] | None = None  # DiT: (step, src) of the matching block's last match
        self._warned_near = False
        self._latents: dict = {}  # (device, dtype) -> (references', target's latents)
        self._masks: dict = {}  # (grid, device) -> (target, reference) token masks
        self._copies: dict = {}  # what a match source keeps on the device for this run (a hint prior per map)

    def step_of_sigma(self, sigma: float) -> int:
        step, off = self.plan.step_of_sigma(sigma)
        if off and not self._warned_near:
            self._warned_near = True
            t = self.plan.target
            log.warning("Eye-for-an-eye: sampler sigmas differ from the inversion's (%d steps, %s); using the "
                        "nearest stored step", t.steps, t.scheduler)
        return step

    def latents(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The references' and the target's stored latents ``[n + 1, R|B, C, H, W]`` on ``device`` in ``dtype``
        (copied once per run; the plan keeps float32 where it was made)."""
        key = (str(device), dtype)
        if key not in self._latents:
            t = self.plan.tensors
            self._latents = {key: (t.ref_latents.to(device=device, dtype=dtype),
                                   t.tgt_latents.to(device=device, dtype=dtype))}
        return self._latents[key]

    def token_masks(self, grid: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Target and reference object masks on the ``grid`` token map, ``[K, h * w]`` bool, on ``device`` (copied
        once per run)."""
        key = (grid, str(device))
        if key not in self._masks:
            tgt, ref = self.plan.tensors.masks[grid]
            self._masks[key] = (tgt.to(device), ref.to(device))
        return self._masks[key]

    def on_device(self, key, make):
        """``make()``, made once per run for ``key`` (a source's device copies: made from the plan, kept by the
        run)."""
        if key not in self._copies:
            self._copies[key] = make()
        return self._copies[key]

    def keep_shared(self, step: int, src: torch.Tensor):
        """The matching block's correspondence at ``step`` (DiT), for the other rewritten blocks."""
        self.shared = (step, src)

    def shared_for(self, step: int, rows: int) -> torch.Tensor | None:
        """The correspondence a rewritten DiT block takes at ``step``: the matching block's at this step, or (for a
        block that runs before it) at the last step it matched; ``None`` before the first match, or when the
        batch of positive rows changed (``rows``)."""
        if self.shared is None or self.shared[0] > step or self.shared[1].shape[0] != rows:
            return None
        return self.shared[1]
