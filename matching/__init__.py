"""Semantic matching and feature rearrangement for Eye-for-an-eye appearance transfer (arXiv 2406.07008).

Pure torch, no ComfyUI import: usable as the top-level package ``matching`` and as a subpackage of the
node pack. The hot-path functions (``match_*`` with ``check=False``, ``rearrange``, ``mask_to_tokens``,
``masked_adain`` with ``check=False``) never synchronise with the device.
"""

from .adain import masked_adain
from .correspondence_pictures import (
    correspondence_image,
    correspondence_panel,
    position_colors,
    reference_palette,
)
from .massive import keep_ordinary_channels
from .match import DEFAULT_CHUNK_BYTES, SpatialPrior, match_objects, match_tokens
from .object_masks import ObjectMasks, fit_masks
from .rearrange import rearrange
from .token_maps import mask_to_tokens

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "match_tokens",
    "match_objects",
    "keep_ordinary_channels",
    "SpatialPrior",
    "mask_to_tokens",
    "rearrange",
    "masked_adain",
    "ObjectMasks",
    "fit_masks",
    "position_colors",
    "reference_palette",
    "correspondence_image",
    "correspondence_panel",
]
