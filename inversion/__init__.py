"""Exact inversion of images along a diffusion sampling schedule (torch only; ComfyUI objects come in as
a ``denoise(x, sigma)`` callable)."""

from .ddim import invert_ddim, sample_ddim
from .edit_friendly import invert_edit_friendly, sample_edit_friendly, wide_dtype
from .noise import frame_shared_noise, independent_noise
from .steps import ancestral_sigmas, euler_step, posterior_mean
from .trajectory import METHODS, Inversion, ModelFingerprint

__all__ = [
    "METHODS",
    "Inversion",
    "ModelFingerprint",
    "ancestral_sigmas",
    "euler_step",
    "frame_shared_noise",
    "independent_noise",
    "invert_ddim",
    "invert_edit_friendly",
    "posterior_mean",
    "sample_ddim",
    "sample_edit_friendly",
    "wide_dtype",
]
