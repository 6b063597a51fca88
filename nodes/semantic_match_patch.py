"""Semantic Match Patch: a patched clone of MODEL that matches and injects reference features."""

from __future__ import annotations

from ..engine.backends.checks import finite
from ..engine.models import defaults as authors
from ..engine.models.blocks import attention_blocks
from ..engine.models.families import family_keys, family_names
from ..engine.models.layers import CUSTOM_DEFAULT, GRAMMAR, LAYER_PRESETS, MATCH_AUTO
from ..engine.patch.install import patch_model
from ..engine.patch.plan import VIDEO_MATCHING, make_plan
from ..engine.patch.sources import SEMANTIC, PositionMatching
from .types import CATEGORY, INVERSION, MASKS

MAX_EXTRA_REFERENCES = 3
MATCHING = ("semantic", "positions (baseline)")
DIT_NAMES, UNET_NAMES = family_names(family_keys("dit")), family_names(family_keys("unet"))


class SemanticMatchPatch:
    DESCRIPTION = (
        "Patches a clone of MODEL for Eye-for-an-eye appearance transfer: at every sampling step, in the chosen "
        "decoder self-attention layers, each target token (inside the target mask) is replaced by its most "
        "similar reference token (inside the reference mask) before Q/K/V, so the target's structure takes the "
        "reference's appearance part by part. Early steps also inject the target's own features into the "
        "unconditional branch to hold the structure. The input MODEL is not changed; bypass the node and the "
        "effect is gone. Use with Appearance Transfer Sampler, or KSamplerAdvanced on a 'ddim' inversion."
    )
    CATEGORY = CATEGORY
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A patched clone of the model; sample it from the target's start latent.",)

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            "masks": (MASKS, {"tooltip": "Object masks from Load Masks. Without them the whole images are matched (and the target background is not kept)."}),
        }
        for i in range(2, 2 + MAX_EXTRA_REFERENCES):
            optional[f"reference_{i}"] = (INVERSION, {"tooltip": f"Reference number {i} (for several objects from several references; see Load Masks' reference_of_object). Must have the target's size, steps and scheduler."})
        optional["video_matching"] = (list(VIDEO_MATCHING), {"default": VIDEO_MATCHING[0], "tooltip": "Video (Wan): per frame matches every frame against the reference on its own (the paper's rule, frame by frame); anchor frame matches the first frame and lets every other token take the match of its nearest first-frame token of the same object (a part keeps its reference part: least flicker); whole clip matches every token against all the reference's frames. Images ignore it."})
        optional["hints"] = ("STRING", {"default": "", "multiline": True, "tooltip": "Correspondence hints, where the matching goes wrong (left and right swapped, a part taken for its twin): pairs 'target x,y > reference x,y' (image-relative, 0..1, x from the left, y from the top), separated by ';' or new lines, '@2' at the end of a pair for reference 2. Click them in the correspondence viewer of the Appearance Transfer Sampler after a run: click the target spot, then the reference spot. Per object, a map fitted to its hints (a shift, a similarity, or from three hints an affine map; mirrored where that fits the masks better) favours the reference tokens near where it sends each target token, and a hinted spot takes its hinted spot. Empty: the plain matching."})
        optional["hint_strength"] = ("FLOAT", {"default": authors.HINT_STRENGTH, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip": "How much the hints steer: the bonus on the cosine similarity (which runs from -1 to 1) of the reference tokens where the hints' map sends a target token. 0: the hints do nothing (the plain matching, bit for bit)."})
        optional["matching"] = (list(MATCHING), {"default": MATCHING[0], "tooltip": "semantic: the method (each target token takes its most similar reference token). positions (baseline): token i takes the reference token at the same place, nothing is matched: put it beside the method to see what the matching does (the toy world's template does)."})
        optional["match_block"] = ("STRING", {"default": MATCH_AUTO, "tooltip": f"Diffusion transformers ({DIT_NAMES}): the one block whose features find each step's correspondence, which every rewritten block then uses (the same target token takes the same reference token everywhere). auto: the block at half the depth (Flux.1 single.9, as DiTF; SD3.5 Large double.19, Qwen-Image double.30, Wan 1.3B double.15); a block like 'single.9' or 'double.12'; 'each layer': every rewritten block matches on its own features. UNets ({UNET_NAMES}) always match at every rewritten layer on its own features, the paper's rule: leave auto."})
        return {
            "required": {
                "model": ("MODEL", {"tooltip": f"The model to patch ({family_names(last='or')}); the same one the images were inverted with."}),
                "reference": (INVERSION, {"tooltip": "Inversion of the reference image(s): the appearance. A batch of several references counts as references 1..R."}),
                "target": (INVERSION, {"tooltip": "Inversion of the target image: the structure. Its schedule and start step drive the patch."}),
                "layers": (list(LAYER_PRESETS), {"default": "auto", "tooltip": "Attention blocks that match and inject. auto: output 6-11 for SD1/SD2 (the paper's six layers), output 0-5 for SDXL, Stable Flow's vital layers for Flux (double 0, 1, 17, 18, single 6, 9, 34, 35, 37), the second half of the blocks for SD3, Qwen-Image and Wan."}),
                "custom_layers": ("STRING", {"default": CUSTOM_DEFAULT, "multiline": False, "e4e_grammar": GRAMMAR, "tooltip": "Used when layers is 'custom': blocks like 'output.6-11, output.3' (UNet) or 'double.0-1, single.34-37' (Flux; SD3, Qwen-Image and Wan blocks are 'double')."}),
                "start_percent": ("FLOAT", {"default": authors.START_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where in the sampled steps matching starts. 0.16 reproduces the authors' code exactly: structure injection at step 11 of 68, matching from step 12 (their config says 10; their step counter lags one step)."}),
                "end_percent": ("FLOAT", {"default": authors.END_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where matching ends (authors: the last step, 1.0)."}),
                "structure_every": ("INT", {"default": authors.STRUCTURE_EVERY, "min": 0, "max": 100, "tooltip": f"Every n-th step from start_percent injects the target's own features into the unconditional branch instead of matching (authors: 5); on the diffusion transformers ({DIT_NAMES}) every row takes the target's own queries and keys instead (no negative branch needed). 0 turns it off."}),
                "structure_end_percent": ("FLOAT", {"default": authors.STRUCTURE_END_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Structure injection only before this point (0.60: the authors' last structure step is 36 of 68)."}),
                "strength": ("FLOAT", {"default": authors.STRENGTH, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "1 replaces target features by the matched reference features (the paper); lower blends; 0 disables the patch entirely."}),
            },
            "optional": optional,
        }

    def patch(self, model, reference, target, layers, custom_layers, start_percent, end_percent, structure_every,
              structure_end_percent, strength, masks=None, video_matching=VIDEO_MATCHING[0], match_block=MATCH_AUTO,
              hints="", hint_strength=authors.HINT_STRENGTH, matching=None, **extra):
        finite(start_percent=start_percent, end_percent=end_percent, structure_end_percent=structure_end_percent,
               strength=strength, hint_strength=hint_strength)
        extra_refs = [extra.get(f"reference_{i}") for i in range(2, 2 + MAX_EXTRA_REFERENCES)]
        if matching not in (None, *MATCHING):
            raise ValueError(f"matching: {matching!r} is not one of {list(MATCHING)}")
        source = PositionMatching() if matching == MATCHING[1] else SEMANTIC
        plan = make_plan(model, target, reference, masks, extra_refs, layers, custom_layers, start_percent,
                         end_percent, structure_every, structure_end_percent, strength, video_matching, match_block,
                         hints, hint_strength, source=source)
        window = plan.window()
        matcher = plan.settings.match_block
        ui = {"e4e_model": [{"family": plan.family.key,
                             "layers": [f"{b}.{i}" for b, i in plan.settings.layers],
                             "match_block": f"{matcher[0]}.{matcher[1]}" if matcher else "",
                             "blocks": sorted(f"{b}.{i}" for b, i in attention_blocks(plan.family,
                                                                                      model.model.diffusion_model)),
                             "steps": list(window) if window else []}]}
        return {"ui": ui, "result": (patch_model(model, plan),)}
