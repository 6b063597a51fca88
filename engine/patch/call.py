"""One model call: at the steps where the method acts, the batch gains the reference rows (the references' stored
inverted latents at the current sigma) and, at structure steps, the structure rows (the target's own), and
loses them again from the output. Reference rows are never modified, so their features are exactly those of
the reference's trajectory at that step.

Where each role sits in the extended batch is a ``CallLayout`` that travels with the call in
``transformer_options[CALL_KEY]``, where the attention hooks (``unet.py``, ``dit.py``) read it, beside the run
(``RUN_KEY``); nothing of a call is kept anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .plan import TransferPlan
from .run import RUN_KEY, TransferRun

CALL_KEY = "e4e_call"


@dataclass(frozen=True)
class CallLayout:
    """Where each role sits in the batch of one model call (row indices on the model's device).

    ``struct_targets[j]`` takes the features of ``struct_rows[j]`` at structure steps (UNet: the negative rows;
    DiT: every row). ``grid`` and ``context_len`` locate the image tokens of a DiT (``None`` / 0 for a UNet).
    """

    step: int
    match: bool
    struct: bool
    cond_rows: torch.Tensor | None = None
    ref_rows: torch.Tensor | None = None
    struct_targets: torch.Tensor | None = None
    struct_rows: torch.Tensor | None = None
    struct_source: torch.Tensor | None = None  # rows whose conditioning the structure rows take
    grid: tuple[int, int] | None = None
    context_len: int = 0
    frames: int = 1  # video: latent frames; a DiT's image tokens are frames x grid, frame by frame


def call_of(transformer_options: dict | None) -> tuple[CallLayout | None, TransferRun | None]:
    """The layout and the run of the model call these ``transformer_options`` belong to."""
    opts = transformer_options or {}
    return opts.get(CALL_KEY), opts.get(RUN_KEY)


def on_model_call(plan: TransferPlan, apply_model, x: torch.Tensor, t: torch.Tensor, **c):
    """The ``APPLY_MODEL`` wrapper's body: ``apply_model(x, t, **c)`` with the rows the current step needs."""
    opts = c.get("transformer_options") or {}
    roles = opts.get("cond_or_uncond")
    if not roles:  # not a call of the sampler's CFG batching
        return apply_model(x, t, **c)
    _check_latent(x, plan.tensors.ref_latents)  # every call: a wrong latent fails here, not deep in the model
    run = opts.get(RUN_KEY) or TransferRun(plan)  # a sampler that skips the outer wrapper: a run of its own
    step = run.step_of_sigma(float(t[0]))
    phase = plan.phase(step)
    layout = _layout(plan, phase, step, x, roles, c) if phase is not None else None
    if layout is None:
        return apply_model(x, t, **c)
    b = x.shape[0]
    per = b // len(roles)
    ref_latents, tgt_latents = run.latents(x.device, x.dtype)
    extra_x, source_rows, labels = [], [], []
    if layout.match:
        refs = ref_latents[step]
        extra_x.append(refs)
        source_rows.append(layout.cond_rows[:1].expand(len(refs)))  # conditioning of the first positive row
        labels += [0] * len(refs)
    if layout.struct:
        tgt = tgt_latents[step]
        if tgt.shape[0] != per:
            raise ValueError(f"latent: batch of {per} but the target inversion holds {tgt.shape[0]} image(s); "
                             "sample the same batch that was inverted")
        extra_x.append(tgt)
        source_rows.append(layout.struct_source)
        labels += [1] * per
    extra = torch.cat(extra_x)
    c_all = _extend_conditioning(c, b, torch.cat(source_rows))
    c_all["transformer_options"] = {**_labelled(opts, per, labels, plan), CALL_KEY: layout, RUN_KEY: run}
    out = apply_model(torch.cat([x, extra]), torch.cat([t, t[:1].expand(len(extra))]), **c_all)
    return out[:b]


def _check_latent(x: torch.Tensor, ref_latents: torch.Tensor):
    """The sampler's latent has the inversions' channels, frames and size (before the model sees the extra rows)."""
    c, (h, w) = ref_latents.shape[2], ref_latents.shape[-2:]
    if x.ndim != ref_latents.ndim - 1:
        kind = {4: "an image latent [B, C, H, W]", 5: "a video latent [B, C, T, H, W]"}
        raise ValueError(f"latent: the sampler gives {kind.get(x.ndim, f'a {x.ndim}-D latent')} but the patch was "
                         f"made for {kind.get(ref_latents.ndim - 1)}; sample the target inversion's start_latent")
    if x.ndim == 5 and x.shape[2] != ref_latents.shape[3]:
        raise ValueError(f"latent: the sampler's latent has {x.shape[2]} frame(s) (an image latent counts as one), "
                         f"but the target inversion has {ref_latents.shape[3]}; sample the target inversion's "
                         "start_latent")
    if x.shape[1] != c:
        raise ValueError(f"latent: {x.shape[1]} channels, but the patched model and its inversions work on {c}; "
                         "sample the target inversion's start_latent (a latent from this model's VAE)")
    if tuple(x.shape[-2:]) != (h, w):
        raise ValueError(f"latent: the sampler's latent is {x.shape[-1]}x{x.shape[-2]} but the inversions are "
                         f"{w}x{h}; sample the target inversion's start_latent (conditioning that crops the "
                         "latent, such as an area, is not supported with the patch)")


def _layout(plan: TransferPlan, phase: str, step: int, x: torch.Tensor, cond_or_uncond, c: dict):
    """Which rows of this call are positive / negative and where the extra rows will sit; None: nothing to do.

    UNet: structure steps act on the negative rows only (none at cfg 1); DiT: on every row."""
    chunks = len(cond_or_uncond)
    per = x.shape[0] // chunks
    rows = torch.arange(x.shape[0], device=x.device).view(chunks, per)
    cond = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 0]
    dit = plan.dit
    targets = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 1 or dit]
    match = phase == "match" and bool(cond)
    struct = phase == "struct" and bool(targets)
    if not (match or struct):
        return None
    b = x.shape[0]
    kw: dict = {}
    if match:
        kw["cond_rows"] = torch.cat(cond)  # every positive chunk (several prompts are several chunks)
        kw["ref_rows"] = torch.arange(b, b + plan.n_refs, device=x.device)
    if struct:
        start = b + (plan.n_refs if match else 0)
        kw["struct_targets"] = torch.cat(targets)
        kw["struct_rows"] = torch.arange(start, start + per, device=x.device).repeat(len(targets))
        # the structure rows' prompt: the negative one for a UNet (they stand in for the negative rows), the
        # positive one for a DiT (their queries and keys go to every row)
        kw["struct_source"] = cond[0] if dit and cond else targets[0]
    if dit:
        p = plan.patch_size
        kw["grid"] = (-(-x.shape[-2] // p), -(-x.shape[-1] // p))
        context = c.get("c_crossattn")
        kw["context_len"] = context.shape[1] if isinstance(context, torch.Tensor) and context.ndim == 3 else 0
        kw["frames"] = x.shape[2] if x.ndim == 5 else 1
    return CallLayout(step, match, struct, **kw)


def _extend_conditioning(c: dict, b: int, rows: torch.Tensor) -> dict:
    """Conditioning for ``b + len(rows)`` rows: per-row tensors (also inside lists, as Flux Kontext's reference
    latents) gain copies of ``rows``; control is zero there."""

    def extend(v):
        if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == b:
            return torch.cat([v, v.index_select(0, rows.to(v.device))])
        return v

    out = {}
    for key, v in c.items():
        if isinstance(v, torch.Tensor):
            out[key] = extend(v)
        elif isinstance(v, list) and key != "control":
            out[key] = [extend(item) for item in v]
        elif key == "control" and isinstance(v, dict):
            out[key] = {k: [_pad_rows(t, len(rows)) for t in lst] if isinstance(lst, list) else lst
                        for k, lst in v.items()}
        else:
            out[key] = v
    return out


def _labelled(opts: dict, per: int, labels: list[int], plan: TransferPlan) -> dict:
    """Tell other attention patches about the extra rows: ``cond_or_uncond`` (and ``uuids``) gain one entry per
    ``per`` extra rows (references count as positive, structure rows as negative), so patches that split the
    batch by ``len(cond_or_uncond)`` (IPAdapter-style) still see whole chunks. When the extra rows do not fill
    whole chunks the lists are left as they are. The extra chunks get the plan's own uuids, so that caches keyed
    by uuid do not mix them with a prompt."""
    if "cond_or_uncond" not in opts or len(labels) % per:
        return dict(opts)
    chunk_labels = labels[::per]
    out = dict(opts)
    out["cond_or_uncond"] = list(opts["cond_or_uncond"]) + chunk_labels
    if isinstance(opts.get("uuids"), list) and opts["uuids"]:
        out["uuids"] = list(opts["uuids"]) + list(plan.chunk_uuids[:len(chunk_labels)])
    return out


def _pad_rows(t, extra: int):
    if not isinstance(t, torch.Tensor):
        return t
    return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))])
