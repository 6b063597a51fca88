"""The one registry of model families: everything the pack knows about a family, and nothing else knows it.

Per family (a :class:`Family`): how a loaded MODEL is recognised (its ComfyUI model-config class and the class of
its diffusion network), where its attention blocks are and which layers project their image tokens, whether it
is a UNet or a diffusion transformer, an image or a video model, the default blocks the method rewrites (and on a
diffusion transformer the block it matches at), its default sampling schedule, and its display name. Latent
channels and the VAE's stride are read off the model's own latent format (:func:`vae_stride`).

Everything else asks this module: ``models.blocks`` (blocks, projections and token maps of a loaded network),
``models.layers`` (the presets), the nodes' tooltips, the pyproject description and the README's family table
(``scripts/node_reference.py`` checks that those two say what this says).

Plain data and functions, no ComfyUI import at module level: the headless runner and the editor's unit tests load
this folder as a package of its own (without ComfyUI or torch) for the shipped schedules and the layer grammar;
ComfyUI is imported inside the functions that take a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from . import defaults as authors


@dataclass(frozen=True)
class Schedule:
    """A family's shipped inversion and sampling settings."""

    steps: int
    skip_steps: int
    scheduler: str
    inversion_cfg: float
    cfg: float
    guidance: float | None = None  # Flux: the FluxGuidance value the prompt carries


@dataclass(frozen=True)
class Family:
    key: str  # "sd1", "sd2", "sdxl", "flux", "sd3", "qwen_image", "wan"
    name: str  # display name, short (the README's table)
    listed: str  # what of it is supported, in words (the list of supported families in messages and tooltips)
    kind: str  # "unet" or "dit"
    # recognition: the ComfyUI model config (a class of comfy.supported_models) by any class name in its MRO
    # (``config_bases``) or by its own name only (``configs``); the diffusion network by module and class, the
    # exact class unless ``network_subclasses``
    configs: tuple[str, ...] = ()
    config_bases: tuple[str, ...] = ()
    network: tuple[str, str] = ("comfy.ldm.modules.diffusionmodules.openaimodel", "UNetModel")
    network_subclasses: bool = False
    # DiT: the block stacks (block kind, attribute of the network) in the order the network runs them, and per
    # block kind the layers projecting the image tokens: (path inside the block, "qkv" | "q" | "k" | "v")
    stacks: tuple[tuple[str, str], ...] = ()
    projections: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    # the blocks a model of the family has at most (the editor's check of custom_layers before a run)
    max_blocks: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    layers: str = "auto"  # the preset 'auto' stands for (models.layers.LAYER_PRESETS)
    schedule: Schedule | None = None  # None: no shipped schedule (the README says what to use)
    frame_stride: int = 1  # video: video frames per latent frame after the first

    @property
    def dit(self) -> bool:
        """A diffusion transformer (block patches on image tokens) rather than a UNet (attn1 patches)."""
        return self.kind == "dit"

    @property
    def video(self) -> bool:
        """A video model: latents ``[B, C, T, H, W]`` whose frames all carry object tokens."""
        return self.frame_stride > 1


def _frozen(d: dict) -> MappingProxyType:
    return MappingProxyType({k: tuple(v) for k, v in d.items()})


_AUTHORS = Schedule(authors.STEPS, authors.SKIP_STEPS, authors.SCHEDULER, authors.INVERSION_CFG, authors.CFG)
_UNET_BLOCKS = {"input": [1, 2, 4, 5, 7, 8], "middle": [0], "output": list(range(3, 12))}

