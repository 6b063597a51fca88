"""Semantic Match Patch: a patched clone of MODEL that matches and injects reference features."""

from __future__ import annotations

from ..inversion import Inversion
from ..matching import ObjectMasks
from . import defaults as authors
from .attention_hooks import install
from .ddim_invert_reference import INVERSION_TYPE
from .layers import LAYER_PRESETS, resolve_layers
from .load_masks import MASKS_TYPE
from .model_family import DIT_FAMILIES, attention_blocks, fingerprint
from .transfer_state import Settings, TransferState

MAX_EXTRA_REFERENCES = 3


def _check_inversion(inv, name: str, fp, target: Inversion | None = None):
    if not isinstance(inv, Inversion):
        raise ValueError(f"{name}: expected the 'inversion' output of DDIM Invert Reference, got {type(inv).__name__}")
    if inv.fingerprint.model_id != fp.model_id or inv.fingerprint.model_class != fp.model_class:
        raise ValueError(
            f"{name}: inverted with another model ({inv.fingerprint.describe()}) than the one being patched "
            f"({fp.describe()}); connect the same MODEL to DDIM Invert Reference and Semantic Match Patch"
        )
    if inv.fingerprint.freeu != fp.freeu:
        def say(f):
            return "without the authors' FreeU" if f is None else f"with the authors' FreeU {f[:4]}"

        raise ValueError(
            f"{name}: inverted {say(inv.fingerprint.freeu)} but the model being patched is {say(fp.freeu)}; put "
            "Authors' FreeU once on the MODEL before both DDIM Invert Reference nodes and Semantic Match Patch"
        )
    if target is not None:
        if inv.latent_shape != target.latent_shape:
            lh, lw = inv.latent_shape[-2:]
            th, tw = target.latent_shape[-2:]
            raise ValueError(
                f"{name}: latent {lw * 8}x{lh * 8} differs from the target's {tw * 8}x{th * 8}; resize the reference "
                "image to the target's size (e.g. ImageScale) before VAE Encode"
            )
        if len(inv.sigmas) != len(target.sigmas) or not bool((inv.sigmas - target.sigmas).abs().max() < 1e-4):
            raise ValueError(
                f"{name}: inverted with {inv.steps} steps ({inv.scheduler}), the target with {target.steps} "
                f"({target.scheduler}); invert both with the same steps and scheduler"
            )


def build_state(model, target, reference, masks=None, extra_references=(), layers="auto", custom_layers="",
                start_percent=authors.START_PERCENT, end_percent=authors.END_PERCENT,
                structure_every=authors.STRUCTURE_EVERY, structure_end_percent=authors.STRUCTURE_END_PERCENT,
                strength=authors.STRENGTH) -> TransferState:
    fp = fingerprint(model)  # refuses unsupported families first
    _check_inversion(target, "target", fp)
    refs = [reference, *[r for r in extra_references if r is not None]]
    for i, r in enumerate(refs):
        _check_inversion(r, "reference" if i == 0 else f"reference_{i + 1}", fp, target)
    masks = ObjectMasks.whole_image() if masks is None else masks
    if not isinstance(masks, ObjectMasks):
        raise ValueError(f"masks: expected the output of Load Masks, got {type(masks).__name__}")
    masks.check_aspect(tuple(target.latent_shape[-2:]), "target")
    masks.check_aspect(tuple(reference.latent_shape[-2:]), "reference")
    present = attention_blocks(model)
    chosen = resolve_layers(layers, custom_layers, fp.family, present)
    missing = [f"{b}.{i}" for b, i in chosen if (b, i) not in present]
    if missing:
        dit = fp.family in DIT_FAMILIES
        kinds = ("double", "single") if dit else ("output",)
        have = ", ".join(_ranges(present, kinds))
        raise ValueError(f"layers: {', '.join(missing)} has no self-attention in this {fp.family} model, so nothing "
                         f"would be matched there; its {'blocks' if dit else 'decoder attention blocks'} are {have}")
    settings = Settings(
        layers=tuple(chosen),
        start_percent=start_percent,
        end_percent=end_percent,
        struct_every=structure_every,
        struct_end_percent=structure_end_percent,
        strength=strength,
    )
    net = model.model.diffusion_model
    patch_size = getattr(net, "patch_size", 2) if fp.family in DIT_FAMILIES else None
    return TransferState(target, refs, masks, settings, fp.family, patch_size)


