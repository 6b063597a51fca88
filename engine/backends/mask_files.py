"""Reading mask image files from ComfyUI's input folder."""

from __future__ import annotations

import hashlib
import os

import folder_paths
import numpy as np
import torch
from PIL import Image, ImageOps


def file_names(names: str) -> list[str]:
    """The comma-separated file names of a mask-file input."""
    return [n for n in (p.strip() for p in (names or "").split(",")) if n]


def resolve_input(name: str, what: str) -> str:
    """A mask file's path: only files in ComfyUI's input folder are read (a served instance must not read
    other files)."""
    if "\0" in name:
        raise ValueError(f"{what}: the file name {name!r} holds a NUL character; give a plain file name")
    root = os.path.realpath(folder_paths.get_input_directory())
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
    for name in file_names(names):
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


def files_signature(*names: str) -> str:
    """A digest of the contents of the named mask files (for IS_CHANGED: an edited file is read again); names
    that cannot be read count by name, so that the node runs and says what is wrong."""
    h = hashlib.sha256()
    for group in names:
        for name in file_names(group):
            h.update(name.encode("utf-8", "surrogatepass"))
            try:
                with open(resolve_input(name, "mask"), "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
            except (ValueError, OSError):
                h.update(b"unreadable")
    return h.hexdigest()
