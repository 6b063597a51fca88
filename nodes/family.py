"""Which model family a MODEL is, and the pack's per-family defaults (ComfyUI-specific glue)."""

from __future__ import annotations

import comfy.model_base
import comfy.model_sampling
import comfy.supported_models
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ..inversion import ModelFingerprint

# Decoder self-attention layers the method rewrites, by block id (not token count, so any resolution
# keeps the same layers). SD1/SD2: the paper's six layers at the 32x32 and 64x64 maps of a 512 px image.
# SDXL: output 0..2 (depth 10, 32x32 at 1024 px) and 3..5 (depth 2, 64x64): every transformer block of
# the two decoder stages, the same "coarse + fine decoder" choice as the paper's.
LAYER_PRESETS = {
    "auto": None,
    "output 6-11 (SD1/SD2, paper)": [("output", i) for i in range(6, 12)],
    "output 0-5 (SDXL)": [("output", i) for i in range(0, 6)],
    "output 3-5 (SDXL 64x64)": [("output", i) for i in range(3, 6)],
    "output 0-2 (SDXL 32x32)": [("output", i) for i in range(0, 3)],
    "custom": None,
}
DEFAULT_LAYERS = {
    "sd1": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sd2": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sdxl": LAYER_PRESETS["output 0-5 (SDXL)"],
}


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
    )


def parse_layers(text: str) -> list[tuple[str, int]]:
    """``"output.6-11, output.3, input.7"`` -> ``[("output", 6), ..., ("input", 7)]``."""
    layers: list[tuple[str, int]] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        block, _, rng = part.replace(" ", ".").partition(".")
        rng = rng.strip(". ")
        if block not in ("input", "middle", "output") or not rng:
            raise ValueError(
                f"custom_layers: {part!r} is not like 'output.6' or 'output.6-11' (blocks: input, middle, output)"
            )
        lo, _, hi = rng.partition("-")
        try:
            start, stop = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"custom_layers: {part!r} has no block number") from None
        if start > stop or start < 0:
            raise ValueError(f"custom_layers: {part!r} is an empty range")
        layers += [(block, i) for i in range(start, stop + 1) if (block, i) not in layers]
    if not layers:
        raise ValueError("custom_layers: empty; name at least one block, e.g. 'output.6-11'")
    return layers


def resolve_layers(preset: str, custom: str, family: str) -> list[tuple[str, int]]:
    if preset not in LAYER_PRESETS:
        raise ValueError(f"layers: {preset!r} is not one of {list(LAYER_PRESETS)}")
    if preset == "custom":
        return parse_layers(custom)
    return list(LAYER_PRESETS[preset] or DEFAULT_LAYERS[family])
