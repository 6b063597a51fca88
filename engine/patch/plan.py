"""What Semantic Match Patch decides, made once at patch time and never changed: the transfer plan.

A ``TransferPlan`` holds the inversions (target and references), the object masks, the settings, which
trajectory step does what (match, structure injection or nothing: one index scale, the inversion's steps), the
token map of every chosen block and the object masks on it (checked here, before any sampling), where the
correspondence comes from (its ``source``, ``sources.py``), and the fingerprint of the model it was made for.
Its tensors stay where the plan was made: every sampling run makes the device copies it needs (``run.py``), and
everything one model call needs travels with the call (``call.py``). The plan lives in the patched clone's
``model_options`` (:func:`plan_of`); clones of that clone share it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from ...inversion import Inversion, ModelFingerprint
from ...matching import ObjectMasks, mask_to_tokens
from ...matching.hints import hint_field, parse_hints
from ..models import defaults as authors
from ..models.blocks import attention_blocks, spatial_patch, token_maps
from ..models.families import Family, family_of, vae_stride
from ..models.layers import format_blocks, resolve_layers, resolve_match_block
from ..models.variant import OWN, fingerprint
from .sources import SEMANTIC, MatchSource

PLAN_KEY = "e4e_transfer_plan"  # model_options entry of a patched clone
NEAR = 0.02  # relative sigma distance below which a sampler step *is* an inversion step
FAR = 0.25  # above this the schedules are refused
# Video: which reference tokens each frame's object tokens are matched against.
#   per frame: every frame on its own, against the reference (the paper's rule, frame by frame);
#   anchor frame: the reference is matched once, on the first frame; every other frame takes, token by token, the
#     match of its nearest first-frame token of the same object (a part keeps its reference part over the clip);
#   whole clip: every token against the reference tokens of all frames at once.
VIDEO_MATCHING = ("per frame", "anchor frame", "whole clip")


def plan_of(model) -> TransferPlan | None:
    """The plan a MODEL from Semantic Match Patch carries (``None`` for any other MODEL)."""
    return getattr(model, "model_options", {}).get(PLAN_KEY)


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
    match_block: tuple[str, int] | None = None  # DiT: the block where each step's correspondence is found

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


@dataclass(frozen=True)
class PlanTensors:
    """The plan's tensors, where the plan was made (ComfyUI's intermediate device), float32; runs copy them."""

    ref_latents: torch.Tensor  # [n + 1, R, C, (T,) H, W]
    tgt_latents: torch.Tensor  # [n + 1, B, C, (T,) H, W]
    masks: MappingProxyType  # (h, w) -> (target [K, h*w] bool, reference [K, h*w] bool)


@dataclass(frozen=True, eq=False)
class TransferPlan:
    target: Inversion
    masks: ObjectMasks
    ref_ids: tuple[int, ...]
    settings: Settings
    family: Family
    fingerprint: ModelFingerprint
    token_maps: MappingProxyType  # block -> (h, w)
    phases: MappingProxyType  # trajectory step -> "match" | "struct"; other steps do nothing
    tensors: PlanTensors = field(repr=False)
    source: MatchSource = SEMANTIC  # where each step's correspondence comes from
    vae_stride: int = 8  # image pixels per latent pixel
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

    def image_size(self) -> tuple[int, int]:
        """The target image's ``(height, width)`` in pixels."""
        h, w = self.target.latent_shape[-2:]
        return h * self.vae_stride, w * self.vae_stride

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
                f"{t.scheduler}). {t.stock_sampler_advice()} (or use the Appearance Transfer Sampler, which follows "
                "the inversion's schedule)."
            )
        return step, rel > NEAR


class PlanPatch:
    """What the attention patches have in common: they belong to one plan (the hooks read it from the call's run,
    which holds it), and clones of the model share them (``__deepcopy__``). ComfyUI moves a model's patches with
    ``to(device)`` (and with a dtype, or ``None`` for a model built without an inference dtype): the plan stays where
    it was made, each run copies what it needs."""

    def __init__(self, plan: TransferPlan):
        self.plan = plan
        setattr(self, OWN, True)  # the pack's own: not part of a model's variant

    def __deepcopy__(self, memo):
        return self

    def to(self, _where):
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


def _check_inversion(inv, name: str, fp: ModelFingerprint, stride: int, target: Inversion | None = None):
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
                f"{name}: latent {lw * stride}x{lh * stride} differs from the target's {tw * stride}x{th * stride}; "
                "resize the reference image to the target's size (e.g. ImageScale) before VAE Encode"
            )
        if len(inv.sigmas) != len(target.sigmas) or not bool((inv.sigmas - target.sigmas).abs().max() < 1e-4):
            raise ValueError(
                f"{name}: inverted with {inv.steps} steps ({inv.scheduler}), the target with {target.steps} "
                f"({target.scheduler}); invert both with the same steps and scheduler"
            )


