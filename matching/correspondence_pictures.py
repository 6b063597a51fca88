"""Pictures of a correspondence: where each target token takes its appearance from.

The reference token map is painted with a smooth colour code of position: red grows left to right, green
top to bottom (pixel centres, ``(j + 0.5) / w`` and ``(i + 0.5) / h``). The blue channel carries the
reference id:

* one reference (``n_refs == 1``): blue = ``1 - (red + green) / 2``, so the four corners are distinct
  (top-left blue, top-right magenta, bottom-left cyan, bottom-right yellow-ish);
* several references: blue = ``ref_id / (n_refs - 1)`` (0 for the first reference, 1 for the last), so
  the same position in different references differs only by its blue level.

A target token is drawn in the colour of the reference position it matched, so a correct semantic
correspondence shows the reference's colour layout warped onto the target's shape. Unmatched tokens are
grey. Outputs are float32 in 0..1, ``[H, W, 3]`` (ComfyUI's IMAGE layout without the batch dimension).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["position_colors", "reference_palette", "correspondence_image", "correspondence_panel"]


def _hw(name: str, value) -> tuple[int, int]:
    try:
        h, w = value
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a pair (h, w) of positive ints, got {value!r}") from exc
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a pair (h, w) of positive ints, got {value!r}")
    return h, w


def position_colors(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``[h, w, 3]`` float32 palette in 0..1: red = x, green = y, blue = ``1 - (x + y) / 2``."""
    h, w = _hw("(h, w)", (h, w))
    y = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
    x = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
    red = x.expand(h, w)
    green = y[:, None].expand(h, w)
    blue = 1.0 - (red + green) / 2
    return torch.stack([red, green, blue], dim=-1)


def reference_palette(h: int, w: int, ref_id: int = 0, n_refs: int = 1, device=None) -> torch.Tensor:
    """Palette of reference ``ref_id`` out of ``n_refs``: :func:`position_colors` for one reference, else
    red/green as position and blue = ``ref_id / (n_refs - 1)``."""
    if isinstance(n_refs, bool) or not isinstance(n_refs, int) or n_refs < 1:
        raise ValueError(f"n_refs must be a positive int, got {n_refs!r}")
    if isinstance(ref_id, bool) or not isinstance(ref_id, int) or not 0 <= ref_id < n_refs:
        raise ValueError(f"ref_id must be an int in [0, {n_refs}), got {ref_id!r}")
    pal = position_colors(h, w, device=device)
    if n_refs > 1:
        pal = pal.clone()
        pal[..., 2] = ref_id / (n_refs - 1)
    return pal


def _resize_nearest(img: torch.Tensor, size) -> torch.Tensor:
    if size is None or tuple(img.shape[:2]) == tuple(size):
        return img
    return F.interpolate(img.permute(2, 0, 1)[None], size=tuple(size), mode="nearest")[0].permute(1, 2, 0)


def correspondence_image(
    src: torch.Tensor,
    out_hw: Sequence[int],
    ref_hw: Sequence[int],
    n_refs: int = 1,
    size: Sequence[int] | None = None,
    unmatched: Sequence[float] = (0.15, 0.15, 0.15),
) -> torch.Tensor:
    """Colour every target token by the reference position it matched.

    Args:
        src: ``[N]`` flat indices from :func:`match_tokens` / :func:`match_objects` (``r * M + m``, ``-1`` =
            unmatched), ``N = out_h * out_w``.
        out_hw: target token map ``(out_h, out_w)``.
        ref_hw: reference token map ``(ref_h, ref_w)``, ``M = ref_h * ref_w``.
        n_refs: number of references ``R`` (indices must lie in ``[0, R * M)``).
        size: ``(H, W)`` to upsample the picture to (nearest neighbour), e.g. the image size.
        unmatched: RGB of unmatched tokens.

    Returns:
        ``[H, W, 3]`` float32 in 0..1 on ``src``'s device (``[out_h, out_w, 3]`` without ``size``).
        Matching a token map to itself (``src = arange(N)``) reproduces :func:`position_colors`.
    """
    if not isinstance(src, torch.Tensor):
        raise ValueError(f"src must be a torch.Tensor, got {type(src).__name__}")
    if src.ndim != 1:
        raise ValueError(f"src must have shape [N], got {tuple(src.shape)}")
    if src.is_floating_point() or src.is_complex() or src.dtype == torch.bool:
        raise ValueError(f"src must be an integer tensor, got {src.dtype}")
    oh, ow = _hw("out_hw", out_hw)
    rh, rw = _hw("ref_hw", ref_hw)
    if isinstance(n_refs, bool) or not isinstance(n_refs, int) or n_refs < 1:
        raise ValueError(f"n_refs must be a positive int, got {n_refs!r}")
    if size is not None:
        size = _hw("size", size)
    if src.shape[0] != oh * ow:
        raise ValueError(f"src has {src.shape[0]} tokens, out_hw {oh}x{ow} needs {oh * ow}")
    if len(unmatched) != 3:
        raise ValueError(f"unmatched must be an RGB triple, got {unmatched!r}")
    total = n_refs * rh * rw
    src = src.long()
    if src.numel() and (bool((src < -1).any()) or bool((src >= total).any())):
        raise ValueError(f"src holds indices outside [-1, {total}) for {n_refs} reference(s) of {rh}x{rw}")
    table = torch.cat(
        [reference_palette(rh, rw, r, n_refs, device=src.device).reshape(-1, 3) for r in range(n_refs)]
    )
    grey = torch.tensor([float(c) for c in unmatched], dtype=torch.float32, device=src.device)
    colours = table.index_select(0, src.clamp_min(0))
    colours = torch.where((src < 0).unsqueeze(-1), grey, colours)
    return _resize_nearest(colours.reshape(oh, ow, 3), size).contiguous()


def correspondence_panel(
    src: torch.Tensor,
    out_hw: Sequence[int],
    ref_hw: Sequence[int],
    n_refs: int = 1,
    size: Sequence[int] | None = None,
    unmatched: Sequence[float] = (0.15, 0.15, 0.15),
) -> torch.Tensor:
    """Reference palettes and the target's correspondence picture side by side.

    Returns ``[H, W * (1 + n_refs), 3]``: ``[palette of ref 0 | ... | palette of ref R-1 | target]``, every
    panel resized (nearest) to ``size = (H, W)`` (default: ``out_hw``), so the colour code can be read off.
    """
    target = correspondence_image(src, out_hw, ref_hw, n_refs, size=size, unmatched=unmatched)
    H, W = target.shape[:2]
    rh, rw = _hw("ref_hw", ref_hw)
    panels = [
        _resize_nearest(reference_palette(rh, rw, r, n_refs, device=src.device), (H, W))
        for r in range(n_refs)
    ]
    return torch.cat([*panels, target], dim=1).contiguous()
