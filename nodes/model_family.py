"""Which model family a MODEL is (SD1.x, SD2.x, SDXL), its prediction type, fingerprint and attention blocks."""

from __future__ import annotations

import comfy.model_base
import comfy.model_sampling
import comfy.supported_models
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ..inversion import ModelFingerprint
from .authors_freeu import freeu_settings

UNET_FAMILIES = ("sd1", "sd2", "sdxl")
DIT_FAMILIES = ("flux", "sd3")
SUPPORTED = "SD1.x, SD2.x (eps and v-prediction), SDXL, Flux.1 (dev, schnell) and SD3/SD3.5"


class UnsupportedModelError(ValueError):
    pass


def _family_of_config(mc) -> str | None:
    sm = comfy.supported_models
    name = type(mc).__name__
    if isinstance(mc, sm.SDXL) or name in ("SDXL", "SSD1B", "Segmind_Vega", "KOALA_700M", "KOALA_1B"):
        return "sdxl"
    if isinstance(mc, sm.SD20):
        return "sd2"
    if isinstance(mc, sm.SD15):
        return "sd1"
    if name in ("Flux", "FluxSchnell"):
        return "flux"
    if isinstance(mc, sm.SD3):
        return "sd3"
    return None


def _network_fits(family: str, net) -> bool:
    """The diffusion network is the class the family's hooks know (not a look-alike such as Chroma)."""
    if family in UNET_FAMILIES:
        return isinstance(net, UNetModel)
    if family == "flux":
        from comfy.ldm.flux.model import Flux

        return type(net) is Flux
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

    return isinstance(net, MMDiT)


def _input_channels(family: str, net) -> int:
    """Latent channels the network takes (Flux counts them per 2x2 patch)."""
    if family == "flux":
        return net.in_channels // (net.patch_size * net.patch_size)
    return net.in_channels


def model_family(model) -> str:
    """``"sd1"``, ``"sd2"``, ``"sdxl"``, ``"flux"`` or ``"sd3"`` for a ComfyUI MODEL; a clear error for others."""
    base = getattr(model, "model", None)
    mc = getattr(base, "model_config", None)
    name = type(mc).__name__ if mc is not None else type(base).__name__
    family = _family_of_config(mc) if mc is not None else None
    net = getattr(base, "diffusion_model", None)
    if family is None or not _network_fits(family, net) or isinstance(base, comfy.model_base.SDXLRefiner):
        raise UnsupportedModelError(
            f"model: this is a {name} model; Eye-for-an-eye appearance transfer supports {SUPPORTED}. "
            "Load one of those checkpoints."
        )
    channels = _input_channels(family, net)
    plain = 16 if family in DIT_FAMILIES else 4
    if channels != plain:
        raise UnsupportedModelError(
            f"model: this {name} model takes {channels} input channels (an inpainting, fill or instruct model); "
            "the transfer needs the plain text-to-image checkpoint of that family."
        )
    return family


def attention_blocks(model) -> set[tuple[str, int]]:
    """Block ids the method can act on: UNet blocks holding a self-attention transformer (``("output", 6)``);
    Flux double-/single-stream blocks (``("double", 0)``, ``("single", 9)``); SD3 joint blocks (``("double", i)``)."""
    net = model.model.diffusion_model
    if hasattr(net, "double_blocks"):
        return {("double", i) for i in range(len(net.double_blocks))} | {
            ("single", i) for i in range(len(net.single_blocks))}
    if hasattr(net, "joint_blocks"):
        return {("double", i) for i in range(len(net.joint_blocks))}
    from comfy.ldm.modules.attention import SpatialTransformer

    found = set()
    for kind, blocks in (("input", net.input_blocks), ("output", net.output_blocks), ("middle", [net.middle_block])):
        for i, block in enumerate(blocks):
            if any(isinstance(m, SpatialTransformer) for m in block.modules()):
                found.add((kind, i))
    return found


def prediction_type(model) -> str:
    """``"eps"``, ``"v"`` or ``"flow"`` (rectified flow: ``x = (1 - sigma) x0 + sigma noise``)."""
    ms = model.get_model_object("model_sampling")
    if isinstance(ms, comfy.model_sampling.V_PREDICTION):
        return "v"
    if isinstance(ms, comfy.model_sampling.EPS):
        return "eps"
    if isinstance(ms, comfy.model_sampling.CONST):
        return "flow"
    raise UnsupportedModelError(
        f"model: its sampling type {type(ms).__name__} is neither eps, v nor rectified flow; "
        f"use a {SUPPORTED} checkpoint without an EDM/other sampling patch."
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