def _frames(latent_shape) -> int:
    """Frames of an inversion's ``latent_shape``: ``(C, T, H, W)`` for Wan and Qwen-Image, ``(C, H, W)`` else."""
    return latent_shape[1] if len(latent_shape) == 4 else 1


def frame_masks(masks: ObjectMasks, family: Family, frames: int) -> torch.Tensor | None:
    """The target masks ``[K, frames, H, W]`` of a video (or per-frame masks given for an image, which this
    refuses by name); ``None`` for an image with one mask per object."""
    if frames == 1 and masks.frames is None:
        return None
    return masks.target_frames(frames, family.frame_stride)


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
              strength=authors.STRENGTH, video_matching=VIDEO_MATCHING[0], match_block="auto", hints="",
              hint_strength=authors.HINT_STRENGTH, source: MatchSource = SEMANTIC) -> TransferPlan:
    """Check every input (naming the one at fault) and decide the whole transfer, before any model call.
    ``source``: where each step's correspondence comes from (the method's own matching unless an evaluation
    asks for another, ``sources.py``); ``hints`` steer the method's own (``matching.hints``)."""
    fam = family_of(model)  # refuses unsupported families first
    fp = fingerprint(model)
    stride = vae_stride(model.model.latent_format)
    _check_inversion(target, "target", fp, stride)
    refs = [reference, *[r for r in extra_references if r is not None]]
    for i, r in enumerate(refs):
        _check_inversion(r, "reference" if i == 0 else f"reference_{i + 1}", fp, stride, target)
    masks = ObjectMasks.whole_image() if masks is None else masks
    if not isinstance(masks, ObjectMasks):
        raise ValueError(f"masks: expected the output of Load Masks, got {type(masks).__name__}")
    masks.check_aspect(tuple(target.latent_shape[-2:]), "target", stride)
    masks.check_aspect(tuple(reference.latent_shape[-2:]), "reference", stride)
    net = model.model.diffusion_model
    present = attention_blocks(fam, net)
    chosen = resolve_layers(layers, custom_layers, fam, present)
    missing = [f"{b}.{i}" for b, i in chosen if (b, i) not in present]
    if missing:
        kinds = tuple(k for k, _ in fam.stacks) if fam.dit else ("output",)
        have = format_blocks([b for b in present if b[0] in kinds])
        raise ValueError(f"layers: {', '.join(missing)} has no self-attention in this {fam.key} model, so nothing "
                         f"would be matched there; its {'blocks' if fam.dit else 'decoder attention blocks'} are "
                         f"{have}")
    matcher = resolve_match_block(match_block, fam, present)
    settings = Settings(tuple(chosen), start_percent, end_percent, structure_every, structure_end_percent, strength,
                        video_matching, matcher)
    frames = _frames(target.latent_shape)
    if frames > 1 and not fam.video:
        raise ValueError(f"target: a latent of {frames} frames, but this {fam.key} model makes images")
    maps = token_maps(fam, net, chosen + ([matcher] if matcher else []), tuple(target.latent_shape[-2:]))
    grids: dict = {}
    for block, grid in maps.items():
        grids.setdefault(grid, []).append(block)
    # [n + 1, R, C, (T,) H, W]; a one-image reference of a video is its one frame repeated over the target's frames
    ref_latents = torch.cat([r.latents.expand(-1, -1, *target.latent_shape) for r in refs], dim=1)
    n_refs = ref_latents.shape[1]
    ref_ids = masks.resolve_ref_ids(n_refs)
    if not 0.0 <= hint_strength <= 10.0:
        raise ValueError("hint_strength: must be between 0 and 10 (0: the hints do nothing)")
    field = hint_field(parse_hints(hints), masks.target, masks.reference, ref_ids, n_refs, hint_strength)
    if field is not None:
        source = source.with_hints(field)
    token_masks = _token_masks(masks, grids, frame_masks(masks, fam, frames), frames,
                               anchor=video_matching == "anchor frame")
    return TransferPlan(
        target=target,
        masks=masks,
        ref_ids=ref_ids,
        settings=settings,
        family=fam,
        fingerprint=fp,
        token_maps=MappingProxyType(dict(maps)),
        phases=MappingProxyType(phases_of(target, settings)),
        tensors=PlanTensors(ref_latents, target.latents, MappingProxyType(token_masks)),
        source=source,
        vae_stride=stride,
        patch_size=spatial_patch(net) if fam.dit else None,
        chunk_uuids=tuple(uuid.uuid4() for _ in range(n_refs + target.batch)),
    )
