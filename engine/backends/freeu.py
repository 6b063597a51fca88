"""The authors' FreeU: the FreeU variant built into the authors' UNet (Authors' FreeU's engine).

The authors' UNet (their ``FreeUUNet2DConditionModel``) changes the decoder's *backbone* at the entry of every
decoder stage (a diffusers "up block"), before the stage's first block, during inversion and sampling alike:

* input with ``4 * model_channels`` channels (1280 in SD1.5): the first half of the channels x ``b1``, then a
  Fourier filter of the whole backbone that scales the lowest frequencies (a ``2 * threshold`` square around
  the centre of the shifted spectrum) by ``s1``;
* input with ``2 * model_channels`` channels (640): first half x ``b2``, filter scale ``s2``.

ComfyUI's own FreeU node filters the *skip* connections, at every decoder block with those widths, with other
defaults: a different model. Here the variant is an output-block patch on a clone; the input MODEL is untouched
and bypassing the node removes it completely.
"""

from __future__ import annotations

import logging

import torch

from ..models import defaults as authors
from ..models.variant import FREEU_KEY

log = logging.getLogger("eye_for_an_eye")


def _low_frequency_mask(h: int, w: int, threshold: int, scale: float, device: torch.device) -> torch.Tensor:
    """Ones, with ``scale`` on the ``2 * threshold`` square around the centre of an fftshift-ed ``h x w`` spectrum."""
    mask = torch.ones((h, w), device=device)
    cy, cx = h // 2, w // 2
    mask[cy - threshold:cy + threshold, cx - threshold:cx + threshold] = scale  # Python slicing, as theirs
    return mask


class FourierFilter:
    """Scales the centred low frequencies of ``x`` ``[B, C, H, W]`` (FFT in float32). One per patched model: it
    keeps that model's spectrum masks (made once per map size and device: the patch runs at every decoder-stage
    entry of every step) and whether the FFT failed on a device (some backends have none for some inputs; the
    filter then runs on the CPU, as ComfyUI's FreeU does)."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self.masks: dict = {}
        self.fft_failed: set[str] = set()

    def _filter(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
        key = (freq.shape[-2], freq.shape[-1], float(scale), str(x.device))
        if key not in self.masks:
            self.masks[key] = _low_frequency_mask(freq.shape[-2], freq.shape[-1], self.threshold, float(scale),
                                                  x.device)
        freq = torch.fft.ifftshift(freq * self.masks[key], dim=(-2, -1))
        return torch.fft.ifftn(freq, dim=(-2, -1)).real

    def __call__(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if x.device.type not in self.fft_failed:
            try:
                return self._filter(x, scale).to(x.dtype)
            except Exception:  # backends raise several types (NotImplementedError, RuntimeError)
                self.fft_failed.add(x.device.type)
                log.warning("Authors' FreeU: the FFT failed on %s; filtering on the CPU", x.device.type)
        return self._filter(x.cpu(), scale).to(device=x.device, dtype=x.dtype)


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Scale the centred low frequencies of ``x`` ``[B, C, H, W]`` by ``scale`` (a filter of its own)."""
    return FourierFilter(threshold)(x, scale)


def stage_entries(unet) -> set[int]:
    """Output-block ids where a decoder stage starts (SD1.5: 0, 3, 6, 9; SDXL: 0, 3, 6)."""
    per_level = list(unet.num_res_blocks)
    entries, i = set(), 0
    for level in reversed(range(len(per_level))):
        entries.add(i)
        i += per_level[level] + 1
    return entries


def authors_freeu_patch(unet, b1: float, b2: float, s1: float, s2: float, threshold: int):
    """The output-block patch ``(h, hsp, transformer_options) -> (h, hsp)``."""
    entries = stage_entries(unet)
    by_width = {4 * unet.model_channels: (b1, s1), 2 * unet.model_channels: (b2, s2)}
    fourier = FourierFilter(threshold)

    def patch(h, hsp, transformer_options):
        block = transformer_options.get("block")
        factors = by_width.get(h.shape[1])
        if factors is None or block is None or block[0] != "output" or block[1] not in entries:
            return h, hsp
        b, s = factors
        half = h.shape[1] // 2
        h = torch.cat([h[:, :half] * b, h[:, half:]], dim=1)
        return fourier(h, s), hsp

    return patch


def apply_authors_freeu(model, b1: float, b2: float, s1: float, s2: float, threshold: int = authors.FREEU_THRESHOLD):
    """A clone of ``model`` with the authors' FreeU; ``model`` itself is not touched."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = getattr(getattr(model, "model", None), "diffusion_model", None)
    if not isinstance(unet, UNetModel):
        raise ValueError(f"model: the authors' FreeU changes a UNet decoder (SD1.x, SD2.x, SDXL); this "
                         f"{type(unet).__name__} model has none. Bypass Authors' FreeU for it.")
    if FREEU_KEY in model.model_options:
        raise ValueError("model: this MODEL already has the authors' FreeU; apply it once")
    m = model.clone()
    m.set_model_output_block_patch(authors_freeu_patch(unet, b1, b2, s1, s2, threshold))  # part of the variant
    m.model_options[FREEU_KEY] = (float(b1), float(b2), float(s1), float(s2), int(threshold))
    return m
