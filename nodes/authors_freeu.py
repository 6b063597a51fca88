"""Authors' FreeU: the FreeU variant built into the authors' UNet, as a MODEL -> MODEL node.

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

import functools

import torch

from . import defaults as authors

FREEU_KEY = "e4e_authors_freeu"


@functools.lru_cache(maxsize=32)
def _low_frequency_mask(h: int, w: int, threshold: int, scale: float, device: torch.device) -> torch.Tensor:
    """Ones, with ``scale`` on the ``2 * threshold`` square around the centre of an fftshift-ed ``h x w`` spectrum
    (made once per map size: the patch runs at every decoder-stage entry of every step)."""
    mask = torch.ones((h, w), device=device)
    cy, cx = h // 2, w // 2
    mask[cy - threshold:cy + threshold, cx - threshold:cx + threshold] = scale  # Python slicing, as theirs
    return mask


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Scale the centred low frequencies of ``x`` ``[B, C, H, W]`` by ``scale`` (FFT in float32)."""
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    mask = _low_frequency_mask(freq.shape[-2], freq.shape[-1], threshold, float(scale), x.device)
    freq = torch.fft.ifftshift(freq * mask, dim=(-2, -1))
    return torch.fft.ifftn(freq, dim=(-2, -1)).real.to(x.dtype)


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

    def patch(h, hsp, transformer_options):
        block = transformer_options.get("block")
        factors = by_width.get(h.shape[1])
        if factors is None or block is None or block[0] != "output" or block[1] not in entries:
            return h, hsp
        b, s = factors
        half = h.shape[1] // 2
        h = torch.cat([h[:, :half] * b, h[:, half:]], dim=1)
        return fourier_filter(h, threshold, s), hsp

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
    m.set_model_output_block_patch(authors_freeu_patch(unet, b1, b2, s1, s2, threshold))
    m.model_options[FREEU_KEY] = (float(b1), float(b2), float(s1), float(s2), int(threshold))
    return m


def freeu_settings(model) -> tuple | None:
    """The authors' FreeU settings a MODEL carries, or None."""
    return getattr(model, "model_options", {}).get(FREEU_KEY)


class AuthorsFreeU:
    DESCRIPTION = (
        "The FreeU variant built into the Eye-for-an-eye authors' UNet: at the entry of each decoder stage the "
        "backbone's first half of channels is scaled (b1 where it has 4x the base width, b2 where 2x) and its "
        "lowest frequencies are scaled by s1 / s2. Put it once on the MODEL before both DDIM Invert Reference "
        "nodes and Semantic Match Patch, so that inversion and sampling see the same model, as in the authors' "
        "code. Not ComfyUI's FreeU node, which filters the skip connections at other blocks. SD1.x/SD2.x/SDXL."
    )
    CATEGORY = "appearance transfer/eye-for-an-eye"
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A clone of the model with the authors' FreeU; the input MODEL is not changed.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "An SD1.x, SD2.x or SDXL model."}),
                "b1": ("FLOAT", {"default": authors.FREEU_B1, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Backbone factor at the deepest decoder stages (4x base width: 1280 channels in SD1.5). Authors: 1.2 for SD1.5 (their code notes 1.1 for SD2.1); FreeU's SDXL value: 1.3."}),
                "b2": ("FLOAT", {"default": authors.FREEU_B2, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Backbone factor at the stage with 2x base width (640 channels in SD1.5). Authors: 1.4 (their code notes 1.2 for SD2.1); FreeU's SDXL value: 1.4."}),
                "s1": ("FLOAT", {"default": authors.FREEU_S1, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Scale of the lowest frequencies of the backbone where b1 applies (authors: 0.9)."}),
                "s2": ("FLOAT", {"default": authors.FREEU_S2, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Scale of the lowest frequencies of the backbone where b2 applies (authors: 0.2)."}),
            },
            "optional": {
                "threshold": ("INT", {"default": authors.FREEU_THRESHOLD, "min": 1, "max": 64, "tooltip": "Half side of the low-frequency square that s1/s2 scale (authors: 1)."}),
            },
        }

    def patch(self, model, b1, b2, s1, s2, threshold=authors.FREEU_THRESHOLD):
        return (apply_authors_freeu(model, b1, b2, s1, s2, threshold),)
