"""The independent noise of edit-friendly inversion: drawn per image, from the seed *and* the image.

Edit-friendly inversion draws every noisy latent of the trajectory independently. If two images (the reference
and the target) were inverted with generators seeded alike, their trajectories would carry the same noise, and
in the early, noise-dominated steps cosine matching would pair tokens by position instead of by part. The
authors' code draws both images' noise from one running generator, so the two are independent. Here each image
of a batch gets a generator seeded from a hash of (seed, its latent's exact float32 values): two different images
never share noise whatever seeds the user sets (measured: correlation -8e-5), while the same latent with the
same seed gives the same noise, bit for bit. The hash takes the exact values: a latent that differs in its
last bits (another device's VAE encode, an fp16 round trip) gets other noise, as independent as any other. No
rounding avoids that (with thousands of values some always sit next to a rounding boundary), so none is done.
"""

from __future__ import annotations

import hashlib

import torch


def image_seed(seed: int, latent: torch.Tensor) -> int:
    """A 63-bit generator seed from ``seed`` and one image latent ``[C, H, W]``."""
    values = latent.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256()
    h.update(int(seed).to_bytes(8, "little", signed=False))
    h.update(str(tuple(values.shape)).encode())
    h.update(values.numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little") & (2**63 - 1)


def independent_noise(x0: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """Standard normal noise ``[steps, B, C, (T,) H, W]`` (float32, CPU) for a batch of image (or video) latents
    ``x0``.

    Image ``b`` gets its own generator (seeded by :func:`image_seed`), so its noise does not depend on what it
    is batched with.
    """
    if x0.ndim not in (4, 5):
        raise ValueError(f"x0: expected image latents [B, C, H, W] or video latents [B, C, T, H, W], got shape "
                         f"{list(x0.shape)}")
    per_image = []
    for b in range(x0.shape[0]):
        gen = torch.Generator().manual_seed(image_seed(seed, x0[b]))
        per_image.append(torch.randn((steps, *x0.shape[1:]), generator=gen, dtype=torch.float32))
    return torch.stack(per_image, dim=1)


def frame_shared_noise(x0: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """As :func:`independent_noise`, but a video latent ``[B, C, T, H, W]`` gets one draw ``[steps, B, C, 1, H, W]``
    for all its frames (each image still its own, seeded by its whole clip): where the clip stands still, every
    frame's noisy trajectory is the same, so the inversion adds no frame-to-frame change of its own. Image latents
    ``[B, C, H, W]`` get :func:`independent_noise` itself."""
    if x0.ndim != 5:
        return independent_noise(x0, steps, seed)
    per_image = []
    for b in range(x0.shape[0]):
        gen = torch.Generator().manual_seed(image_seed(seed, x0[b]))
        one = torch.randn((steps, x0.shape[1], 1, *x0.shape[3:]), generator=gen, dtype=torch.float32)
        per_image.append(one.expand(-1, -1, x0.shape[2], -1, -1))
    return torch.stack(per_image, dim=1).contiguous()
