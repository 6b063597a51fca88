"""Eye-for-an-eye appearance transfer for ComfyUI (arXiv 2406.07008).

ComfyUI imports this file when the folder sits in ``ComfyUI/custom_nodes/``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web/js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
