"""What Semantic Match Patch decides, made once at patch time and never changed: the transfer plan.

A ``TransferPlan`` holds the inversions (target and references), the object masks, the settings, which
trajectory step does what (match, structure injection or nothing: one index scale, the inversion's steps), the
token map of every chosen block and the object masks on it (checked here, before any sampling), and the
fingerprint of the model it was made for. Its tensors sit in a ``PlanTensors`` holder that ComfyUI moves with
the model's patches (``model_patches_to``). Everything a sampling run produces lives in a ``TransferRun``
(``run.py``); everything one model call needs travels with the call (``rows.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from ..inversion import Inversion, ModelFingerprint
from ..matching import ObjectMasks, mask_to_tokens
from . import defaults as authors
from .family import OWN, attention_blocks, fingerprint, is_dit, is_video
from .layers import resolve_layers, spatial_patch, token_maps

NEAR = 0.02  # relative sigma distance below which a sampler step *is* an inversion step
FAR = 0.25  # above this the schedules are refused
# Video: which reference tokens each frame's object tokens are matched against.
#   per frame: every frame on its own, against the reference (the paper's rule, frame by frame);
#   anchor frame: the reference is matched once, on the first frame; every other frame takes, token by token, the
#     match of its nearest first-frame token of the same object (a part keeps its reference part over the clip);
#   whole clip: every token against the reference tokens of all frames at once.
VIDEO_MATCHING = ("per frame", "anchor frame", "whole clip")
VAE_FRAME_STRIDE = {"wan": 4}  # video frames per latent frame after the first (81 frames -> 21 latent frames)


def run_step(percent: float, n_run: int) -> int:
    """The sampled step (0 = the first one sampled) where ``percent`` of the ``n_run`` sampled steps falls: the one
    rounding rule for every window (matching, structure injection, AdaIN)."""
    return round(percent * n_run)


@dataclass(frozen=True)
class Settings:
    layers: tuple[tuple[str, int], ...]
    start_percent: float = authors.START_PERCENT
    end_percent: float = authors.END_PERCENT
    struct_every: int = authors.STRUCTURE_EVERY
    struct_end_percent: float = authors.STRUCTURE_END_PERCENT
    strength: float = authors.STRENGTH
    video_matching: str = VIDEO_MATCHING[0]

    def __post_init__(self):
        if self.video_matching not in VIDEO_MATCHING:
            raise ValueError(f"video_matching: {self.video_matching!r} is not one of {list(VIDEO_MATCHING)}")
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError("start_percent/end_percent: need 0 <= start_percent <= end_percent <= 1")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength: must be between 0 and 1")
        if self.struct_every < 0:
            raise ValueError("structure_every: must be >= 0 (0 turns structure injection off)")
        if not self.layers:
            raise ValueError("layers: no layer chosen")


class PlanTensors:
    """The plan's tensors, on whatever device ComfyUI puts the model's patches: the references' and the target's
    stored latents and the object masks on every token map. ``to(device)`` moves them (ComfyUI calls it with a
    device and with a dtype; the latents keep float32, runs cast them)."""

    def __init__(self, ref_latents: torch.Tensor, tgt_latents: torch.Tensor, masks: dict):
        self._home = (ref_latents, tgt_latents, masks)  # where the plan was made (ComfyUI's intermediate device)
        self.ref_latents = ref_latents  # [n + 1, R, C, H, W]
        self.tgt_latents = tgt_latents  # [n + 1, B, C, H, W]
        self.masks = masks  # (h, w) -> (target [K, h*w] bool, reference [K, h*w] bool)

    @property
    def device(self) -> torch.device:
        return self.ref_latents.device

    def to(self, where):
        """Copies on ``where`` made from the plan's own tensors (moving back home frees the copies)."""
        if isinstance(where, torch.dtype):
            return self
        device = torch.device(where)
        if device != self.device:
            ref, tgt, masks = self._home
            self.ref_latents, self.tgt_latents = ref.to(device), tgt.to(device)
            self.masks = {k: (t.to(device), r.to(device)) for k, (t, r) in masks.items()}
        return self


