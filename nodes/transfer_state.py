"""The run state of one patched model: what the method needs at every UNet call, and what it matched.

A ``TransferState`` holds the inversions (target and references), the object masks, the settings, which
trajectory step does what (match, structure injection or nothing), the token masks per feature map, and the
last correspondence for the viewer. The hooks in ``attention_hooks`` reach it through closures; nothing of it
lives in ComfyUI's ``model_options`` except a reference, so clones of the patched model share one state.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import torch

from ..inversion import Inversion
from ..matching import ObjectMasks, mask_to_tokens, match_objects
from . import defaults as authors

log = logging.getLogger("eye_for_an_eye")

NEAR = 0.02  # relative sigma distance below which a sampler step *is* an inversion step
FAR = 0.25  # above this the schedules are refused


@dataclass
class Settings:
    layers: tuple[tuple[str, int], ...]
    start_percent: float = authors.START_PERCENT
    end_percent: float = authors.END_PERCENT
    struct_every: int = authors.STRUCTURE_EVERY
    struct_end_percent: float = authors.STRUCTURE_END_PERCENT
    strength: float = authors.STRENGTH

    def __post_init__(self):
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError("start_percent/end_percent: need 0 <= start_percent <= end_percent <= 1")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength: must be between 0 and 1")
        if self.struct_every < 0:
            raise ValueError("structure_every: must be >= 0 (0 turns structure injection off)")
        if not self.layers:
            raise ValueError("layers: no layer chosen")


@dataclass
class CallLayout:
    """Where each role sits in the batch of the current model call (row indices on the model's device).

    ``struct_targets[j]`` takes the features of ``struct_rows[j]`` at structure steps (UNet: the negative rows;
    DiT: every row). ``grid`` and ``context_len`` locate the image tokens of a DiT (``None`` / 0 for a UNet).
    """

    step: int
    match: bool
    struct: bool
    cond_rows: torch.Tensor | None = None
    ref_rows: torch.Tensor | None = None
    struct_targets: torch.Tensor | None = None
    struct_rows: torch.Tensor | None = None
    struct_source: torch.Tensor | None = None  # rows whose conditioning the structure rows take
    grid: tuple[int, int] | None = None
    context_len: int = 0


@dataclass
class Correspondence:
    """The last correspondence of a run, at its finest feature map: for the picture and the viewer."""

    src: torch.Tensor | None = None  # [B, N] flat indices into the references' tokens, -1 = kept
    grid: tuple[int, int] | None = None
    layer: str = ""
    step: int = -1

    def keep(self, src: torch.Tensor, grid: tuple[int, int], step: int, block: tuple[str, int]):
        """Keep ``src`` if it is of a later step, or of the same step at a map at least as fine."""
        if step > self.step or (step == self.step and grid[0] * grid[1] >= self.grid[0] * self.grid[1]):
            self.src, self.grid, self.step, self.layer = src.detach(), grid, step, f"{block[0]}.{block[1]}"


class TransferState:
    def __init__(self, target: Inversion, references: list[Inversion], masks: ObjectMasks, settings: Settings,
                 family: str, patch_size: int | None = None):
        self.target = target
        self.ref_latents = torch.cat([r.latents for r in references], dim=1)  # [n+1, R, C, H, W]
        self.n_refs = self.ref_latents.shape[1]
        self.masks = masks
        self.ref_ids = masks.resolve_ref_ids(self.n_refs)
        self.settings = settings
        self.family = family
        self.patch_size = patch_size  # DiT families: image tokens are patch_size x patch_size latent pixels
        self.layers = frozenset(settings.layers)
        self.correspondence = Correspondence()
        self.call: CallLayout | None = None  # set by the UNet wrapper for the duration of one UNet call
        self._mask_cache: dict = {}
        self._warned_near = False
        self._last_step = -1
        self._on_device: dict = {}
        self._chunk_uuids: list = []
        n_run = target.steps - target.start_step
        self.n_run = n_run
        self.match_from = round(settings.start_percent * n_run)
        self.match_to = round(settings.end_percent * n_run)
        self.struct_to = round(settings.struct_end_percent * n_run)

    # ComfyUI deep-copies model_options at every clone: clones share one state instead of copying tensors.
    def __deepcopy__(self, memo):
        return self

    def begin_run(self):
        """A new sampling run starts: forget the previous run's correspondence."""
        self._last_step = -1
        self.correspondence = Correspondence()

    def note_step(self, step: int):
        """Hosts without run callbacks: sigmas only fall within a run, so a lower step starts a new one."""
        if step < self._last_step:
            self.begin_run()
        self._last_step = step

    # ---------------------------------------------------------------- steps
    def phase(self, step: int) -> str | None:
        """``"match"``, ``"struct"`` or ``None`` for trajectory step ``step``."""
        if self.settings.strength <= 0.0:
            return None
        k = step - self.target.start_step
        if k < self.match_from or k >= self.match_to:
            return None
        every = self.settings.struct_every
        if every > 0 and k < self.struct_to and (k - self.match_from) % every == 0:
            return "struct"
        return "match"

    def step_of_sigma(self, sigma: float) -> int:
        step, rel = self.target.nearest_step(sigma)
        if rel > FAR:
            t = self.target
            raise ValueError(
                f"sampler: sigma {sigma:.4g} is far from every step of the inversion ({t.steps} steps, scheduler "
                f"{t.scheduler}). Sample with steps={t.steps}, scheduler={t.scheduler}, start_at_step={t.start_step} "
                "(or use the Appearance Transfer Sampler, which follows the inversion's schedule)."
            )
        if rel > NEAR and not self._warned_near:
            self._warned_near = True
            log.warning("Eye-for-an-eye: sampler sigmas differ from the inversion's (%d steps, %s); using the "
                        "nearest stored step (off by up to %.0f%%)", self.target.steps, self.target.scheduler,
                        100 * rel)
        return step

    def latents_on(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The references' and the target's stored latents on the model's device (copied once, a few MB)."""
        key = (str(device), dtype)
        hit = self._on_device.get(key)
        if hit is None:
            hit = (self.ref_latents.to(device=device, dtype=dtype), self.target.latents.to(device=device, dtype=dtype))
            self._on_device = {key: hit}  # keep one device copy
        return hit

    def chunk_uuids(self, n: int) -> list:
        """uuids for the extra chunks (references, structure), made once per patched model."""
        while len(self._chunk_uuids) < n:
            self._chunk_uuids.append(uuid.uuid4())
        return self._chunk_uuids[:n]

    # ---------------------------------------------------------------- matching
    def match(self, call: CallLayout, out: torch.Tensor, refs: torch.Tensor, grid: tuple[int, int],
              block: tuple[str, int]) -> torch.Tensor:
        """``[B, N]`` flat indices into ``refs`` of the nearest reference token of each target token of an object
        (-1: kept), for target features ``out`` ``[B, N, C]`` and reference features ``refs`` ``[R, N, C]`` on an
        ``h x w`` token map; kept as the run's correspondence for the viewer. No host synchronisation."""
        out_masks, ref_masks = self.token_masks(*grid, out.device)
        src = match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(out.shape[0], -1, -1),
                            self.ref_ids, ref_masks.unsqueeze(0), check=False)
        self.correspondence.keep(src, grid, call.step, block)
        return src

    # ---------------------------------------------------------------- masks
    def token_masks(self, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Target and reference object masks on an ``h x w`` token map, ``[K, h * w]`` bool (cached)."""
        key = (h, w, str(device))
        hit = self._mask_cache.get(key)
        if hit is None:
            out = mask_to_tokens(self.masks.target, h, w)
            ref = mask_to_tokens(self.masks.reference, h, w)
            for name, m in (("target_mask", out), ("reference_mask", ref)):
                empty = [k + 1 for k in range(m.shape[0]) if not bool(m[k].any())]
                if empty:
                    raise ValueError(f"{name}: object(s) {empty} cover no token of the {w}x{h} feature map; "
                                     "use a larger mask or a higher resolution")
            hit = (out.to(device), ref.to(device))
            self._mask_cache[key] = hit
        return hit
