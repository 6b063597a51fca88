"""The toy world in the graph: the bundled toy models and generated creatures, so that a transfer runs in the
editor (or headless) with no checkpoint at all. See toy_world/weights/CARD.md for what the models are."""

from __future__ import annotations

from ..toy_world import models, world
from .types import CATEGORY

TOY_VAE = "E4E_TOY_VAE"
TOY_CATEGORY = f"{CATEGORY}/toy world"


class ToyModel:
    DESCRIPTION = (
        "A small model the pack trained itself on its toy world of creatures (bundled, a few MB): ComfyUI's own "
        "SD1.5-layout UNet or Flux-layout transformer, its fixed prompt, and the toy VAE (a fixed linear map "
        "between RGB and the latent, so decoded colours are exact). For trying the transfer with no checkpoint; "
        "it only knows creatures."
    )
    CATEGORY = TOY_CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CONDITIONING", "CONDITIONING", TOY_VAE)
    RETURN_NAMES = ("model", "positive", "negative", "toy_vae")
    OUTPUT_TOOLTIPS = ("The toy model.", "Its fixed prompt (\"a creature\").", "Its empty negative prompt.",
                       "The toy VAE, for Toy VAE Encode / Decode.")

    @classmethod
    def INPUT_TYPES(cls):
        bundled = [t for t in models.TOYS if models.weights_path(t).is_file()] or ["sd1"]
        return {"required": {"family": (bundled, {"default": "sd1", "tooltip": "Which bundled toy. sd1: ComfyUI's UNet with SD1.5's block layout (eps, SD1.5's schedule); its matching finds parts, its attention carries no colour. flux: ComfyUI's Flux (rectified flow, guidance 3.5; invert and sample with the Flux settings: 28 steps, simple, cfg 1); its attention carries colour, its matching is no better than chance. flux_taught: a deeper Flux layout whose matching block was taught the parts and whose attention was taught to carry colour, so the whole method shows (the Flux settings). README, The toy world."})}}

    def load(self, family):
        import comfy.model_management

        toy = models.load(family, load_device=comfy.model_management.get_torch_device(),
                          offload_device=comfy.model_management.unet_offload_device())
        return (toy.patcher, toy.positive, toy.negative, toy.vae)


class ToyCreatures:
    DESCRIPTION = (
        "Draws a reference and a target creature of the toy world (five parts: body, head, wing, tail, legs, each "
        "with its own colour) in different poses, with their object masks. The target faces the other way, so a "
        "transfer that copies by position gets the parts wrong."
    )
    CATEGORY = TOY_CATEGORY
    FUNCTION = "draw"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK", "MASK")
    RETURN_NAMES = ("reference", "target", "reference_mask", "target_mask")
    OUTPUT_TOOLTIPS = ("The reference creature (gives the colours).", "The target creature (gives the shape).",
                       "The reference's object mask.", "The target's object mask.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 7, "min": 0, "max": 0xFFFFFFFF, "tooltip": "Which pair of creatures (held-out pairs: the models never saw them)."})}}

    def draw(self, seed):
        ref, tgt = world.pairs(1, seed)
        image = [c.images.permute(0, 2, 3, 1).contiguous() for c in (ref, tgt)]  # ComfyUI's IMAGE: [B, H, W, 3]
        return (image[0], image[1], ref.masks, tgt.masks)


class ToyVAEEncode:
    DESCRIPTION = "Encodes images with the toy VAE (the toy model's own), as VAE Encode does with a real VAE."
    CATEGORY = TOY_CATEGORY
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("The latent of the images, for DDIM Invert Reference or the sampler's start.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"pixels": ("IMAGE", {"tooltip": "Images of the toy world (32 px creatures)."}),
                             "toy_vae": (TOY_VAE, {"tooltip": "The toy VAE, from Toy Model."})}}

    def encode(self, pixels, toy_vae):
        return ({"samples": toy_vae.encode(pixels[..., :3].permute(0, 3, 1, 2).float())},)


class ToyVAEDecode:
    DESCRIPTION = "Decodes a latent with the toy VAE (exact colours), as VAE Decode does with a real VAE."
    CATEGORY = TOY_CATEGORY
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The decoded images (RGB, clamped to 0..1).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT", {"tooltip": "A latent of the toy model."}),
                             "toy_vae": (TOY_VAE, {"tooltip": "The toy VAE, from Toy Model."})}}

    def decode(self, samples, toy_vae):
        return (toy_vae.decode(samples["samples"].float()).permute(0, 2, 3, 1).contiguous().clamp(0, 1),)