@dataclass(frozen=True, eq=False)
class TransferPlan:
    target: Inversion
    references: tuple[Inversion, ...]
    masks: ObjectMasks
    ref_ids: tuple[int, ...]
    settings: Settings
    family: str
    fingerprint: ModelFingerprint
    token_maps: MappingProxyType  # block -> (h, w)
    phases: MappingProxyType  # trajectory step -> "match" | "struct"; other steps do nothing
    tensors: PlanTensors = field(repr=False)
    patch_size: int | None = None  # DiT families: image tokens are patch_size x patch_size latent pixels
    chunk_uuids: tuple = ()  # uuids of the extra chunks (references, structure) for caches keyed by uuid

    # ComfyUI deep-copies model_options at every clone: clones share the one plan instead of copying tensors.
    def __deepcopy__(self, memo):
        return self

    @property
    def n_refs(self) -> int:
        return self.tensors.ref_latents.shape[1]

    @property
    def layers(self) -> frozenset:
        return frozenset(self.settings.layers)

    @property
    def dit(self) -> bool:
        return self.patch_size is not None

    @property
    def frames(self) -> int:
        """Latent frames of the target (1 for an image)."""
        return _frames(self.target.latent_shape)

    def phase(self, step: int) -> str | None:
        """``"match"``, ``"struct"`` or ``None`` for trajectory step ``step``."""
        return self.phases.get(step)

    def window(self) -> tuple[int, int] | None:
        """First and last trajectory step where the patch acts (None: never)."""
        return (min(self.phases), max(self.phases)) if self.phases else None

    def step_of_sigma(self, sigma: float) -> tuple[int, bool]:
        """The trajectory step a sampler's ``sigma`` stands for, and whether it is off the stored sigmas by more
        than NEAR (to be said once per run); too far from every step is refused."""
        step, rel = self.target.nearest_step(sigma)
        if rel > FAR:
            t = self.target
            raise ValueError(
                f"sampler: sigma {sigma:.4g} is far from every step of the inversion ({t.steps} steps, scheduler "
                f"{t.scheduler}). Sample with steps={t.steps}, scheduler={t.scheduler}, start_at_step={t.start_step} "
                "(or use the Appearance Transfer Sampler, which follows the inversion's schedule)."
            )
        return step, rel > NEAR


class PlanPatch:
    """What the attention patches have in common: they hold the plan; ComfyUI moves them (and so the plan's
    tensors) with the model's patches (``to``), and clones of the model share them (``__deepcopy__``)."""

    def __init__(self, plan: TransferPlan):
        self.plan = plan
        setattr(self, OWN, True)  # the pack's own: not part of a model's variant

    def __deepcopy__(self, memo):
        return self

    def to(self, where):
        self.plan.tensors.to(where)
        return self


def phases_of(target: Inversion, settings: Settings) -> dict[int, str]:
    """Trajectory step -> ``"match"`` / ``"struct"`` under the authors' rule: from ``start_percent`` to
    ``end_percent`` of the sampled steps; every ``struct_every``-th of them before ``struct_end_percent`` injects
    structure instead of matching."""
    if settings.strength <= 0.0:
        return {}
    n_run = target.steps - target.start_step
    match_from, match_to = run_step(settings.start_percent, n_run), run_step(settings.end_percent, n_run)
    struct_to = run_step(settings.struct_end_percent, n_run)
    out = {}
    for k in range(match_from, match_to):
        every = settings.struct_every
        struct = every > 0 and k < struct_to and (k - match_from) % every == 0
        out[target.start_step + k] = "struct" if struct else "match"
    return out


# ---------------------------------------------------------------------------------------------- making a plan


