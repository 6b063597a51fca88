"""Masked AdaIN on latents: match the channel statistics of the target region to the reference region."""

from __future__ import annotations

import torch

__all__ = ["masked_adain"]


def _check_latents(x, ref) -> None:
    """``x``, ``ref``: float ``[B, C, H, W]`` latents on one device, same ``C``, ``ref``'s batch 1 or B."""
    for name, t in (("x", x), ("ref", ref)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if ref.device != x.device:
        raise ValueError(f"ref is on {ref.device}, expected {x.device} (same device as x)")
    if ref.shape[1] != x.shape[1]:
        raise ValueError(f"ref has {ref.shape[1]} channels, x has {x.shape[1]} (must match)")
    if ref.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"ref has batch size {ref.shape[0]}, expected {x.shape[0]} (or 1 to broadcast)")


def _weights(name: str, mask, like: torch.Tensor) -> torch.Tensor:
    """Mask as ``[B or 1, 1, H, W]`` float32 weights for ``like`` ``[B, C, H, W]``; None -> ones."""
    B, _, H, W = like.shape
    if mask is None:
        return torch.ones(1, 1, H, W, dtype=torch.float32, device=like.device)
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.device != like.device:
        raise ValueError(f"{name} is on {mask.device}, expected {like.device}")
    if not (mask.is_floating_point() or mask.dtype == torch.bool):
        raise ValueError(f"{name} must be float weights in 0..1 (or bool), got {mask.dtype}")
    if mask.ndim == 2:
        m = mask[None, None]
    elif mask.ndim == 3:
        if mask.shape[0] != 1:
            raise ValueError(f"{name} as a 3-d tensor must be [1, H, W], got {tuple(mask.shape)}")
        m = mask[None]
    elif mask.ndim == 4:
        if mask.shape[1] != 1 or mask.shape[0] not in (1, B):
            raise ValueError(f"{name} must be [B, 1, H, W] with B in (1, {B}), got {tuple(mask.shape)}")
        m = mask
    else:
        raise ValueError(f"{name} must be [B, 1, H, W], [1, H, W] or [H, W], got {tuple(mask.shape)}")
    if tuple(m.shape[-2:]) != (H, W):
        raise ValueError(f"{name} has spatial size {tuple(m.shape[-2:])}, expected {(H, W)}")
    return m.to(torch.float32)


def _stats(x: torch.Tensor, w: torch.Tensor, eps: float, unbiased: bool):
    """Weighted per-channel mean and std over H, W. x [B,C,H,W] fp32, w [B|1,1,H,W] fp32.

    ``unbiased``: the variance divides by ``sum(w) - 1`` (Bessel's correction, as ``torch.var``; with 0/1 weights
    exactly the sample variance of the masked pixels), by ``sum(w)`` where that is 1 or less.
    """
    total = w.sum(dim=(2, 3), keepdim=True)  # [B|1,1,1,1]
    tiny = torch.finfo(torch.float32).tiny
    denom = total.clamp_min(tiny)
    mean = (x * w).sum(dim=(2, 3), keepdim=True) / denom
    if unbiased:
        denom = torch.where(total > 1, total - 1, denom)
    var = ((x - mean).square() * w).sum(dim=(2, 3), keepdim=True) / denom
    return mean, (var + eps).sqrt(), total


def _check_not_empty(**weights: torch.Tensor) -> None:
    """check=True only: every weight map must have a positive sum in every batch element. Syncs."""
    for name, w in weights.items():
        if bool((w.sum(dim=(1, 2, 3)) <= 0).any()):
            raise ValueError(f"{name} is empty (sums to zero) in some batch element")


