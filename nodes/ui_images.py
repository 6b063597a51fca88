"""Images for the editor: saved to ComfyUI's temp folder and named in a node's ``ui`` output."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def folder_paths_module():
    try:
        import folder_paths  # only in a full ComfyUI (not in the notcomfy core)
    except ImportError:
        return None
    return folder_paths


def save_preview(image: torch.Tensor, prefix: str) -> dict | None:
    """Save ``[H, W, 3]`` (0..1) to ComfyUI's temp folder; the ``ui`` image entry, or None without the app."""
    fp = folder_paths_module()
    if fp is None:
        return None
    out_dir = fp.get_temp_directory()
    os.makedirs(out_dir, exist_ok=True)
    arr = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    count = len([f for f in os.listdir(out_dir) if f.startswith(prefix)])
    name = f"{prefix}_{count:05d}.png"
    Image.fromarray(arr).save(os.path.join(out_dir, name), compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}