def _check_inversion(inv, name: str, fp: ModelFingerprint, target: Inversion | None = None):
    if not isinstance(inv, Inversion):
        raise ValueError(f"{name}: expected the 'inversion' output of DDIM Invert Reference, got {type(inv).__name__}")
    if inv.fingerprint.freeu != fp.freeu:
        def say(f):
            return "without the authors' FreeU" if f is None else f"with the authors' FreeU {f[:4]}"

        raise ValueError(
            f"{name}: inverted {say(inv.fingerprint.freeu)} but the model being patched is {say(fp.freeu)}; put "
            "Authors' FreeU once on the MODEL before both DDIM Invert Reference nodes and Semantic Match Patch"
        )
    diff = inv.fingerprint.differences(fp)
    if diff:
        raise ValueError(
            f"{name}: inverted with another model variant than the one being patched (differs in: {'; '.join(diff)}); "
            "connect the same MODEL (after the same LoRA, sampling and patch nodes) to DDIM Invert Reference and "
            "Semantic Match Patch"
        )
    if target is not None:
        frames = _frames(inv.latent_shape), _frames(target.latent_shape)
        if frames[0] != frames[1] and frames[0] != 1:
            raise ValueError(f"{name}: a video of {frames[0]} latent frames, the target has {frames[1]}; give the "
                             "reference as one image or as a video of the target's length")
        if inv.latent_shape[-2:] != target.latent_shape[-2:] or inv.latent_shape[0] != target.latent_shape[0]:
            lh, lw = inv.latent_shape[-2:]
            th, tw = target.latent_shape[-2:]
            raise ValueError(
                f"{name}: latent {lw * 8}x{lh * 8} differs from the target's {tw * 8}x{th * 8}; resize the reference "
                "image to the target's size (e.g. ImageScale) before VAE Encode"
            )
        if len(inv.sigmas) != len(target.sigmas) or not bool((inv.sigmas - target.sigmas).abs().max() < 1e-4):
            raise ValueError(
                f"{name}: inverted with {inv.steps} steps ({inv.scheduler}), the target with {target.steps} "
                f"({target.scheduler}); invert both with the same steps and scheduler"
            )


def _ranges(blocks, kinds) -> list[str]:
    """``{("double", 0), ("double", 1), ("single", 0)}`` -> ``["double.0-1", "single.0"]``."""
    out = []
    for kind in kinds:
        ids = sorted(i for k, i in blocks if k == kind)
        if ids:
            out.append(f"{kind}.{ids[0]}-{ids[-1]}" if len(ids) > 1 and ids[-1] - ids[0] == len(ids) - 1
                       else ", ".join(f"{kind}.{i}" for i in ids))
    return out


def _frames(latent_shape) -> int:
    """Frames of an inversion's ``latent_shape``: ``(C, T, H, W)`` for Wan and Qwen-Image, ``(C, H, W)`` else."""
    return latent_shape[1] if len(latent_shape) == 4 else 1


def frame_masks(masks: ObjectMasks, family: str, frames: int) -> torch.Tensor | None:
    """The target masks ``[K, frames, H, W]`` of a video (or per-frame masks given for an image, which this
    refuses by name); ``None`` for an image with one mask per object."""
    if frames == 1 and masks.frames is None:
        return None
    return masks.target_frames(frames, VAE_FRAME_STRIDE.get(family, 1))


def _token_masks(masks: ObjectMasks, grids, per_frame: torch.Tensor | None, frames: int = 1,
                 anchor: bool = False) -> dict:
    """Object masks on every token map, refusing objects that cover no token of a map (before any sampling).
    Video (``per_frame`` from :func:`frame_masks`): ``[K, frames * h * w]`` in the tokens' order (frame, row,
    column); a target object may be absent from some frames, not from all; the reference masks hold for every
    frame."""
    out = {}
    for grid, blocks in grids.items():
        h, w = grid
        if per_frame is None:
            tgt = mask_to_tokens(masks.target, h, w)
        else:
            k, f = per_frame.shape[:2]
            tgt = mask_to_tokens(per_frame.reshape(k * f, *per_frame.shape[-2:]), h, w).reshape(k, f * h * w)
        ref = mask_to_tokens(masks.reference, h, w).repeat(1, frames)
        pair = (tgt, ref)
        for name, m in zip(("target_mask", "reference_mask"), pair):
            empty = [k + 1 for k in range(m.shape[0]) if not bool(m[k].any())]
            if empty:
                where = ", ".join(f"{b}.{i}" for b, i in sorted(blocks))
                raise ValueError(f"{name}: object(s) {empty} cover no token of the {w}x{h} feature map of {where}; "
                                 "use a larger mask, a higher resolution, or other layers")
        missing = [k + 1 for k in range(tgt.shape[0]) if not bool(tgt[k, :h * w].any())]
        if anchor and frames > 1 and missing:
            raise ValueError(f"target_mask: object(s) {missing} are not on the first frame, the anchor of "
                             "video_matching 'anchor frame'; use 'per frame' or 'whole clip'")
        out[grid] = pair
    return out


