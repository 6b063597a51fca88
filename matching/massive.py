"""The channels of "massive activations" in a diffusion transformer's tokens, found by their size alone.

In real DiTs (Flux, SD3.5) a handful of channels carry values tens of times larger than the rest, nearly the
same at every image token (DiTF, arXiv 2505.18584: on Flux.1 two channels around +41 with a spread of 4, against
about 3 for the others; on SD3.5 one channel near -45). Such a channel adds almost the same large term to every
similarity and dominates every norm, so cosine similarity mostly measures it; DiTF leaves these channels out
before matching (+1.8 PCK on SPair-71k over its AdaLN-modulated features alone). Their indices differ between
models, so here they are found at every call from the features themselves: a channel whose mean magnitude over
the call's tokens is more than ``ratio`` times the median channel's, and whose values vary little from token to
token (spread below ``spread`` times its mean magnitude), at most ``most`` channels. Features without such channels
(the toy models, the UNets) keep every channel. Pure torch, no host synchronisation.
"""

from __future__ import annotations

import torch

__all__ = ["keep_ordinary_channels"]

RATIO = 8.0
SPREAD = 0.5
MOST = 8


def keep_ordinary_channels(*features: torch.Tensor, ratio: float = RATIO, spread: float = SPREAD,
                           most: int = MOST) -> torch.Tensor:
    """``[C]`` in the features' dtype: 0 for the channels of massive activations of ``features`` (each
    ``[..., C]``, the same ``C``; statistics over all their tokens together), 1 for every other channel."""
    dims = [tuple(range(f.ndim - 1)) for f in features]
    count = sum(f[..., 0].numel() for f in features)
    # sums over the tokens as reductions (no float32 copy of the features)
    absolute = sum(torch.linalg.vector_norm(f, 1, dim=d, dtype=torch.float32) for f, d in zip(features, dims))
    square = sum(torch.linalg.vector_norm(f, 2, dim=d, dtype=torch.float32) ** 2 for f, d in zip(features, dims))
    total = sum(f.sum(dim=d, dtype=torch.float32) for f, d in zip(features, dims))
    magnitude = absolute / count  # [C]
    mean = total / count
    spread_now = (square / count - mean * mean).clamp(min=0).sqrt()
    scale = magnitude.median()
    steady = spread_now < spread * magnitude
    massive = (magnitude > ratio * scale) & steady
    top = magnitude.masked_fill(~massive, -1.0).topk(min(most, magnitude.shape[0])).indices
    drop = torch.zeros_like(massive).index_fill_(0, top, True) & massive
    return (~drop).to(features[0].dtype)
