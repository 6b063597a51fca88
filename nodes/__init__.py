"""ComfyUI node classes of the pack (V1 API). Each module is the node's schema and one call into ``engine``."""

from .appearance_transfer_sampler import AppearanceTransferSampler
from .authors_freeu import AuthorsFreeU
from .ddim_invert_reference import DDIMInvertReference
from .load_masks import LoadMasks
from .semantic_match_patch import SemanticMatchPatch
from .toy_world import ToyCreatures, ToyModel, ToyVAEDecode, ToyVAEEncode
from .types import display_name

NODE_CLASS_MAPPINGS = {
    "E4ELoadMasks": LoadMasks,
    "E4EDDIMInvertReference": DDIMInvertReference,
    "E4ESemanticMatchPatch": SemanticMatchPatch,
    "E4EAppearanceTransferSampler": AppearanceTransferSampler,
    "E4EAuthorsFreeU": AuthorsFreeU,
    "E4EToyModel": ToyModel,
    "E4EToyCreatures": ToyCreatures,
    "E4EToyVAEEncode": ToyVAEEncode,
    "E4EToyVAEDecode": ToyVAEDecode,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "E4ELoadMasks": display_name("Load Masks"),
    "E4EDDIMInvertReference": display_name("DDIM Invert Reference"),
    "E4ESemanticMatchPatch": display_name("Semantic Match Patch"),
    "E4EAppearanceTransferSampler": display_name("Appearance Transfer Sampler"),
    "E4EAuthorsFreeU": display_name("Authors' FreeU"),
    "E4EToyModel": display_name("Toy Model"),
    "E4EToyCreatures": display_name("Toy Creatures"),
    "E4EToyVAEEncode": display_name("Toy VAE Encode"),
    "E4EToyVAEDecode": display_name("Toy VAE Decode"),
}