def _ranges(blocks, kinds) -> list[str]:
    """``{("double", 0), ("double", 1), ("single", 0)}`` -> ``["double.0-1", "single.0"]``."""
    out = []
    for kind in kinds:
        ids = sorted(i for k, i in blocks if k == kind)
        if ids:
            out.append(f"{kind}.{ids[0]}-{ids[-1]}" if len(ids) > 1 and ids[-1] - ids[0] == len(ids) - 1
                       else ", ".join(f"{kind}.{i}" for i in ids))
    return out


class SemanticMatchPatch:
    DESCRIPTION = (
        "Patches a clone of MODEL for Eye-for-an-eye appearance transfer: at every sampling step, in the chosen "
        "decoder self-attention layers, each target token (inside the target mask) is replaced by its most "
        "similar reference token (inside the reference mask) before Q/K/V, so the target's structure takes the "
        "reference's appearance part by part. Early steps also inject the target's own features into the "
        "unconditional branch to hold the structure. The input MODEL is not changed; bypass the node and the "
        "effect is gone. Use with Appearance Transfer Sampler, or KSamplerAdvanced on a 'ddim' inversion."
    )
    CATEGORY = "appearance transfer/eye-for-an-eye"
    FUNCTION = "patch"
    RETURN_TYPES = ("MODEL",)
    OUTPUT_TOOLTIPS = ("A patched clone of the model; sample it from the target's start latent.",)

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            "masks": (MASKS_TYPE, {"tooltip": "Object masks from Load Masks. Without them the whole images are matched (and the target background is not kept)."}),
        }
        for i in range(2, 2 + MAX_EXTRA_REFERENCES):
            optional[f"reference_{i}"] = (INVERSION_TYPE, {"tooltip": f"Reference number {i} (for several objects from several references; see Load Masks' reference_of_object). Must have the target's size, steps and scheduler."})
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The model to patch (SD1.x, SD2.x, SDXL, Flux.1 or SD3); the same one the images were inverted with."}),
                "reference": (INVERSION_TYPE, {"tooltip": "Inversion of the reference image(s): the appearance. A batch of several references counts as references 1..R."}),
                "target": (INVERSION_TYPE, {"tooltip": "Inversion of the target image: the structure. Its schedule and start step drive the patch."}),
                "layers": (list(LAYER_PRESETS), {"default": "auto", "tooltip": "Attention blocks that match and inject. auto: output 6-11 for SD1/SD2 (the paper's six layers), output 0-5 for SDXL, Stable Flow's vital layers for Flux (double 0, 1, 17, 18, single 6, 9, 34, 35, 37), the second half of the joint blocks for SD3."}),
                "custom_layers": ("STRING", {"default": "output.6-11", "multiline": False, "tooltip": "Used when layers is 'custom': blocks like 'output.6-11, output.3' (UNet) or 'double.0-1, single.34-37' (Flux; SD3 joint blocks are 'double')."}),
                "start_percent": ("FLOAT", {"default": authors.START_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where in the sampled steps matching starts. 0.16 reproduces the authors' code exactly: structure injection at step 11 of 68, matching from step 12 (their config says 10; their step counter lags one step)."}),
                "end_percent": ("FLOAT", {"default": authors.END_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where matching ends (authors: the last step, 1.0)."}),
                "structure_every": ("INT", {"default": authors.STRUCTURE_EVERY, "min": 0, "max": 100, "tooltip": "Every n-th step from start_percent injects the target's own features into the unconditional branch instead of matching (authors: 5); on Flux/SD3 every row takes the target's own queries and keys instead (no negative branch needed). 0 turns it off."}),
                "structure_end_percent": ("FLOAT", {"default": authors.STRUCTURE_END_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Structure injection only before this point (0.60: the authors' last structure step is 36 of 68)."}),
                "strength": ("FLOAT", {"default": authors.STRENGTH, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "1 replaces target features by the matched reference features (the paper); lower blends; 0 disables the patch entirely."}),
            },
            "optional": optional,
        }

    def patch(self, model, reference, target, layers, custom_layers, start_percent, end_percent, structure_every,
              structure_end_percent, strength, masks=None, **extra):
        extra_refs = [extra.get(f"reference_{i}") for i in range(2, 2 + MAX_EXTRA_REFERENCES)]
        state = build_state(model, target, reference, masks, extra_refs, layers, custom_layers, start_percent,
                            end_percent, structure_every, structure_end_percent, strength)
        patched = install(model, state)
        steps = [target.start_step + state.match_from, target.start_step + max(state.match_to - 1, state.match_from)]
        ui = {"e4e_model": [{"family": state.family,
                             "layers": [f"{b}.{i}" for b, i in state.settings.layers],
                             "steps": steps}]}
        return {"ui": ui, "result": (patched,)}
