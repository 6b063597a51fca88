"""Reading mask image files (only from ComfyUI's input folder when the full app runs)."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps

from .ui_images import folder_paths_module


def resolve_input(name: str, what: str) -> str:
    """A mask file's path. Inside ComfyUI only files in its input folder are read (a served instance must
    not read other files); without the app (scripts, tests) any path is taken as given."""
    path = name
    fp = folder_paths_module()
    if fp is not None:
        root = os.path.realpath(fp.get_input_directory())
        path = os.path.realpath(os.path.join(root, name))
        if os.path.commonpath([root, path]) != root:
            raise ValueError(f"{what}: {name!r} is outside ComfyUI's input folder; put the file there and give its name")
    if not os.path.isfile(path):
        raise ValueError(f"{what}: file {name!r} not found (looked at {path}); put it in ComfyUI's input folder")
    return path


def load_mask_files(names: str, what: str) -> torch.Tensor:
    """Comma-separated mask files -> ``[K, H, W]`` float: the alpha channel if the image has one, else luminance.

    Files of other sizes than the first are stretched to it (masks are resized to the feature maps anyway;
    set Load Masks' width/height to put them all at the images' working size).
    """
    masks = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        path = resolve_input(name, what)
        try:
            img = ImageOps.exif_transpose(Image.open(path))
            img.load()
        except Exception as exc:  # PIL raises many types for unreadable files
            raise ValueError(f"{what}: cannot read {name!r} as an image ({exc})") from None
        if img.mode == "P":
            img = img.convert("RGBA")
        alpha = img.getchannel("A") if "A" in img.getbands() else None
        if alpha is not None and alpha.getextrema()[0] != alpha.getextrema()[1]:
            arr = np.asarray(alpha, dtype=np.float32) / 255.0
        else:  # no alpha, or a constant one (an opaque painted mask): the brightness is the mask
            arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        masks.append(torch.from_numpy(arr.copy()))
    if not masks:
        raise ValueError(f"{what}: no file named")
    h, w = masks[0].shape
    fitted = [m if m.shape == (h, w) else torch.nn.functional.interpolate(
        m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0] for m in masks]
    return torch.stack(fitted)
