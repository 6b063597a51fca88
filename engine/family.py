"""Which model a MODEL is: its family, prediction type, attention blocks, and a fingerprint of everything that
changes its denoiser (so an inversion made with one variant is never used with another)."""

from __future__ import annotations

import comfy.model_base
import comfy.model_sampling
import comfy.supported_models
import torch
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

from ..inversion import ModelFingerprint

UNET_FAMILIES = ("sd1", "sd2", "sdxl")
DIT_FAMILIES = ("flux", "sd3", "qwen_image", "wan")
VIDEO_FAMILIES = ("wan",)
SUPPORTED = ("SD1.x, SD2.x (eps and v-prediction), SDXL, Flux.1 (dev, schnell), SD3/SD3.5, Qwen-Image and "
             "Wan 2.1/2.2 text-to-video (1.3B, 14B, 5B)")
OWN = "e4e_own"  # attribute set on the pack's own patches and wrappers: not part of a model's variant
FREEU_KEY = "e4e_authors_freeu"  # model_options entry: the authors' FreeU settings a MODEL carries


class UnsupportedModelError(ValueError):
    pass


def is_dit(family: str) -> bool:
    """A diffusion transformer (block patches on image tokens) rather than a UNet (attn1 patches)."""
    return family in DIT_FAMILIES


def is_video(family: str) -> bool:
    """A video model: latents ``[B, C, T, H, W]`` whose frames all carry object tokens."""
    return family in VIDEO_FAMILIES


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
    if name == "QwenImage":
        return "qwen_image"
    if name in ("WAN21_T2V", "WAN22_T2V"):  # text-to-video; I2V, VACE, camera, S2V & co. take other inputs
        return "wan"
    return None


def _network_fits(family: str, net) -> bool:
    """The diffusion network is the class the family's hooks know (not a look-alike such as Chroma)."""
    if family in UNET_FAMILIES:
        return isinstance(net, UNetModel)
    if family == "flux":
        from comfy.ldm.flux.model import Flux

        return type(net) is Flux
    if family == "wan":
        from comfy.ldm.wan.model import WanModel

        return type(net) is WanModel and getattr(net, "ref_conv", None) is None
    if family == "qwen_image":
        from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel

        return type(net) is QwenImageTransformer2DModel
    from comfy.ldm.modules.diffusionmodules.mmdit import MMDiT

    return isinstance(net, MMDiT)


def latent_channels(family: str, net) -> int:
    """Latent channels the network takes (Flux and Qwen-Image count them per 2x2 patch)."""
    if family in ("flux", "qwen_image"):
        return net.in_channels // (net.patch_size * net.patch_size)
    if family == "wan":
        return net.in_dim
    return net.in_channels


def model_family(model) -> str:
    """``"sd1"``, ``"sd2"``, ``"sdxl"``, ``"flux"``, ``"sd3"``, ``"qwen_image"`` or ``"wan"`` for a ComfyUI MODEL; a
    clear error for others."""
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
    channels = latent_channels(family, net)
    plain = base.latent_format.latent_channels  # 4 (SD), 16 (Flux, SD3, Qwen-Image, Wan 2.1), 48 (Wan 2.2 5B)
    if channels != plain:
        raise UnsupportedModelError(
            f"model: this {name} model takes {channels} input channels (an inpainting, fill or instruct model); "
            "the transfer needs the plain text-to-image checkpoint of that family."
        )
    return family


def attention_blocks(model) -> set[tuple[str, int]]:
    """Block ids the method can act on: UNet blocks holding a self-attention transformer (``("output", 6)``);
    Flux double-/single-stream blocks (``("double", 0)``, ``("single", 9)``); SD3 joint blocks, Qwen-Image's and
    Wan's transformer blocks (``("double", i)``, as ComfyUI names their block patches ``double_block``)."""
    net = model.model.diffusion_model
    for name in ("blocks", "transformer_blocks"):  # Wan, Qwen-Image
        if isinstance(getattr(net, name, None), torch.nn.ModuleList):
            return {("double", i) for i in range(len(getattr(net, name)))}
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


# ---------------------------------------------------------------------------------------------- the variant


def _label(fn) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _entries(kind: str, value):
    """``(kind, label, identity)`` of every callable in a patch slot (a callable, a list, or a dict of them)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _entries(f"{kind}[{key}]", item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _entries(kind, item)
    elif value is not None and not getattr(value, OWN, False):
        yield kind, _label(value), id(value)


def variant(model) -> tuple:
    """Everything besides the loaded weights that changes what the denoiser computes, as sorted
    ``(what, label, identity)`` entries: weight patches such as LoRA (ComfyUI's ``patches_uuid``), object patches
    (the ``model_sampling`` of ModelSamplingDiscrete & co.), and the model-function patches, replacements,
    wrappers and CFG functions in ``model_options`` and on the patcher. The pack's own patches are left out
    (they are what Semantic Match Patch adds)."""
    out = [("weights", "weight patches (LoRA and the like)", str(getattr(model, "patches_uuid", "")))]
    for name, obj in sorted(getattr(model, "object_patches", {}).items()):
        out.append(("object", f"{name}: {type(obj).__name__}", id(obj)))
    opts = getattr(model, "model_options", {})
    to = opts.get("transformer_options", {})
    for slot in ("patches", "patches_replace", "wrappers"):
        for name, value in sorted(to.get(slot, {}).items(), key=lambda kv: str(kv[0])):
            out += _entries(f"{slot}.{name}", value)
    for key in ("model_function_wrapper", "sampler_cfg_function", "sampler_post_cfg_function",
                "sampler_pre_cfg_function", "sampler_calc_cond_batch_function"):
        out += _entries(key, opts.get(key))
    for name, value in sorted(getattr(model, "wrappers", {}).items()):
        out += _entries(f"wrappers.{name}", value)
    return tuple(sorted(out, key=lambda e: (e[0], e[1], str(e[2]))))


def fingerprint(model) -> ModelFingerprint:
    family = model_family(model)
    return ModelFingerprint(
        family=family,
        prediction=prediction_type(model),
        model_class=type(model.model.model_config).__name__,
        model_id=id(model.model),
        freeu=getattr(model, "model_options", {}).get(FREEU_KEY),
        variant=variant(model),
    )


def own(fn):
    """Mark one of the pack's own patches or wrappers (left out of :func:`variant`); returns it."""
    setattr(fn, OWN, True)
    return fn
