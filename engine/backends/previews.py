"""Images for the editor: saved to ComfyUI's temp folder and named in a node's ``ui`` output."""

from __future__ import annotations

import os
import uuid

import folder_paths
import numpy as np
import torch
from PIL import Image


def save_preview(image: torch.Tensor, prefix: str) -> dict:
    """Save ``[H, W, 3]`` (0..1) to ComfyUI's temp folder under a name of its own; the ``ui`` image entry."""
    out_dir = folder_paths.get_temp_directory()
    os.makedirs(out_dir, exist_ok=True)
    arr = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    name = f"{prefix}_{uuid.uuid4().hex[:16]}.png"  # never an earlier file's name, whatever was deleted
    Image.fromarray(arr).save(os.path.join(out_dir, name), compress_level=1)
    return {"filename": name, "subfolder": "", "type": "temp"}
