"""Feature injection: replace matched target tokens with their reference tokens."""

from __future__ import annotations

import torch

__all__ = ["rearrange"]


def _check_args(out, ref_flat, src, strength) -> None:
    """Validate :func:`rearrange`'s arguments (shapes, dtypes, devices and types only: no sync)."""
    for name, t in (("out", out), ("ref_flat", ref_flat), ("src", src)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if out.ndim not in (2, 3):
        raise ValueError(f"out must have shape [N, C] or [B, N, C], got {tuple(out.shape)}")
    batched = out.ndim == 3
    if ref_flat.ndim != out.ndim:
        layout = "[B, R*M, C]" if batched else "[R*M, C]"
        raise ValueError(
            f"ref_flat must have shape {layout} to go with out {tuple(out.shape)}, got {tuple(ref_flat.shape)}"
        )
    if ref_flat.shape[-1] != out.shape[-1]:
        raise ValueError(f"ref_flat has {ref_flat.shape[-1]} channels, out has {out.shape[-1]} (must match)")
    if not out.is_floating_point() or not ref_flat.is_floating_point():
        bad = "out" if not out.is_floating_point() else "ref_flat"
        raise ValueError(f"{bad} must be a floating-point tensor")
    if src.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"src must be an integer tensor of indices, got {src.dtype}")
    if tuple(src.shape) != tuple(out.shape[:-1]):
        raise ValueError(
            f"src must have shape {tuple(out.shape[:-1])} (out without channels), got {tuple(src.shape)}"
        )
    if batched and ref_flat.shape[0] not in (1, out.shape[0]):
        raise ValueError(f"ref_flat has batch size {ref_flat.shape[0]}, expected {out.shape[0]} (or 1)")
    for name, t in (("ref_flat", ref_flat), ("src", src)):
        if t.device != out.device:
            raise ValueError(f"{name} is on {t.device}, expected {out.device} (same device as out)")
    if (
        isinstance(strength, torch.Tensor)
        or isinstance(strength, bool)
        or not isinstance(strength, (int, float))
    ):
        raise ValueError(f"strength must be a Python float, got {type(strength).__name__}")


def rearrange(
    out: torch.Tensor, ref_flat: torch.Tensor, src: torch.Tensor, strength: float = 1.0
) -> torch.Tensor:
    """Gather the matched reference rows into the target's token sequence.

    Args:
        out: ``[N, C]`` or ``[B, N, C]`` target features (the attn1 input of the ``out`` branch).
        ref_flat: ``[R * M, C]`` (or ``[B, R * M, C]``, ``B`` may be 1 to broadcast) reference features,
            all references' tokens one after the other (``refs.reshape(-1, C)``).
        src: ``[N]`` (or ``[B, N]``) integer indices from :func:`match_tokens` / :func:`match_objects`;
            ``-1`` = keep the target token. Other indices must lie in ``[0, R * M)``.
        strength: 1.0 replaces matched rows with the reference rows exactly; below 1 they become
            ``out + strength * (ref - out)``.

    Returns:
        A new tensor shaped, typed and placed like ``out``: matched rows replaced (reference rows cast to
        ``out.dtype``), unmatched rows bit-identical to ``out``. No host synchronisation.
    """
    _check_args(out, ref_flat, src, strength)

    C = out.shape[-1]
    idx = src.long()
    keep = idx < 0
    idx = idx.clamp_min(0)
    if out.ndim == 3:
        if ref_flat.shape[0] != out.shape[0]:
            ref_flat = ref_flat.expand(out.shape[0], -1, -1)
        picked = torch.gather(ref_flat, 1, idx.unsqueeze(-1).expand(-1, -1, C))
    else:
        picked = ref_flat.index_select(0, idx.reshape(-1))
    picked = picked.to(out.dtype)
    if strength != 1.0:
        picked = out + float(strength) * (picked - out)
    return torch.where(keep.unsqueeze(-1), out, picked)
