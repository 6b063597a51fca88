"""The object masks of a transfer from the nodes' inputs (Load Masks' engine), validated before any heavy work."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...matching import ObjectMasks, fit_masks
from .mask_files import load_mask_files

COLOURS = torch.tensor([[1.0, 0.35, 0.3], [0.3, 0.75, 1.0], [0.4, 1.0, 0.4], [1.0, 0.85, 0.3],
                        [0.85, 0.45, 1.0], [0.3, 1.0, 0.9]])


def parse_reference_of_object(text: str) -> tuple[int, ...] | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        ids = tuple(int(p) - 1 for p in text.replace(";", ",").split(",") if p.strip())
    except ValueError:
        raise ValueError(f"reference_of_object: {text!r} is not a list of reference numbers like '1,2'") from None
    return ids


def _stack(mask, name):
    if mask is None:
        return None
    m = mask if mask.ndim == 3 else mask[None]
    if m.ndim != 3:
        raise ValueError(f"{name}: expected a MASK [H, W] or [K, H, W], got shape {list(mask.shape)}")
    return m.float()


def _check_image(mask: torch.Tensor, image, name: str, image_name: str, index: int | None = None):
    if image is None:
        return
    img = image[0 if index is None else min(index, image.shape[0] - 1)]
    if tuple(mask.shape[-2:]) != tuple(img.shape[:2]):
        raise ValueError(
            f"{name}: masks are {mask.shape[-1]}x{mask.shape[-2]} but {image_name} is {img.shape[1]}x{img.shape[0]}; "
            "make the masks from that image (or resize them to it)"
        )


def preview(masks: ObjectMasks, target_image=None, reference_image=None, height: int = 256) -> torch.Tensor:
    """``[K, height, W, 3]``: per object, the target mask | the reference mask, tinted over the images if given."""
    panels = []
    for k in range(masks.objects):
        colour = COLOURS[k % len(COLOURS)]
        row = []
        for stack, image, idx in ((masks.target, target_image, 0),
                                  (masks.reference, reference_image, (masks.ref_ids or [k] * masks.objects)[k])):
            m = stack[k]
            if image is not None:
                base = image[min(idx, image.shape[0] - 1)].float()
            else:
                base = torch.full((*m.shape, 3), 0.5) if m.shape != (1, 1) else torch.full((height, height, 3), 0.5)
            hh, ww = base.shape[:2]
            mm = F.interpolate(m[None, None], size=(hh, ww), mode="bilinear", align_corners=False)[0, 0, ..., None]
            tinted = base * (1 - 0.6 * mm) + colour * 0.6 * mm
            w = max(1, round(ww * height / hh))
            row.append(F.interpolate(tinted.permute(2, 0, 1)[None], size=(height, w), mode="bilinear",
                                     align_corners=False)[0].permute(1, 2, 0))
        panels.append(torch.cat([row[0], torch.ones(height, 4, 3), row[1]], dim=1))
    width = max(p.shape[1] for p in panels)
    return torch.stack([F.pad(p, (0, 0, 0, width - p.shape[1])) for p in panels]).clamp(0, 1)




def load_masks(reference_of_object: str, invert: bool, width=0, height=0, crop="disabled", target_mask=None,
               reference_mask=None, target_mask_file="", reference_mask_file="", target_image=None,
               reference_image=None) -> ObjectMasks:
    """The object masks from MASK inputs or mask files, resized like the images, checked against the images."""
    ref_ids = parse_reference_of_object(reference_of_object)
    tgt = _stack(target_mask, "target_mask")
    ref = _stack(reference_mask, "reference_mask")
    if (target_mask_file or "").strip():
        if tgt is not None:
            raise ValueError("target_mask_file: give either target_mask or target_mask_file, not both")
        tgt = load_mask_files(target_mask_file, "target_mask_file")
    if (reference_mask_file or "").strip():
        if ref is not None:
            raise ValueError("reference_mask_file: give either reference_mask or reference_mask_file, not both")
        ref = load_mask_files(reference_mask_file, "reference_mask_file")
    if tgt is None and ref is None:
        return ObjectMasks.whole_image() if ref_ids is None else ObjectMasks(
            torch.ones(len(ref_ids), 1, 1), torch.ones(len(ref_ids), 1, 1), ref_ids)
    if tgt is None or ref is None:
        missing = "target_mask" if tgt is None else "reference_mask"
        raise ValueError(f"{missing}: masks were given for one side only; give target and reference masks "
                         "for each object (or none for whole images)")
    if invert:
        tgt, ref = 1.0 - tgt, 1.0 - ref
    tgt, ref = fit_masks(tgt, width, height, crop), fit_masks(ref, width, height, crop)
    k = ref.shape[0]
    if tgt.shape[0] > k and tgt.shape[0] % k == 0:  # a video: every object's masks, frame by frame
        masks = ObjectMasks.of_frames(tgt.reshape(k, tgt.shape[0] // k, *tgt.shape[-2:]), ref, ref_ids)
    else:
        masks = ObjectMasks(tgt, ref, ref_ids)  # validates counts and emptiness first
    _check_image(tgt, target_image, "target_mask", "target_image")
    if reference_image is not None:
        ids = ref_ids or tuple(range(ref.shape[0]))
        for k in range(ref.shape[0]):
            _check_image(ref[k:k + 1], reference_image, "reference_mask", "reference_image",
                         ids[k] if reference_image.shape[0] > 1 else 0)
    return masks
