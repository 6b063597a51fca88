"""Eye-for-an-eye appearance transfer for ComfyUI (arXiv 2406.07008).

ComfyUI imports this file when the folder sits in ``ComfyUI/custom_nodes/``.
"""

try:  # the keyed model wrappers the patch installs; ComfyUI v0.3.64 is the oldest core this pack is tested on
    from comfy.patcher_extension import WrappersMP as _WrappersMP  # noqa: F401
except ImportError as error:  # pragma: no cover - only on an old ComfyUI
    raise ImportError(
        "Eye-for-an-eye needs ComfyUI v0.3.64 or newer (it patches models through comfy.patcher_extension, which "
        "this ComfyUI lacks): update ComfyUI (git pull in the ComfyUI folder, or the manager's Update ComfyUI)"
    ) from error

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.example_inputs import copy_example_inputs

copy_example_inputs()  # the images the shipped workflows load, into ComfyUI's input folder when absent (never over a file)

WEB_DIRECTORY = "./web/js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
