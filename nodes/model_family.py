"""Which model family a MODEL is (SD1.x, SD2.x, SDXL), its prediction type, fingerprint and attention blocks."""

from __future__ import annotations

import comfy.model_base
import comfy.model_sampling
import comfy.supported_models
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ..inversion import ModelFingerprint
from .authors_freeu import freeu_settings


class UnsupportedModelError(ValueError):
    pass


def _family_of_config(mc) -> str | None:
    sm = comfy.supported_models
    if isinstance(mc, sm.SDXL) or type(mc).__name__ in ("SDXL", "SSD1B", "Segmind_Vega", "KOALA_700M", "KOALA_1B"):
        return "sdxl"
    if isinstance(mc, sm.SD20):
        return "sd2"
    if isinstance(mc, sm.SD15):
        return "sd1"
    return None


def model_family(model) -> str:
    """``"sd1"``, ``"sd2"`` or ``"sdxl"`` for a ComfyUI MODEL; a clear error for any other family."""
    base = getattr(model, "model", None)
    mc = getattr(base, "model_config", None)
    name = type(mc).__name__ if mc is not None else type(base).__name__
    family = _family_of_config(mc) if mc is not None else None
    unet = getattr(base, "diffusion_model", None)
    if family is None or not isinstance(unet, UNetModel) or isinstance(base, comfy.model_base.SDXLRefiner):
        raise UnsupportedModelError(
            f"model: this is a {name} model; Eye-for-an-eye appearance transfer supports the UNet families "
            "SD1.x, SD2.x (eps and v-prediction) and SDXL. Load one of those checkpoints."
        )
    if getattr(unet, "in_channels", 4) != 4:
        raise UnsupportedModelError(
            f"model: this {name} model takes {unet.in_channels} input channels (an inpainting or instruct model); "
            "the transfer needs the plain text-to-image checkpoint of that family."
        )
    return family


def attention_blocks(model) -> set[tuple[str, int]]:
    """Block ids (``("output", 6)``, ...) of the UNet that hold a self-attention transformer."""
    from comfy.ldm.modules.attention import SpatialTransformer

    unet = model.model.diffusion_model
    found = set()
    for kind, blocks in (("input", unet.input_blocks), ("output", unet.output_blocks), ("middle", [unet.middle_block])):
        for i, block in enumerate(blocks):
            if any(isinstance(m, SpatialTransformer) for m in block.modules()):
                found.add((kind, i))
    return found


def prediction_type(model) -> str:
    ms = model.get_model_object("model_sampling")
    if isinstance(ms, comfy.model_sampling.V_PREDICTION):
        return "v"
    if isinstance(ms, comfy.model_sampling.EPS):
        return "eps"
    raise UnsupportedModelError(
        f"model: its sampling type {type(ms).__name__} is neither eps nor v prediction; "
        "use an SD1.x, SD2.x or SDXL checkpoint without a flow/EDM sampling patch."
    )


def fingerprint(model) -> ModelFingerprint:
    family = model_family(model)
    return ModelFingerprint(
        family=family,
        prediction=prediction_type(model),
        model_class=type(model.model.model_config).__name__,
        model_id=id(model.model),
        freeu=freeu_settings(model),
    )
