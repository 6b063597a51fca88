"""Object masks of a transfer: target object k takes its appearance from reference object k."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _as_stack(mask: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        raise ValueError(f"{name}: expected a float MASK tensor [H, W] or [K, H, W]")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"{name}: expected a MASK [H, W] or a batch of masks [K, H, W], got shape {list(mask.shape)}")
    if not bool(torch.isfinite(mask).all()):
        raise ValueError(f"{name}: the mask holds NaN or infinite values; check the node that made it")
    return mask.float().clamp(0, 1)


def fit_masks(stack: torch.Tensor, width: int, height: int, crop: str = "disabled") -> torch.Tensor:
    """Resize ``[K, H, W]`` masks the way ComfyUI's ImageScale resizes images (0 keeps that side)."""
    if not width and not height:
        return stack
    h, w = stack.shape[-2:]
    width = width or max(1, round(w * height / h))
    height = height or max(1, round(h * width / w))
    if crop == "center":
        target_ratio, ratio = width / height, w / h
        if ratio > target_ratio:
            keep = round(h * target_ratio)
            x0 = (w - keep) // 2
            stack = stack[..., x0:x0 + keep]
        elif ratio < target_ratio:
            keep = round(w / target_ratio)
            y0 = (h - keep) // 2
            stack = stack[..., y0:y0 + keep, :]
    elif crop != "disabled":
        raise ValueError(f"crop: {crop!r} is not 'disabled' or 'center'")
    return F.interpolate(stack[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]


@dataclass
class ObjectMasks:
    """``target`` ``[K, H, W]`` and ``reference`` ``[K, Hr, Wr]`` masks (0..1), one pair per object.

    ``ref_ids[k]`` is the reference image (index into the references, in the order the patch receives
    them) of object k; ``None`` means automatic: object k takes reference k when there are K references,
    else every object takes reference 0. A 1x1 mask of ones stands for "whole image" at any size.

    Video: ``per_frame`` ``[K, F, H, W]`` holds a mask per frame of each object (as a video segmentation node
    gives them); ``target`` is then their union over the frames (for previews and size checks). Without it one
    target mask holds for every frame.
    """

    target: torch.Tensor
    reference: torch.Tensor
    ref_ids: tuple[int, ...] | None = None
    per_frame: torch.Tensor | None = None

    def __post_init__(self):
        self.reference = _as_stack(self.reference, "reference_mask")
        if self.per_frame is not None:
            if self.per_frame.ndim != 4 or self.per_frame.shape[0] != self.reference.shape[0]:
                raise ValueError(f"target_mask: per-frame masks must be [objects, frames, H, W] with one object per "
                                 f"reference mask, got {list(self.per_frame.shape)}")
            self.per_frame = self.per_frame.float().clamp(0, 1)
        self.target = _as_stack(self.target, "target_mask")
        if self.target.shape[0] != self.reference.shape[0]:
            raise ValueError(
                f"reference_mask: {self.reference.shape[0]} reference masks for {self.target.shape[0]} target masks; "
                "give one reference mask per target object (object k pairs with reference mask k)"
            )
        for name, stack in (("target_mask", self.target), ("reference_mask", self.reference)):
            empty = [k + 1 for k in range(stack.shape[0]) if float(stack[k].max()) <= 0]
            if empty:
                raise ValueError(f"{name}: object(s) {empty} are empty (all zero); draw the object, or remove that "
                                 "object's target and reference masks")
        if self.ref_ids is not None:
            self.ref_ids = tuple(int(r) for r in self.ref_ids)
            if len(self.ref_ids) != self.objects:
                raise ValueError(
                    f"reference_of_object: {len(self.ref_ids)} entries for {self.objects} objects; give one per object"
                )
            if any(r < 0 for r in self.ref_ids):
                raise ValueError("reference_of_object: reference numbers start at 1")

    @classmethod
    def of_frames(cls, per_frame: torch.Tensor, reference: torch.Tensor, ref_ids=None) -> ObjectMasks:
        """A video's masks: ``per_frame`` ``[K, F, H, W]``; the target masks are their union over the frames."""
        return cls(per_frame.float().amax(dim=1), reference, ref_ids, per_frame=per_frame)

    @classmethod
    def whole_image(cls) -> ObjectMasks:
        return cls(torch.ones(1, 1, 1), torch.ones(1, 1, 1))

    @property
    def objects(self) -> int:
        return self.target.shape[0]

    @property
    def frames(self) -> int | None:
        """Target masks per object: one per frame (``F``), or ``None`` for one mask for all frames."""
        return None if self.per_frame is None else self.per_frame.shape[1]

    def describe(self, frames: int | None = None) -> str:
        """What Load Masks got, in words (shown under the node and logged). ``frames``: how many images the target
        has (a video's frames), when known; frames are spoken of only where there are several."""
        k = self.objects
        whole = tuple(self.target.shape[-2:]) == (1, 1)
        what = "whole images" if whole else f"{k} object{'s' if k > 1 else ''}"
        if self.per_frame is not None:
            return f"{what}; a target mask per frame ({self.frames} frames per object)"
        if frames == 1 or whole:
            return what
        if frames:
            return f"{what}; one target mask per object for all {frames} frames"
        return f"{what}; one target mask per object for all frames"

    def target_frames(self, frames: int, stride: int) -> torch.Tensor:
        """Target masks ``[K, frames, H, W]`` for a latent of ``frames`` frames whose VAE packs ``stride`` video
        frames into one latent frame after the first (Wan: 4, so 81 frames -> 21 latent frames). Per-frame masks
        may come per video frame (``stride * (frames - 1) + 1``) or per latent frame; a latent frame takes the
        union of its video frames' masks."""
        if self.per_frame is None:
            return self.target[:, None].expand(-1, frames, -1, -1)
        f = self.per_frame.shape[1]
        if f == frames:
            return self.per_frame
        if f == stride * (frames - 1) + 1:
            first, rest = self.per_frame[:, :1], self.per_frame[:, 1:]
            rest = rest.reshape(rest.shape[0], frames - 1, stride, *rest.shape[-2:]).amax(dim=2)
            return torch.cat([first, rest], dim=1)
        if frames == 1:  # an image: more target masks than reference masks is a missing reference mask
            k = self.per_frame.shape[0]
            raise ValueError(f"reference_mask: {k * f} target masks but {k} reference mask(s), and the target is an "
                             f"image: give one reference mask per object (each target mask is an object), in the "
                             "same order as target_mask")
        video = f"{stride * (frames - 1) + 1} frames, {frames} latent frames"
        raise ValueError(f"target_mask: {f} masks per object, but the target is {video}; give one mask per frame, "
                         "one per latent frame, or one mask for all frames")

    def resolve_ref_ids(self, n_refs: int) -> tuple[int, ...]:
        if self.ref_ids is None:
            return tuple(range(self.objects)) if n_refs == self.objects else (0,) * self.objects
        bad = [r + 1 for r in self.ref_ids if r >= n_refs]
        if bad:
            raise ValueError(
                f"reference_of_object: reference {bad} named but only {n_refs} reference image(s) are connected "
                "to Semantic Match Patch; connect more references or change reference_of_object"
            )
        return self.ref_ids

    def check_aspect(self, latent_hw: tuple[int, int], which: str, stride: int = 8):
        """Refuse masks whose aspect does not fit a latent of ``latent_hw`` (``stride`` image pixels per latent
        pixel: the VAE's, for the message)."""
        stack = self.target if which == "target" else self.reference
        h, w = stack.shape[-2:]
        if (h, w) == (1, 1):
            return
        lh, lw = latent_hw
        if abs(h / w - lh / lw) > 0.02 * (lh / lw) + 1.0 / min(lh, lw):
            raise ValueError(
                f"{which}_mask: mask of {w}x{h} does not fit the {which} image ({lw * stride}x{lh * stride}); use masks made "
                f"from the {which} image, or set Load Masks' width/height/crop to the ImageScale settings used "
                "for the images"
            )

    def resized(self, h: int, w: int, which: str) -> torch.Tensor:
        """Masks ``[K, 1, h, w]`` resized bilinearly (soft weights, used for AdaIN on latents)."""
        stack = self.target if which == "target" else self.reference
        return F.interpolate(stack[:, None], size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