def _normalise(
    xf: torch.Tensor, sx: torch.Tensor, ref: torch.Tensor, sr: torch.Tensor, eps: float, unbiased: bool
):
    """AdaIN of float32 ``xf`` (statistics weighted by ``sx``) to ``ref`` (weighted by ``sr``, in float32).

    Returns ``(x_new, total_r)``: ``(xf - mean_x) / std_x * std_r + mean_r`` and the reference weight sums
    ``[B|1,1,1,1]``.
    """
    mean_x, std_x, _ = _stats(xf, sx, eps, unbiased)
    mean_r, std_r, total_r = _stats(ref.to(torch.float32), sr, eps, unbiased)
    return (xf - mean_x) / std_x * std_r + mean_r, total_r


def _blend(
    x: torch.Tensor, xf: torch.Tensor, x_new: torch.Tensor, wx: torch.Tensor, total_r: torch.Tensor, strength
):
    """``wx * x_new + (1 - wx) * xf`` in ``x``'s dtype, ``x_new`` first moved towards ``xf`` by ``strength``."""
    if strength != 1.0:
        x_new = xf + float(strength) * (x_new - xf)
    blended = wx * x_new + (1.0 - wx) * xf
    # Outside the mask (weight 0) and where the reference region is empty, keep x bit for bit.
    inside = (wx > 0) & (total_r > 0)
    return torch.where(inside, blended.to(x.dtype), x)


def masked_adain(
    x: torch.Tensor,
    ref: torch.Tensor,
    x_mask: torch.Tensor | None = None,
    ref_mask: torch.Tensor | None = None,
    eps: float = 1e-5,
    strength: float = 1.0,
    *,
    check: bool = True,
    x_stats_mask: torch.Tensor | None = None,
    ref_stats_mask: torch.Tensor | None = None,
    unbiased: bool = True,
) -> torch.Tensor:
    """Masked AdaIN: inside ``x_mask``, give ``x`` the per-channel mean/std that ``ref`` has inside ``ref_mask``.

    Args:
        x: ``[B, C, H, W]`` latent to change (the ``out`` branch).
        ref: ``[B, C, H', W']`` or ``[1, C, H', W']`` reference latent (broadcast over ``x``'s batch).
        x_mask, ref_mask: weights in 0..1 shaped ``[B, 1, H, W]``, ``[1, H, W]`` or ``[H, W]`` (spatial size
            of their own latent), or ``None`` for the whole latent. The statistics are weighted by the mask
            (mean = sum(w x) / sum(w), variance sum(w (x - mean)^2) / (sum(w) - 1), see ``unbiased``).
        eps: added to the variances before the square root.
        strength: 1.0 = full transfer; below 1 the normalised latent is blended towards ``x``.
        check: raise if a mask sums to zero in some batch element (synchronises). With ``check=False`` no
            host synchronisation happens and a batch element whose ``ref_mask`` is empty is left unchanged.
        x_stats_mask, ref_stats_mask: optional weights (same shapes as the masks) used for the statistics
            instead of ``x_mask`` / ``ref_mask``, e.g. only the pixels fully inside the object (as the authors'
            code computes them); blending still uses ``x_mask``.
        unbiased: variances with Bessel's correction, as the authors' ``tensor.var()`` (default); ``False`` for
            the population variance.

    Returns:
        ``x_mask * x_new + (1 - x_mask) * x`` in ``x``'s dtype, where
        ``x_new = x + strength * ((x - mean_x) / std_x * std_ref + mean_ref - x)``. Where ``x_mask`` is 0 the
        output is bit-identical to ``x``. Statistics are computed in float32.
    """
    _check_latents(x, ref)
    wx = _weights("x_mask", x_mask, x)
    wr = _weights("ref_mask", ref_mask, ref)
    if check:
        _check_not_empty(x_mask=wx, ref_mask=wr)

    sx = wx if x_stats_mask is None else _weights("x_stats_mask", x_stats_mask, x)
    sr = wr if ref_stats_mask is None else _weights("ref_stats_mask", ref_stats_mask, ref)
    xf = x.to(torch.float32)
    x_new, total_r = _normalise(xf, sx, ref, sr, eps, unbiased)
    return _blend(x, xf, x_new, wx, total_r, strength)