FAMILIES: MappingProxyType = MappingProxyType({f.key: f for f in (
    Family("sdxl", "SDXL", "SDXL", "unet", config_bases=("SDXL",),
           max_blocks=_frozen({"input": [4, 5, 7, 8], "middle": [0], "output": range(0, 6)}),
           layers="output 0-5 (SDXL)", schedule=_AUTHORS),
    Family("sd2", "SD2.x", "SD2.x (eps and v-prediction)", "unet", config_bases=("SD20",), max_blocks=_frozen(_UNET_BLOCKS),
           layers="output 6-11 (SD1/SD2, paper)", schedule=_AUTHORS),
    Family("sd1", "SD1.x", "SD1.x", "unet", config_bases=("SD15",), max_blocks=_frozen(_UNET_BLOCKS),
           layers="output 6-11 (SD1/SD2, paper)", schedule=_AUTHORS),
    Family("flux", "Flux.1", "Flux.1 (dev, schnell)", "dit", configs=("Flux", "FluxSchnell"),
           network=("comfy.ldm.flux.model", "Flux"),
           stacks=(("double", "double_blocks"), ("single", "single_blocks")),
           projections=_frozen({"double": [("img_attn.qkv", "qkv")], "single": [("linear1", "qkv")]}),
           max_blocks=_frozen({"double": range(19), "single": range(38)}),
           layers="vital (Flux, Stable Flow)",
           # 28 steps of "simple" (a common Flux-dev choice), the authors' share of skipped steps (9 of 28, as 32
           # of 100), no CFG: guidance-distilled, FluxGuidance 3.5 instead
           schedule=Schedule(28, 9, "simple", 1.0, 1.0, guidance=3.5)),
    Family("sd3", "SD3 / SD3.5", "SD3/SD3.5", "dit", config_bases=("SD3",),
           network=("comfy.ldm.modules.diffusionmodules.mmdit", "MMDiT"), network_subclasses=True,
           stacks=(("double", "joint_blocks"),), projections=_frozen({"double": [("x_block.attn.qkv", "qkv")]}),
           max_blocks=_frozen({"double": range(38)}), layers="second half (SD3)"),
    Family("qwen_image", "Qwen-Image", "Qwen-Image", "dit", configs=("QwenImage",),
           network=("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel"),
           stacks=(("double", "transformer_blocks"),),
           projections=_frozen({"double": [("attn.to_q", "q"), ("attn.to_k", "k"), ("attn.to_v", "v")]}),
           max_blocks=_frozen({"double": range(60)}), layers="second half (SD3)",
           # the authors' share of skipped steps (10 of 30) on "simple", the CFG of ComfyUI's Qwen-Image example
           # (2.5) for inversion and sampling alike
           schedule=Schedule(30, 10, "simple", 2.5, 2.5)),
    Family("wan", "Wan 2.1 / 2.2", "Wan 2.1/2.2 text-to-video (1.3B, 14B, 5B)", "dit", configs=("WAN21_T2V", "WAN22_T2V"),
           network=("comfy.ldm.wan.model", "WanModel"), stacks=(("double", "blocks"),),
           projections=_frozen({"double": [("self_attn.q", "q"), ("self_attn.k", "k"), ("self_attn.v", "v")]}),
           max_blocks=_frozen({"double": range(40)}), layers="second half (SD3)",  # 14B: 40 blocks; 1.3B, 5B: 30
           # as Qwen-Image, with Wan's own CFG (5.0, its released text-to-video default) and ComfyUI's Wan example's
           # 30 steps
           schedule=Schedule(30, 10, "simple", 5.0, 5.0), frame_stride=4),
)})
# the order models are recognised in, and the order every list of families is written in
ORDER = ("sd1", "sd2", "sdxl", "flux", "sd3", "qwen_image", "wan")
RECOGNITION_ORDER = ("sdxl", "sd2", "sd1", "flux", "sd3", "qwen_image", "wan")


def family(key: str) -> Family:
    return FAMILIES[key]


def supported() -> str:
    """The supported families in words, for messages and tooltips."""
    names = [FAMILIES[key].listed for key in ORDER]
    return ", ".join(names[:-1]) + " and " + names[-1]


def family_keys(kind: str | None = None) -> tuple[str, ...]:
    """The families, in the registry's order; ``kind`` "unet" or "dit": those only."""
    return tuple(k for k in ORDER if kind is None or FAMILIES[k].kind == kind)


