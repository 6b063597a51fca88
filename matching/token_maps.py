"""Masks on token maps: image/latent masks to per-token bool masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mask_to_tokens"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def mask_to_tokens(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Downsample a mask to a token map and flatten it, as the method does.

    Args:
        mask: ``[H, W]`` or ``[B, H, W]``; float values in 0..1 (soft edges allowed) or bool. Any size and
            aspect ratio.
        h, w: the token map's height and width.

    Returns:
        bool ``[h * w]`` (or ``[B, h * w]``), row-major (token ``i * w + j`` is row ``i``, column ``j``):
        the mask resized with ``F.interpolate(mode='bilinear', align_corners=False)`` (computed in float32)
        and thresholded at ``> 0``, so any token touched by a non-zero value after interpolation counts.
        No host synchronisation.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must have shape [H, W] or [B, H, W], got {tuple(mask.shape)}")
    if not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise ValueError(f"mask must be a float (0..1) or bool tensor, got {mask.dtype}")
    h = _positive_int("h", h)
    w = _positive_int("w", w)
    if mask.shape[-2] == 0 or mask.shape[-1] == 0:
        raise ValueError(f"mask has an empty spatial size {tuple(mask.shape[-2:])}")
    m = mask if mask.ndim == 3 else mask.unsqueeze(0)
    m = m.to(torch.float32).unsqueeze(1)
    if tuple(m.shape[-2:]) != (h, w):
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    tokens = (m > 0).reshape(m.shape[0], h * w)
    return tokens if mask.ndim == 3 else tokens[0]
