"""ComfyUI node classes of the pack (thin: validation, tooltips, progress)."""

from .appearance_transfer_sampler import AppearanceTransferSampler
from .authors_freeu import AuthorsFreeU
from .ddim_invert_reference import DDIMInvertReference
from .load_masks import LoadMasks
from .semantic_match_patch import SemanticMatchPatch

NODE_CLASS_MAPPINGS = {
    "E4ELoadMasks": LoadMasks,
    "E4EDDIMInvertReference": DDIMInvertReference,
    "E4ESemanticMatchPatch": SemanticMatchPatch,
    "E4EAppearanceTransferSampler": AppearanceTransferSampler,
    "E4EAuthorsFreeU": AuthorsFreeU,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "E4ELoadMasks": "Load Masks (Eye-for-an-eye)",
    "E4EDDIMInvertReference": "DDIM Invert Reference",
    "E4ESemanticMatchPatch": "Semantic Match Patch",
    "E4EAppearanceTransferSampler": "Appearance Transfer Sampler",
    "E4EAuthorsFreeU": "Authors' FreeU (Eye-for-an-eye)",
}
