"""Masks on token maps: image/latent masks to per-token bool masks, and token-map shapes of UNet layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mask_to_tokens", "token_grid"]


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


def token_grid(n_tokens: int, latent_h: int, latent_w: int) -> tuple[int, int]:
    """Token-map shape ``(h, w)`` of a UNet layer with ``n_tokens`` tokens for a ``latent_h x latent_w`` latent.

    The UNet halves the spatial size with stride-2 convolutions (padding 1, kernel 3), which map a side
    ``s`` to ``(s + 1) // 2``. For ``k = 0, 1, 2, ...`` (downsampling factor ``2**k``) the sides are halved
    ``k`` times that way; the first ``k`` with ``h * w == n_tokens`` wins. Example: a 45x63 latent gives
    45x63, 23x32, 12x16, 6x8, 3x4, 2x2, 1x1.

    Raises:
        ValueError: when no factor fits ``n_tokens`` (or an argument is not a positive int).
    """
    n_tokens = _positive_int("n_tokens", n_tokens)
    h = _positive_int("latent_h", latent_h)
    w = _positive_int("latent_w", latent_w)
    tried = []
    while True:
        if h * w == n_tokens:
            return h, w
        tried.append(f"{h}x{w}")
        if h == 1 and w == 1:
            break
        h, w = (h + 1) // 2, (w + 1) // 2
    raise ValueError(
        f"n_tokens={n_tokens} fits no token map of a {latent_h}x{latent_w} latent (tried {', '.join(tried)})"
    )
