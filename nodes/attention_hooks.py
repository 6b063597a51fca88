"""The method inside ComfyUI's UNet: the hooks a patched clone carries, and how they are installed (the
diffusion-transformer block patches are in ``dit_hooks``).

Two hooks reach one ``TransferState``:

* a wrapper around each UNet call that, at the steps where the method acts, appends the reference rows (the
  references' stored inverted latents at the current sigma) and, at structure-injection steps, the structure
  rows (the target's own inverted latents) to the batch, and drops them again from the output. Reference rows
  are never modified, so their features are exactly those of the reference's trajectory at that step;
* an ``attn1`` patch that, at the chosen decoder blocks, replaces each conditional ``out`` token inside the
  target mask by its cosine nearest neighbour among the reference tokens inside the reference mask (before
  Q/K/V: whole-feature injection), and at structure steps replaces the unconditional ``out`` rows by the
  structure rows.

On a host with ``comfy.patcher_extension`` (ComfyUI from late 2024) the wrapper is a keyed ``APPLY_MODEL``
wrapper, so other packs' wrappers coexist with it, and an ``OUTER_SAMPLE`` wrapper starts the run state of
each sampling run. Older hosts get the single ``model_function_wrapper`` slot (chaining what was there).
"""

from __future__ import annotations

import torch

from ..matching import rearrange, token_grid
from .transfer_state import CallLayout, TransferState

STATE_KEY = "e4e_transfer_state"
WRAPPER_KEY = "eye_for_an_eye"


# -------------------------------------------------------------------------------- the batch of a UNet call


def with_extra_rows(state: TransferState, apply_model, cond_or_uncond):
    """``apply_model(x, t, **c)`` with the reference / structure rows the current step needs appended."""

    def run(x, t, **c):
        step = state.step_of_sigma(float(t[0]))
        state.note_step(step)
        phase = state.phase(step)
        layout = _layout(state, phase, step, x, cond_or_uncond, c) if phase is not None else None
        if layout is None:
            return apply_model(x, t, **c)
        b = x.shape[0]
        per = b // len(cond_or_uncond)
        ref_latents, tgt_latents = state.latents_on(x.device, x.dtype)
        if tuple(x.shape[-2:]) != tuple(ref_latents.shape[-2:]):
            h, w = ref_latents.shape[-2:]
            raise ValueError(f"latent: the sampler's latent is {x.shape[-1]}x{x.shape[-2]} but the inversions are "
                             f"{w}x{h}; sample the target inversion's start_latent (conditioning that crops the "
                             "latent, such as an area, is not supported with the patch)")
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
        _label_extra_chunks(c_all, per, labels, state)
        state.call = layout
        try:
            out = apply_model(torch.cat([x, extra]), torch.cat([t, t[:1].expand(len(extra))]), **c_all)
        finally:
            state.call = None
        return out[:b]

    return run


def _layout(state: TransferState, phase: str, step: int, x: torch.Tensor, cond_or_uncond, c: dict):
    """Which rows of this call are positive / negative and where the extra rows will sit; None: nothing to do.

    UNet: structure steps act on the negative rows only (none at cfg 1); DiT: on every row."""
    chunks = len(cond_or_uncond)
    per = x.shape[0] // chunks
    rows = torch.arange(x.shape[0], device=x.device).view(chunks, per)
    cond = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 0]
    dit = state.patch_size is not None
    targets = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 1 or dit]
    match = phase == "match" and bool(cond)
    struct = phase == "struct" and bool(targets)
    if not (match or struct):
        return None
    b = x.shape[0]
    layout = CallLayout(step, match, struct)
    if match:
        layout.cond_rows = torch.cat(cond)  # every positive chunk (several prompts are several chunks)
        layout.ref_rows = torch.arange(b, b + state.n_refs, device=x.device)
    if struct:
        start = b + (state.n_refs if match else 0)
        layout.struct_targets = torch.cat(targets)
        layout.struct_rows = torch.arange(start, start + per, device=x.device).repeat(len(targets))
        # the structure rows' prompt: the negative one for a UNet (they stand in for the negative rows), the
        # positive one for a DiT (their queries and keys go to every row)
        layout.struct_source = cond[0] if dit and cond else targets[0]
    if dit:
        p = state.patch_size
        layout.grid = (-(-x.shape[-2] // p), -(-x.shape[-1] // p))
        context = c.get("c_crossattn")
        layout.context_len = context.shape[1] if isinstance(context, torch.Tensor) and context.ndim == 3 else 0
    return layout


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


def _label_extra_chunks(c: dict, per: int, labels: list[int], state: TransferState):
    """Tell other attention patches about the extra rows: ``cond_or_uncond`` (and ``uuids``) gain one entry per
    ``per`` extra rows (references count as positive, structure rows as negative), so patches that split the
    batch by ``len(cond_or_uncond)`` (IPAdapter-style) still see whole chunks. When the extra rows do not fill
    whole chunks the lists are left as they are. The extra chunks get uuids of their own (the same for the
    whole patched model), so that caches keyed by uuid do not mix them with a prompt."""
    opts = c.get("transformer_options")
    if not isinstance(opts, dict) or "cond_or_uncond" not in opts or len(labels) % per:
        return
    opts = dict(opts)
    chunk_labels = labels[::per]
    opts["cond_or_uncond"] = list(opts["cond_or_uncond"]) + chunk_labels
    if isinstance(opts.get("uuids"), list) and opts["uuids"]:
        opts["uuids"] = list(opts["uuids"]) + state.chunk_uuids(len(chunk_labels))
    c["transformer_options"] = opts


def _pad_rows(t, extra: int):
    if not isinstance(t, torch.Tensor):
        return t
    return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))])


