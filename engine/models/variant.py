"""A MODEL's variant: its prediction type and a fingerprint of everything that changes its denoiser (so an
inversion made with one variant is never used with another, and a sampler can tell what was added after the
patch)."""

from __future__ import annotations

import comfy.model_sampling

from ...inversion import ModelFingerprint
from .families import UnsupportedModelError, family_of, supported

OWN = "e4e_own"  # attribute set on the pack's own patches and wrappers: not part of a model's variant
FREEU_KEY = "e4e_authors_freeu"  # model_options entry: the authors' FreeU settings a MODEL carries


def prediction_type(model) -> str:
    """``"eps"``, ``"v"`` or ``"flow"`` (rectified flow: ``x = (1 - sigma) x0 + sigma noise``)."""
    ms = model.get_model_object("model_sampling")
    if isinstance(ms, comfy.model_sampling.V_PREDICTION):
        return "v"
    if isinstance(ms, comfy.model_sampling.EPS):
        return "eps"
    if isinstance(ms, comfy.model_sampling.CONST):
        return "flow"
    raise UnsupportedModelError(
        f"model: its sampling type {type(ms).__name__} is neither eps, v nor rectified flow; "
        f"use a {supported()} checkpoint without a sampling patch of another kind (e.g. a ModelSamplingContinuousV "
        "or Cosmos one)."
    )


# ---------------------------------------------------------------------------------------------- the variant


def _label(fn) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _entries(kind: str, value):
    """``(kind, label, identity)`` of every callable in a patch slot (a callable, a list, or a dict of them)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _entries(f"{kind}[{key}]", item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _entries(kind, item)
    elif value is not None and not getattr(value, OWN, False):
        yield kind, _label(value), id(value)


def variant(model) -> tuple:
    """Everything besides the loaded weights that changes what the denoiser computes, as sorted
    ``(what, label, identity)`` entries: weight patches such as LoRA (ComfyUI's ``patches_uuid``), object patches
    (the ``model_sampling`` of ModelSamplingDiscrete & co.), and the model-function patches, replacements,
    wrappers and CFG functions in ``model_options`` and on the patcher. The pack's own patches are left out
    (they are what Semantic Match Patch adds)."""
    out = [("weights", "weight patches (LoRA and the like)", str(getattr(model, "patches_uuid", "")))]
    for name, obj in sorted(getattr(model, "object_patches", {}).items()):
        out.append(("object", f"{name}: {type(obj).__name__}", id(obj)))
    opts = getattr(model, "model_options", {})
    to = opts.get("transformer_options", {})
    for slot in ("patches", "patches_replace", "wrappers"):
        for name, value in sorted(to.get(slot, {}).items(), key=lambda kv: str(kv[0])):
            out += _entries(f"{slot}.{name}", value)
    for key in ("model_function_wrapper", "sampler_cfg_function", "sampler_post_cfg_function",
                "sampler_pre_cfg_function", "sampler_calc_cond_batch_function"):
        out += _entries(key, opts.get(key))
    for name, value in sorted(getattr(model, "wrappers", {}).items()):
        out += _entries(f"wrappers.{name}", value)
    return tuple(sorted(out, key=lambda e: (e[0], e[1], str(e[2]))))


def fingerprint(model) -> ModelFingerprint:
    family = family_of(model).key
    return ModelFingerprint(
        family=family,
        prediction=prediction_type(model),
        model_class=type(model.model.model_config).__name__,
        model_id=id(model.model),
        freeu=getattr(model, "model_options", {}).get(FREEU_KEY),
        variant=variant(model),
    )


def own(fn):
    """Mark one of the pack's own patches or wrappers (left out of :func:`variant`); returns it."""
    setattr(fn, OWN, True)
    return fn


def _is_sampling(entry) -> bool:
    """An object patch of ``model_sampling`` (ModelSamplingDiscrete, ModelSamplingFlux & co.): what a sampler's
    sigmas mean and what the model predicts."""
    what, label, _ = entry
    return what == "object" and label.startswith("model_sampling")


COSTS = {
    "weights": "the output takes them on (a style LoRA may be what you want), but the target's details are no longer "
               "reproduced exactly",
    "other": "it changes the denoiser the images were inverted with, so the output follows the target less exactly "
             "(its structure and background may drift)",
}


def changed_since(made_with: ModelFingerprint, model) -> tuple[list[str], list[str]]:
    """What differs between the MODEL a sampler samples and the one a transfer was made with (the pack's own patches
    left out): ``(refused, warned)``, each a list of ``"what it is: what it costs"``. Another prediction type or
    model sampling is refused (the sampler could not follow the inversions at all); everything else (weight
    patches, attention and guidance patches, FreeU) is said."""
    now = fingerprint(model)
    before, after = set(made_with.variant), set(now.variant)
    changed = sorted((after - before) | (before - after), key=lambda e: (e[0], e[1], str(e[2])))
    refused = []
    if now.prediction != made_with.prediction:
        refused.append(f"the prediction type ({made_with.prediction} when inverted, {now.prediction} now)")
    refused += sorted({e[1] for e in changed if _is_sampling(e)})
    warned = []
    for what, label, _ in changed:
        if not _is_sampling((what, label, None)):
            cost = COSTS["weights" if what == "weights" else "other"]
            warned.append(f"{label} ({what}): {cost}")
    if now.freeu != made_with.freeu:
        warned.append(f"the authors' FreeU {now.freeu[:4] if now.freeu else 'removed'}: {COSTS['other']}")
    return refused, sorted(set(warned))
