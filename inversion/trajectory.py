"""The result of an inversion: one light object a later node can use and check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

METHODS = ("ddpm_edit_friendly", "ddim")


@dataclass(frozen=True)
class ModelFingerprint:
    """What an inversion was made with, so a later node can refuse a mismatch with a clear message."""

    family: str  # "sd1", "sd2", "sdxl", "flux", "sd3"
    prediction: str  # "eps", "v" or "flow"
    model_class: str  # ComfyUI model_config class name, e.g. "SD15"
    model_id: int  # id() of the underlying comfy BaseModel (shared by clones of one loaded checkpoint)
    freeu: tuple | None = None  # the authors' FreeU settings (b1, b2, s1, s2, threshold) the model carried
    variant: tuple = ()  # (what, label, identity) of every patch that changes the denoiser (weights, sampling, ...)

    def describe(self) -> str:
        return f"{self.model_class} ({self.family}, {self.prediction}-prediction)"

    def differences(self, other: ModelFingerprint) -> list[str]:
        """What ``other`` has that this one lacks and the reverse, in words (empty: the same denoiser)."""
        if self.model_id != other.model_id or self.model_class != other.model_class:
            return [f"another model ({self.describe()} / {other.describe()})"]
        mine, theirs = set(self.variant), set(other.variant)
        out = [f"{label} ({what})" for what, label, _ in sorted(mine - theirs)]
        out += [f"{label} ({what})" for what, label, _ in sorted(theirs - mine) if (what, label) not in
                {(w, lab) for w, lab, _ in mine}]
        return sorted(set(out))


@dataclass
class Inversion:
    """Latents of an inverted image along a sampling schedule (ComfyUI sampling space).

    ``latents[i]`` (shape ``[B, C, H, W]``) sits at ``sigmas[i]``; ``latents[-1]`` is the clean latent.
    ``residuals[i]`` (edit-friendly only) is what the DDPM sampler adds on step ``i -> i+1``.
    Sampling starts at ``start_step`` (the authors skip 32 of 100 steps).
    """

    method: str
    sigmas: torch.Tensor
    latents: torch.Tensor
    residuals: torch.Tensor | None
    start_step: int
    eta: float
    cfg: float
    fingerprint: ModelFingerprint
    scheduler: str = "normal"
    flow: bool = False  # rectified flow (Flux, SD3): x = (1 - sigma) x0 + sigma noise, rectified-flow steps
    asked_steps: int | None = None  # the steps the schedule was asked for (some schedulers give one more or less)
    # the steps' sigmas (float64, CPU) and their logs, looked up at every model call; made once, here
    _step_sigmas: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {METHODS}")
        if self.latents.shape[0] != len(self.sigmas):
            raise ValueError("latents: one latent per sigma expected")
        if not 0 <= self.start_step < self.steps:
            raise ValueError(f"start_step: {self.start_step} outside 0..{self.steps - 1}")
        s = self.sigmas[:-1].detach().cpu().double().clamp(min=1e-8)
        self._step_sigmas = (s, s.log())

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    @property
    def batch(self) -> int:
        return self.latents.shape[1]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.latents.shape[2:])

    def start_latent(self) -> torch.Tensor:
        return self.latents[self.start_step]

    def sampling_sigmas(self) -> torch.Tensor:
        return self.sigmas[self.start_step :]

    def nearest_step(self, sigma: float) -> tuple[int, float]:
        """Index of the stored sigma nearest to ``sigma`` (in log space) and the relative distance."""
        s, log_s = self._step_sigmas
        target = max(float(sigma), 1e-8)
        i = int(torch.argmin((log_s - math.log(target)).abs()))
        return i, abs(float(s[i]) - target) / target

    def stock_sampler_advice(self) -> str:
        """How to sample this inversion with a stock sampler (KSamplerAdvanced): the inputs to set, as the user
        types them (the ``steps`` the schedule was asked for, which the sampler asks for again)."""
        steps = self.asked_steps if self.asked_steps is not None else self.steps
        return f"Sample with steps={steps}, scheduler={self.scheduler}, start_at_step={self.start_step}"

    def select(self, index: int) -> Inversion:
        """The inversion of one image of the batch."""
        pick = slice(index, index + 1)
        return replace(
            self,
            latents=self.latents[:, pick],
            residuals=None if self.residuals is None else self.residuals[:, pick],
        )
