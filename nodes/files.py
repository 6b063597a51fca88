"""Reading mask files and saving preview images (uses ComfyUI's folder_paths when the full app runs)."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def _folder_paths():
    try:
        import folder_paths  # only in a full ComfyUI (not in the notcomfy core)
    except ImportError:
        return None
    return folder_paths


def input_files() -> list[str]:
    fp = _folder_paths()
    if fp is None:
        return []
    root = fp.get_input_directory()
    try:
        return sorted(f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f)))
    except OSError:
        return []


def resolve_input(name: str, what: str) -> str:
    path = name
    fp = _folder_paths()
    if not os.path.isabs(name) and fp is not None:
        path = fp.get_annotated_filepath(name) if hasattr(fp, "get_annotated_filepath") else os.path.join(
            fp.get_input_directory(), name)
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
            img = Image.open(path)
            img.load()
        except Exception as exc:  # PIL raises many types for unreadable files
            raise ValueError(f"{what}: cannot read {name!r} as an image ({exc})") from None
        if "A" in img.getbands():
            arr = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        else:
            arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        masks.append(torch.from_numpy(arr.copy()))
    if not masks:
        raise ValueError(f"{what}: no file named")
    h, w = masks[0].shape
    fitted = [m if m.shape == (h, w) else torch.nn.functional.interpolate(
        m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0] for m in masks]
    return torch.stack(fitted)


def save_preview(image: torch.Tensor, prefix: str) -> dict | None:
    """Save ``[H, W, 3]`` (0..1) to ComfyUI's temp folder; the ``ui`` image entry, or None without the app."""
    fp = _folder_paths()
    if fp is None:
        return None
    out_dir = fp.get_temp_directory()
    os.makedirs(out_dir, exist_ok=True)
    arr = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    count = len([f for f in os.listdir(out_dir) if f.startswith(prefix)])
    name = f"{prefix}_{count:05d}.png"
    Image.fromarray(arr).save(os.path.join(out_dir, name), compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}
