"""Load Masks: the object masks of target and reference(s), validated before any heavy work."""

from __future__ import annotations

import logging

from ..engine.backends.mask_files import files_signature
from ..engine.backends.masks import load_masks, preview
from ..engine.backends.previews import save_preview
from .types import CATEGORY, MASKS


class LoadMasks:
    DESCRIPTION = (
        "Object masks for Eye-for-an-eye appearance transfer. Target object k takes its appearance from reference "
        "object k: give the masks as MASK batches (LoadImageMask, any segmentation node) or as files in ComfyUI's "
        "input folder (the alpha channel when there is one, else brightness). With no masks the whole images are "
        "matched. Several objects may come from different reference images (reference_of_object)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MASKS, "IMAGE")
    RETURN_NAMES = ("masks", "preview")
    OUTPUT_TOOLTIPS = ("Object masks for Semantic Match Patch and Appearance Transfer Sampler.",
                       "One picture per object: the target mask | the reference mask.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "reference_of_object": ("STRING", {"default": "", "tooltip": "Which reference image each object takes its appearance from, e.g. '1,2' (object 1 from reference 1, object 2 from reference 2). Empty: object k from reference k when there are as many references as objects, else all from reference 1."}),
                "invert": ("BOOLEAN", {"default": False, "tooltip": "Invert every mask (LoadImage's MASK output is 1 where the image is transparent)."}),
                "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8, "tooltip": "Resize the masks like ImageScale resizes the images (0 keeps the masks' size; 0 for one side keeps the aspect). Set it to the images' working size when they are scaled."}),
                "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8, "tooltip": "Height for the resize, as width."}),
                "crop": (["disabled", "center"], {"default": "disabled", "tooltip": "The crop setting of the ImageScale used for the images: disabled stretches, center crops to the new aspect first."}),
            },
            "optional": {
                "target_mask": ("MASK", {"tooltip": "Target object masks: one MASK, or a batch with one mask per object. Video: a batch with a mask per frame (as video segmentation nodes give them; several objects one after the other, each with all its frames), or one mask per object for all frames."}),
                "reference_mask": ("MASK", {"tooltip": "Reference object masks, in the same object order as target_mask."}),
                "target_mask_file": ("STRING", {"default": "", "tooltip": "Alternatively: mask file names in ComfyUI's input folder, comma-separated, one per object."}),
                "reference_mask_file": ("STRING", {"default": "", "tooltip": "Alternatively: reference mask file names in ComfyUI's input folder, comma-separated."}),
                "target_image": ("IMAGE", {"tooltip": "The target image as it goes into VAE Encode: checks the (resized) mask size and draws the preview."}),
                "reference_image": ("IMAGE", {"tooltip": "The reference image(s) as they go into VAE Encode: checks the mask size and draws the preview."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, target_mask_file="", reference_mask_file="", **_):
        """Mask files are read again when their contents change (MASK inputs are tracked by ComfyUI itself)."""
        return files_signature(target_mask_file, reference_mask_file)

    def load(self, reference_of_object, invert, width=0, height=0, crop="disabled", target_mask=None,
             reference_mask=None, target_mask_file="", reference_mask_file="", target_image=None, reference_image=None):
        masks = load_masks(reference_of_object, invert, width, height, crop, target_mask, reference_mask,
                           target_mask_file, reference_mask_file, target_image, reference_image)
        pic = preview(masks, target_image, reference_image)
        frames = 1 if target_image is None else int(target_image.shape[0])  # no target image: taken as a still
        said = masks.describe(frames)
        logging.getLogger("eye_for_an_eye").info("Load Masks: %s", said)
        return {"ui": {"images": [save_preview(p, "e4e_masks") for p in pic], "text": [said]},
                "result": (masks, pic)}