# -------------------------------------------------------------------------------- attn1


def attn1_patch(state: TransferState, n, context, value, extra):
    """ComfyUI's attn1 patch: ``n`` is the block's ``norm1`` output (becomes Q, K and V)."""
    call = state.call
    if call is None or extra.get("block") not in state.layers:
        return n, context, value
    n_in = n
    if call.match:
        n = inject_matches(state, call, n, extra)
    if call.struct:
        n = inject_structure(state, call, n, extra)
    ctx = n if context is n_in else context
    val = n if value is n_in else value
    return n, ctx, val


def inject_matches(state: TransferState, call: CallLayout, n: torch.Tensor, extra: dict) -> torch.Tensor:
    """Each positive ``out`` token of a target object takes the features of its nearest reference token."""
    shape = extra.get("original_shape") or extra.get("activations_shape")
    if shape is None:
        raise ValueError("layers: this ComfyUI passes no feature-map shape to attention patches "
                         "(original_shape); update ComfyUI")
    try:
        h, w = token_grid(n.shape[1], shape[-2], shape[-1])
    except ValueError as exc:
        raise ValueError(f"layers: block {extra['block']} has a token map the latent does not explain ({exc}); "
                         "choose other layers") from None
    out = n.index_select(0, call.cond_rows)  # [B, N, C]
    refs = n.index_select(0, call.ref_rows)  # [R, N, C]
    src = state.match(call, out, refs, (h, w), extra["block"])
    flat = refs.reshape(1, -1, refs.shape[-1]).expand(out.shape[0], -1, -1)
    return n.index_copy(0, call.cond_rows, rearrange(out, flat, src, strength=state.settings.strength))


def inject_structure(state: TransferState, call: CallLayout, n: torch.Tensor, extra: dict) -> torch.Tensor:
    """The unconditional ``out`` rows take the target's own features (its stored inverted latent); same
    signature as :func:`inject_matches`."""
    return n.index_copy(0, call.struct_targets, n.index_select(0, call.struct_rows))


# -------------------------------------------------------------------------------- installing on a clone


def _keyed_wrappers():
    """``comfy.patcher_extension.WrappersMP`` on hosts that have keyed wrappers, else None."""
    try:
        from comfy.patcher_extension import WrappersMP
    except ImportError:
        return None
    return WrappersMP


def install(model, state: TransferState):
    """A clone of ``model`` with the state's hooks; ``model`` itself is not touched."""
    if STATE_KEY in getattr(model, "model_options", {}):
        raise ValueError("model: this MODEL already comes from a Semantic Match Patch; patch the original MODEL once "
                         "(several references go into one patch: reference_2, reference_3, ...)")
    m = model.clone()
    wrappers = _keyed_wrappers()
    if wrappers is not None and hasattr(m, "add_wrapper_with_key"):
        def apply_model_wrapper(executor, x, t, c_concat=None, c_crossattn=None, control=None,
                                transformer_options=None, **kwargs):
            c = dict(c_concat=c_concat, c_crossattn=c_crossattn, control=control,
                     transformer_options=transformer_options if transformer_options is not None else {}, **kwargs)
            roles = c["transformer_options"].get("cond_or_uncond")
            if not roles:  # not a call of the sampler's CFG batching
                return executor(x, t, **c)
            return with_extra_rows(state, executor, roles)(x, t, **c)

        def outer_sample_wrapper(executor, *args, **kwargs):
            state.begin_run()
            return executor(*args, **kwargs)

        m.add_wrapper_with_key(wrappers.APPLY_MODEL, WRAPPER_KEY, apply_model_wrapper)
        m.add_wrapper_with_key(wrappers.OUTER_SAMPLE, WRAPPER_KEY, outer_sample_wrapper)
    else:
        previous = m.model_options.get("model_function_wrapper")

        def unet_wrapper(apply_model, args):
            inner = with_extra_rows(state, apply_model, args["cond_or_uncond"])
            if previous is not None:
                return previous(inner, args)
            return inner(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(unet_wrapper)

    if state.patch_size is not None:  # a diffusion transformer: block patches on its image tokens
        from .dit_hooks import add_block_patches

        add_block_patches(m, state)
    else:
        def patch(n, context, value, extra):  # a closure, so clones share it instead of deep-copying
            return attn1_patch(state, n, context, value, extra)

        m.set_model_attn1_patch(patch)
    m.model_options[STATE_KEY] = state
    return m


def state_of(model) -> TransferState | None:
    return getattr(model, "model_options", {}).get(STATE_KEY)
