"""Checks of the nodes' inputs that ComfyUI's own validation lets through, each naming the input."""

from __future__ import annotations

import math

import torch


def finite(**values) -> None:
    """Refuse NaN and infinite numbers (ComfyUI's min/max checks let a JSON ``NaN`` through)."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: {value} is not a number; give a finite value")


def image_latent(latent, name: str, dims: int = 2):
    """An image latent ``[B, C, H, W]`` (``dims`` 3: a video latent ``[B, C, T, H, W]``, which an image is as
    ``T = 1``) with finite values, else a clear error (before any model call)."""
    want = "an image latent [B, C, H, W]" if dims == 2 else "a video latent [B, C, T, H, W]"
    if not isinstance(latent, torch.Tensor) or latent.ndim != dims + 2:
        shape = list(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
        raise ValueError(f"{name}: expected {want}, got {shape}")
    if not bool(torch.isfinite(latent).all()):
        raise ValueError(f"{name}: the latent holds NaN or infinite values; check the image and the VAE Encode "
                         "before it (an fp16 VAE can overflow: try the VAE in fp32 or bf16)")
