"""What one sampling run produces: made by the outer-sample wrapper, reachable from every model call of the run
through ``transformer_options``, dropped when the run ends.

A ``TransferRun`` holds the correspondence the run found (for the sampler's picture and the editor's viewer),
the plan's latents cast to the model's dtype, and whether the run was already told that its sigmas are off
the inversion's. Two samplers on one patched MODEL have two runs, so neither sees the other's correspondence;
the plan they share is never written to.
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
    def __init__(self, plan: TransferPlan):
        self.plan = plan
        self.correspondence = Correspondence()
        self._warned_near = False
        self._cast: tuple | None = None

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
        (cast once per run; the plan keeps float32)."""
        key = (str(device), dtype)
        if self._cast is None or self._cast[0] != key:
            t = self.plan.tensors
            self._cast = (key, t.ref_latents.to(device=device, dtype=dtype), t.tgt_latents.to(device=device, dtype=dtype))
        return self._cast[1], self._cast[2]

    def token_masks(self, grid: tuple[int, int], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Target and reference object masks on the ``grid`` token map, ``[K, h * w]`` bool, on ``device``."""
        tgt, ref = self.plan.tensors.masks[grid]
        return tgt.to(device), ref.to(device)


def run_of(transformer_options: dict | None) -> TransferRun | None:
    return (transformer_options or {}).get(RUN_KEY)
