"""Reading images and masks as the workflow's nodes do (Pillow)."""

from __future__ import annotations

import io
from pathlib import Path

from .errors import RunError


def _open(path: str | Path, what: str):
    from PIL import Image, ImageOps

    try:
        img = Image.open(path)
        img.load()
        return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise RunError(f"{what}: file not found: {path}") from None
    except Exception as exc:  # PIL raises many kinds for unreadable files
        raise RunError(f"{what}: cannot read {path} as an image ({type(exc).__name__}: {exc})") from None


def read_image(path, what: str, size: tuple[int, int]):
    """RGB image, stretched to ``size`` (width, height) (as ImageScale with crop 'disabled')."""
    from PIL import Image

    img = _open(path, what).convert("RGB")
    return img.resize(size, Image.Resampling.LANCZOS) if img.size != tuple(size) else img


def read_mask(path, what: str, size: tuple[int, int]):
    """Greyscale mask at ``size``: the alpha channel if the file has one, else its brightness (as Load Masks
    reads files)."""
    from PIL import Image

    img = _open(path, what)
    mask = img.getchannel("A") if "A" in img.getbands() else img.convert("L")
    return mask.resize(size, Image.Resampling.BILINEAR) if mask.size != tuple(size) else mask


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