def make_plan(model, target, reference, masks=None, extra_references=(), layers="auto", custom_layers="",
              start_percent=authors.START_PERCENT, end_percent=authors.END_PERCENT,
              structure_every=authors.STRUCTURE_EVERY, structure_end_percent=authors.STRUCTURE_END_PERCENT,
              strength=authors.STRENGTH, video_matching=VIDEO_MATCHING[0]) -> TransferPlan:
    """Check every input (naming the one at fault) and decide the whole transfer, before any model call."""
    fp = fingerprint(model)  # refuses unsupported families first
    _check_inversion(target, "target", fp)
    refs = [reference, *[r for r in extra_references if r is not None]]
    for i, r in enumerate(refs):
        _check_inversion(r, "reference" if i == 0 else f"reference_{i + 1}", fp, target)
    masks = ObjectMasks.whole_image() if masks is None else masks
    if not isinstance(masks, ObjectMasks):
        raise ValueError(f"masks: expected the output of Load Masks, got {type(masks).__name__}")
    masks.check_aspect(tuple(target.latent_shape[-2:]), "target")
    masks.check_aspect(tuple(reference.latent_shape[-2:]), "reference")
    present = attention_blocks(model)
    chosen = resolve_layers(layers, custom_layers, fp.family, present)
    missing = [f"{b}.{i}" for b, i in chosen if (b, i) not in present]
    if missing:
        dit = is_dit(fp.family)
        kinds = ("double", "single") if dit else ("output",)
        have = ", ".join(_ranges(present, kinds))
        raise ValueError(f"layers: {', '.join(missing)} has no self-attention in this {fp.family} model, so nothing "
                         f"would be matched there; its {'blocks' if dit else 'decoder attention blocks'} are {have}")
    settings = Settings(tuple(chosen), start_percent, end_percent, structure_every, structure_end_percent, strength,
                        video_matching)
    frames = _frames(target.latent_shape)
    if frames > 1 and not is_video(fp.family):
        raise ValueError(f"target: a latent of {frames} frames, but this {fp.family} model makes images")
    maps = token_maps(model, chosen, tuple(target.latent_shape[-2:]))
    grids: dict = {}
    for block, grid in maps.items():
        grids.setdefault(grid, []).append(block)
    # [n + 1, R, C, (T,) H, W]; a one-image reference of a video is its one frame repeated over the target's frames
    ref_latents = torch.cat([r.latents.expand(-1, -1, *target.latent_shape) for r in refs], dim=1)
    n_refs = ref_latents.shape[1]
    token_masks = _token_masks(masks, grids, frame_masks(masks, fp.family, frames), frames,
                               anchor=video_matching == "anchor frame")
    tensors = PlanTensors(ref_latents, target.latents, token_masks)
    net = model.model.diffusion_model
    return TransferPlan(
        target=target,
        references=tuple(refs),
        masks=masks,
        ref_ids=masks.resolve_ref_ids(n_refs),
        settings=settings,
        family=fp.family,
        fingerprint=fp,
        token_maps=MappingProxyType(dict(maps)),
        phases=MappingProxyType(phases_of(target, settings)),
        tensors=tensors,
        patch_size=spatial_patch(net) if is_dit(fp.family) else None,
        chunk_uuids=tuple(uuid.uuid4() for _ in range(n_refs + target.batch)),
    )
