"""Authors' FreeU: the FreeU variant built into the authors' UNet, as a MODEL -> MODEL node."""

from __future__ import annotations

from ..engine.backends.checks import finite
from ..engine.backends.freeu import apply_authors_freeu
from ..engine.models import defaults as authors
from .types import CATEGORY


class AuthorsFreeU:
    DESCRIPTION = (
        "The FreeU variant built into the Eye-for-an-eye authors' UNet: at the entry of each decoder stage the "
        "backbone's first half of channels is scaled (b1 where it has 4x the base width, b2 where 2x) and its "
        "lowest frequencies are scaled by s1 / s2. Put it once on the MODEL before both DDIM Invert Reference "
        "nodes and Semantic Match Patch, so that inversion and sampling see the same model, as in the authors' "
        "code. Not ComfyUI's FreeU node, which filters the skip connections at other blocks. SD1.x/SD2.x/SDXL."
    )
    CATEGORY = CATEGORY
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
        finite(b1=b1, b2=b2, s1=s1, s2=s2)
        return (apply_authors_freeu(model, b1, b2, s1, s2, threshold),)
