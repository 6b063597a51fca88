"""ComfyUI node classes of the pack (thin: validation, tooltips, progress)."""

from .invert import DDIMInvertReference
from .masks_node import LoadMasks
from .patch_node import SemanticMatchPatch
from .transfer import AppearanceTransferSampler

NODE_CLASS_MAPPINGS = {
    "E4ELoadMasks": LoadMasks,
    "E4EDDIMInvertReference": DDIMInvertReference,
    "E4ESemanticMatchPatch": SemanticMatchPatch,
    "E4EAppearanceTransferSampler": AppearanceTransferSampler,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "E4ELoadMasks": "Load Masks (Eye-for-an-eye)",
    "E4EDDIMInvertReference": "DDIM Invert Reference",
    "E4ESemanticMatchPatch": "Semantic Match Patch",
    "E4EAppearanceTransferSampler": "Appearance Transfer Sampler",
}
