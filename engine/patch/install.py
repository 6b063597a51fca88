"""Putting a plan on a clone of the user's MODEL: the keyed wrappers and the attention patches.

* ``OUTER_SAMPLE`` wrapper: each sampling run gets a fresh ``TransferRun``, put into the run's own
  ``model_options["transformer_options"]`` (ComfyUI copies the options for every run and passes them to every
  model call), and dropped with them when the run ends;
* ``APPLY_MODEL`` wrapper: ``call.on_model_call`` (the extra rows and the call's layout);
* the attention patches: ``unet.Attn1Patch``, or ``dit.BlockPatch`` per rewritten block and on the matching block.

Keyed wrappers (``comfy.patcher_extension``, ComfyUI since late 2024) let other packs' wrappers coexist with
these. The input MODEL is never touched: everything goes onto a clone, so bypassing the node removes it all.
"""

from __future__ import annotations

import logging

from comfy.patcher_extension import WrappersMP

from ..models.variant import changed_since, own
from . import call
from .dit import add_block_patches
from .plan import PLAN_KEY, TransferPlan, plan_of
from .run import RUN_KEY, TransferRun
from .unet import Attn1Patch

WRAPPER_KEY = "eye_for_an_eye"
log = logging.getLogger("eye_for_an_eye")


def check_sampled_model(plan: TransferPlan, model) -> list[str]:
    """The MODEL a sampler is about to sample, against the one the transfer was made with (nodes placed between
    Semantic Match Patch and the sampler): another prediction type or model sampling is refused by name (the
    sampler could not follow the inversions at all); other changes (LoRA and other weight patches, attention and
    guidance patches, FreeU) are logged once per run and returned, for the sampler's UI."""
    refused, warned = changed_since(plan.fingerprint, model)
    if refused:
        raise ValueError(
            f"model: {'; '.join(refused)} changed after Semantic Match Patch, but the images were inverted without "
            "it, so the sampler cannot follow the inversions. Put that node (e.g. ModelSamplingDiscrete) on the MODEL "
            "before DDIM Invert Reference and Semantic Match Patch, so that all three see it."
        )
    if warned:
        log.warning("Eye-for-an-eye: the sampled MODEL differs from the one the images were inverted with, by nodes "
                    "placed after Semantic Match Patch: %s. For an exact transfer put them before DDIM Invert Reference "
                    "and Semantic Match Patch.", "; ".join(warned))
    return [f"Added after Semantic Match Patch: {w}" for w in warned]


def patch_model(model, plan: TransferPlan):
    """A clone of ``model`` carrying ``plan``; ``model`` itself is not touched."""
    if plan_of(model) is not None:
        raise ValueError("model: this MODEL already comes from a Semantic Match Patch; patch the original MODEL once "
                         "(several references go into one patch: reference_2, reference_3, ...)")
    m = model.clone()

    @own
    def outer_sample(executor, *args, **kwargs):
        guider = executor.class_obj
        notices = check_sampled_model(plan, guider.model_patcher)  # refuses what the sampler could not follow
        opts = guider.model_options.setdefault("transformer_options", {})
        opts[RUN_KEY] = TransferRun(plan, notices)  # the guider's per-run copy of the options: gone with the run
        return executor(*args, **kwargs)

    @own
    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kw):
        # BaseModel.apply_model passes these positionally; the rows are added by keyword
        return call.on_model_call(plan, executor, x, t, c_concat=c_concat, c_crossattn=c_crossattn, control=control,
                                  transformer_options=transformer_options if transformer_options is not None else {},
                                  **kw)

    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, outer_sample)
    m.add_wrapper_with_key(WrappersMP.APPLY_MODEL, WRAPPER_KEY, apply_model)
    if plan.dit:
        add_block_patches(m, plan)
    else:
        m.set_model_attn1_patch(Attn1Patch(plan))
    m.model_options[PLAN_KEY] = plan
    return m