def family_names(keys=ORDER, last: str = "and") -> str:
    """``"Flux.1, SD3 / SD3.5, Qwen-Image and Wan 2.1 / 2.2"``: the short names of ``keys``, in words."""
    names = [FAMILIES[k].name for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" {last} " + names[-1]


def shipped_settings(key: str) -> dict:
    """Every setting of a whole transfer as the pack ships it for a family, by the nodes' input names: DDIM Invert
    Reference (``steps``, ``skip_steps``, ``inversion_cfg``, ``scheduler``, ``method``, ``seed``), Semantic Match
    Patch (``layers``, ``custom_layers``, ``match_block``, ``start_percent``, ``end_percent``, ``structure_every``,
    ``structure_end_percent``, ``strength``), the sampler (``cfg``, ``adain``, ``adain_start_percent``,
    ``ending``) and the prompt's ``guidance`` (Flux). The workflows, the runner and the evaluations read it."""
    sched = FAMILIES[key].schedule
    if sched is None:
        raise ValueError(f"{FAMILIES[key].name} has no shipped schedule")
    return dict(
        steps=sched.steps, skip_steps=sched.skip_steps, inversion_cfg=sched.inversion_cfg, scheduler=sched.scheduler,
        method=authors.INVERSION_METHOD, seed=authors.INVERSION_SEED, layers="auto", custom_layers="",
        match_block="auto", start_percent=authors.START_PERCENT, end_percent=authors.END_PERCENT,
        structure_every=authors.STRUCTURE_EVERY, structure_end_percent=authors.STRUCTURE_END_PERCENT,
        strength=authors.STRENGTH, cfg=sched.cfg, adain=authors.ADAIN, adain_start_percent=authors.ADAIN_START_PERCENT,
        ending=authors.ENDING, guidance=sched.guidance,
    )


class UnsupportedModelError(ValueError):
    pass


# ------------------------------------------------------------------------------------------ a loaded MODEL


def _config_matches(f: Family, mc) -> bool:
    name = type(mc).__name__
    return name in f.configs or any(c.__name__ in f.config_bases for c in type(mc).__mro__)


def _network_fits(f: Family, net) -> bool:
    """The diffusion network is the class the family's hooks know (not a look-alike such as Chroma)."""
    import importlib

    module, cls_name = f.network
    cls = getattr(importlib.import_module(module), cls_name)
    fits = isinstance(net, cls) if (f.network_subclasses or not f.dit) else type(net) is cls
    if f.key == "wan":  # text-to-video only: image-to-video & co. carry a reference convolution
        fits = fits and getattr(net, "ref_conv", None) is None
    return fits


def latent_channels(f: Family, net) -> int:
    """Latent channels the network takes (Flux and Qwen-Image count them per 2x2 patch)."""
    if f.key in ("flux", "qwen_image"):
        return net.in_channels // (net.patch_size * net.patch_size)
    if f.key == "wan":
        return net.in_dim
    return net.in_channels


def family_of(model) -> Family:
    """The :class:`Family` of a ComfyUI MODEL; a clear error for others."""
    import comfy.model_base

    base = getattr(model, "model", None)
    mc = getattr(base, "model_config", None)
    name = type(mc).__name__ if mc is not None else type(base).__name__
    found = None
    if mc is not None:
        found = next((FAMILIES[k] for k in RECOGNITION_ORDER if _config_matches(FAMILIES[k], mc)), None)
    net = getattr(base, "diffusion_model", None)
    if found is None or not _network_fits(found, net) or isinstance(base, comfy.model_base.SDXLRefiner):
        raise UnsupportedModelError(
            f"model: this is a {name} model; Eye-for-an-eye appearance transfer supports {supported()}. "
            "Load one of those checkpoints."
        )
    channels = latent_channels(found, net)
    plain = base.latent_format.latent_channels  # 4 (SD), 16 (Flux, SD3, Qwen-Image, Wan 2.1), 48 (Wan 2.2 5B)
    if channels != plain:
        raise UnsupportedModelError(
            f"model: this {name} model takes {channels} input channels (an inpainting, fill or instruct model); "
            "the transfer needs the plain text-to-image checkpoint of that family."
        )
    return found


def vae_stride(latent_format) -> int:
    """Image pixels per latent pixel, from a model's latent format: newer ComfyUI says it
    (``spacial_downscale_ratio``); else 16 for Wan 2.2's 48-channel VAE, 8 for every other VAE here."""
    ratio = getattr(latent_format, "spacial_downscale_ratio", None)
    if isinstance(ratio, int) and ratio > 0:
        return ratio
    return 16 if type(latent_format).__name__ == "Wan22" else 8
