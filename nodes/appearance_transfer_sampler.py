"""Appearance Transfer Sampler: the full-fidelity path (edit-friendly DDPM with the target's noise maps)."""

from __future__ import annotations

from ..engine.backends.checks import finite
from ..engine.backends.pictures import pictures, viewer_entries
from ..engine.backends.sample import ENDINGS, transfer
from ..engine.models import defaults as authors
from .types import CATEGORY


class AppearanceTransferSampler:
    DESCRIPTION = (
        "Samples the Eye-for-an-eye transfer: starts from the target's inverted latent at its start step and "
        "follows the target's stored noise maps (edit-friendly DDPM); the patched MODEL rearranges reference "
        "features at every step, and masked AdaIN matches the latent statistics of each object to its reference "
        "in the last steps. With nothing transferred (strength 0), ending 'exact', and the inversion's cfg and "
        "prompts, it gives back the target exactly. Outputs the latent and a picture of what was matched (each "
        "target spot coloured by where in the reference it comes from)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "IMAGE")
    RETURN_NAMES = ("latent", "correspondence")
    OUTPUT_TOOLTIPS = (
        "The transferred latent (decode with VAE Decode).",
        "What was matched, at the last matched step: on the left the reference's colour code (each reference "
        "position has its own colour: red grows to the right, green downwards; one code per reference), on the "
        "right the target, each spot painted in the colour of the reference position it takes its appearance "
        "from; dark grey: outside the masks, kept as it is. The viewer on this node shows the same on the images "
        "after a run, with notices about nodes added after Semantic Match Patch that change the model.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The MODEL output of Semantic Match Patch."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt; the authors use 'A photo of a {domain}' for every branch."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt (authors: empty)."}),
                "cfg": ("FLOAT", {"default": authors.CFG, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip": "CFG scale (authors: 2.5). Only the conditional branch is rearranged, so CFG pushes towards the reference appearance."}),
                "adain": ("BOOLEAN", {"default": authors.ADAIN, "tooltip": "Masked AdaIN on the latent in the last steps: inside each object, the latent's channel mean/std are set to the reference's."}),
                "adain_start_percent": ("FLOAT", {"default": authors.ADAIN_START_PERCENT, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Where AdaIN starts in the sampled steps (0.73: after steps 49..67 of 68, as the authors' code runs it)."}),
                "ending": (list(ENDINGS), {"default": authors.ENDING, "tooltip": "The last step (edit-friendly inversions). authors: their zeroed last noise map, ending on the clean posterior mean at the smallest noise level. exact: adds the target's last stored noise map, so strength 0 with the inversion's cfg and prompts gives back the target bit for bit (but every output keeps a trace of the target's finest detail)."}),
            },
            "optional": {
                "target_image": ("IMAGE", {"tooltip": "The target image, only for the correspondence viewer in the editor."}),
                "reference_image": ("IMAGE", {"tooltip": "The reference image(s), only for the correspondence viewer in the editor."}),
            },
        }

    def sample(self, model, positive, negative, cfg, adain, adain_start_percent, ending=authors.ENDING,
               target_image=None, reference_image=None):
        finite(cfg=cfg, adain_start_percent=adain_start_percent)
        samples, run = transfer(model, positive, negative, cfg, adain, adain_start_percent, ending)
        out = {"result": ({"samples": samples}, pictures(run))}
        ui = {}
        entries = viewer_entries(run, target_image, reference_image)
        if entries:
            ui["e4e_correspondence"] = entries
        if run.notices:
            ui["e4e_notices"] = run.notices
        if ui:
            out["ui"] = ui
        return out
