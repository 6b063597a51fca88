"""The model-patcher glue of the method: per-step semantic matching and feature injection in attn1.

One ``TransferState`` carries a patched model's run state (the inversions, masks, settings, token-mask
cache and what was matched). Two closures reach it:

* a UNet function wrapper that, at the steps where the method acts, appends the reference rows (the
  references' stored inverted latents at the current sigma) and, at structure-injection steps, the
  structure rows (the target's own inverted latents) to the batch of the UNet call, and drops them again
  from the output. Reference rows are never modified, so their features are exactly those of the
  reference's trajectory at that step;
* an ``attn1_patch`` that, at the chosen decoder blocks, replaces each conditional ``out`` token inside
  the target mask by its cosine nearest neighbour among the reference tokens inside the reference mask
  (before Q/K/V: whole-feature injection), and at structure steps replaces the unconditional ``out``
  rows by the structure rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..inversion import Inversion
from ..matching import mask_to_tokens, match_objects, rearrange, token_grid
from .masks import ObjectMasks

log = logging.getLogger("eye_for_an_eye")

STATE_KEY = "e4e_transfer_state"
NEAR = 0.02  # relative sigma distance below which a sampler step *is* an inversion step
FAR = 0.25  # above this the schedules are refused


@dataclass
class Settings:
    layers: tuple[tuple[str, int], ...]
    start_percent: float = 0.16
    end_percent: float = 1.0
    struct_every: int = 5
    struct_end_percent: float = 0.60
    strength: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError("start_percent/end_percent: need 0 <= start_percent <= end_percent <= 1")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("strength: must be between 0 and 1")
        if self.struct_every < 0:
            raise ValueError("structure_every: must be >= 0 (0 turns structure injection off)")
        if not self.layers:
            raise ValueError("layers: no layer chosen")


@dataclass
class CallLayout:
    """Where each role sits in the batch of the current UNet call (row indices on the model's device)."""

    step: int
    match: bool
    struct: bool
    cond_rows: torch.Tensor | None
    uncond_rows: torch.Tensor | None
    ref_rows: torch.Tensor | None
    struct_rows: torch.Tensor | None


@dataclass
class Records:
    """What the patch did: (step, block, block_index, kind) -> count, and the last correspondence."""

    events: dict = field(default_factory=dict)
    last_src: torch.Tensor | None = None  # [B, N] flat indices into the references' tokens, -1 = kept
    last_grid: tuple[int, int] | None = None
    last_layer: str = ""
    last_step: int = -1
    notes: list = field(default_factory=list)

    def new_run(self):
        self.events.clear()
        self.last_src, self.last_grid, self.last_layer, self.last_step = None, None, "", -1

    def add(self, step, block, index, kind):
        key = (step, block, index, kind)
        self.events[key] = self.events.get(key, 0) + 1


class TransferState:
    def __init__(self, target: Inversion, references: list[Inversion], masks: ObjectMasks, settings: Settings,
                 family: str):
        self.target = target
        self.ref_latents = torch.cat([r.latents for r in references], dim=1)  # [n+1, R, C, H, W]
        self.n_refs = self.ref_latents.shape[1]
        self.masks = masks
        self.ref_ids = masks.resolve_ref_ids(self.n_refs)
        self.settings = settings
        self.family = family
        self.layers = frozenset(settings.layers)
        self.records = Records()
        self._call: CallLayout | None = None
        self._mask_cache: dict = {}
        self._warned_near = False
        self._last_step = -1
        self._on_device: dict = {}
        n_run = target.steps - target.start_step
        self.n_run = n_run
        self.match_from = round(settings.start_percent * n_run)
        self.match_to = round(settings.end_percent * n_run)
        self.struct_to = round(settings.struct_end_percent * n_run)

    # ComfyUI deep-copies model_options at every clone: clones share one state instead of copying tensors.
    def __deepcopy__(self, memo):
        return self

    def begin_run(self):
        self._last_step = -1
        self.records.new_run()

    # ---------------------------------------------------------------- steps
    def phase(self, step: int) -> str | None:
        """``"match"``, ``"struct"`` or ``None`` for trajectory step ``step``."""
        if self.settings.strength <= 0.0:
            return None
        k = step - self.target.start_step
        if k < self.match_from or k >= self.match_to:
            return None
        every = self.settings.struct_every
        if every > 0 and k < self.struct_to and (k - self.match_from) % every == 0:
            return "struct"
        return "match"

    def step_of_sigma(self, sigma: float) -> int:
        step, rel = self.target.nearest_step(sigma)
        if rel > FAR:
            t = self.target
            raise ValueError(
                f"sampler: sigma {sigma:.4g} is far from every step of the inversion ({t.steps} steps, scheduler "
                f"{t.scheduler}). Sample with steps={t.steps}, scheduler={t.scheduler}, start_at_step={t.start_step} "
                "(or use the Appearance Transfer Sampler, which follows the inversion's schedule)."
            )
        if rel > NEAR and not self._warned_near:
            self._warned_near = True
            msg = (f"sampler sigmas differ from the inversion's ({self.target.steps} steps, {self.target.scheduler}); "
                   f"using the nearest stored step (off by up to {rel:.0%})")
            self.records.notes.append(msg)
            log.warning("Eye-for-an-eye: %s", msg)
        return step

    def latents_on(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The references' and the target's stored latents on the model's device (copied once, a few MB)."""
        key = (str(device), dtype)
        hit = self._on_device.get(key)
        if hit is None:
            hit = (self.ref_latents.to(device=device, dtype=dtype), self.target.latents.to(device=device, dtype=dtype))
            self._on_device = {key: hit}  # keep one device copy
        return hit

    # ---------------------------------------------------------------- masks
    def token_masks(self, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (h, w, str(device))
        hit = self._mask_cache.get(key)
        if hit is None:
            out = mask_to_tokens(self.masks.target, h, w)
            ref = mask_to_tokens(self.masks.reference, h, w)
            for name, m in (("target_mask", out), ("reference_mask", ref)):
                empty = [k + 1 for k in range(m.shape[0]) if not bool(m[k].any())]
                if empty:
                    raise ValueError(f"{name}: object(s) {empty} cover no token of the {w}x{h} feature map; "
                                     "use a larger mask or a higher resolution")
            hit = (out.to(device), ref.to(device))
            self._mask_cache[key] = hit
        return hit

    # ---------------------------------------------------------------- UNet wrapper
    def wrap(self, previous=None):
        def unet_wrapper(apply_model, args):
            inner = self._apply_with_roles(apply_model, args["cond_or_uncond"])
            if previous is not None:
                return previous(inner, args)
            return inner(args["input"], args["timestep"], **args["c"])

        return unet_wrapper

    def _apply_with_roles(self, apply_model, cond_or_uncond):
        def run(x, t, **c):
            step = self.step_of_sigma(float(t[0]))
            if step < self._last_step:  # sigmas only fall within a run: a lower step starts a new one
                self.records.new_run()
            self._last_step = step
            phase = self.phase(step)
            if phase is None:
                return apply_model(x, t, **c)
            chunks = len(cond_or_uncond)
            per = x.shape[0] // chunks
            rows = torch.arange(x.shape[0], device=x.device).view(chunks, per)
            cond = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 0]
            uncond = [rows[j] for j, cu in enumerate(cond_or_uncond) if cu == 1]
            need_ref = phase == "match" and bool(cond)
            need_struct = phase == "struct" and bool(uncond)
            if not (need_ref or need_struct):
                return apply_model(x, t, **c)
            b = x.shape[0]
            extra_x, source_rows = [], []
            layout = CallLayout(step, need_ref, need_struct, None, None, None, None)
            ref_latents, tgt_latents = self.latents_on(x.device, x.dtype)
            if need_ref:
                refs = ref_latents[step]
                layout.cond_rows = torch.cat(cond)  # every positive chunk (several prompts are several chunks)
                layout.ref_rows = torch.arange(b, b + len(refs), device=x.device)
                extra_x.append(refs)
                source_rows.append(cond[0][:1].expand(len(refs)))
            if need_struct:
                tgt = tgt_latents[step]
                if tgt.shape[0] != per:
                    raise ValueError(f"latent: batch of {per} but the target inversion holds {tgt.shape[0]} image(s); "
                                     "sample the same batch that was inverted")
                start = b + sum(len(e) for e in extra_x)
                layout.uncond_rows = torch.cat(uncond)
                layout.struct_rows = torch.arange(start, start + per, device=x.device).repeat(len(uncond))
                extra_x.append(tgt)
                source_rows.append(uncond[0])
            extra = torch.cat(extra_x)
            src = torch.cat(source_rows)
            x_all = torch.cat([x, extra])
            t_all = torch.cat([t, t[:1].expand(len(extra))])
            c_all = _extend_conditioning(c, b, src)
            n_struct = per if need_struct else 0
            _label_extra_chunks(c_all, per, [0] * (len(extra) - n_struct) + [1] * n_struct)
            self._call = layout
            try:
                out = apply_model(x_all, t_all, **c_all)
            finally:
                self._call = None
            return out[:b]

        return run

    # ---------------------------------------------------------------- attn1
    def attn1_patch(self, n, context, value, extra):
        call = self._call
        if call is None or extra.get("block") not in self.layers:
            return n, context, value
        n_in = n
        block = extra["block"]
        index = extra.get("block_index", 0)
        if call.match:
            shape = extra.get("original_shape") or extra.get("activations_shape")
            h, w = token_grid(n.shape[1], shape[-2], shape[-1])
            out_masks, ref_masks = self.token_masks(h, w, n.device)
            out = n.index_select(0, call.cond_rows)  # [B, N, C]
            refs = n.index_select(0, call.ref_rows)  # [R, N, C]
            b_out = out.shape[0]
            src = match_objects(out, refs.unsqueeze(0), out_masks.unsqueeze(0).expand(b_out, -1, -1), self.ref_ids,
                                ref_masks.unsqueeze(0), check=False)
            flat = refs.reshape(1, -1, refs.shape[-1]).expand(b_out, -1, -1)
            n = n.index_copy(0, call.cond_rows, rearrange(out, flat, src, strength=self.settings.strength))
            self.records.add(call.step, block, index, "match")
            rec = self.records
            if call.step > rec.last_step or (call.step == rec.last_step and h * w >= rec.last_grid[0] * rec.last_grid[1]):
                rec.last_src, rec.last_grid, rec.last_step = src.detach(), (h, w), call.step
                rec.last_layer = f"{block[0]}.{block[1]}"
        if call.struct:
            n = n.index_copy(0, call.uncond_rows, n.index_select(0, call.struct_rows))
            self.records.add(call.step, block, index, "struct")
        ctx = n if context is n_in else context
        val = n if value is n_in else value
        return n, ctx, val


def _extend_conditioning(c: dict, b: int, rows: torch.Tensor) -> dict:
    """Conditioning for ``b + len(rows)`` rows: per-row tensors gain copies of ``rows``; control is zero there."""
    out = {}
    for key, v in c.items():
        if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape[0] == b:
            out[key] = torch.cat([v, v.index_select(0, rows.to(v.device))])
        elif key == "control" and isinstance(v, dict):
            out[key] = {k: [_pad_rows(t, len(rows)) for t in lst] if isinstance(lst, list) else lst
                        for k, lst in v.items()}
        else:
            out[key] = v
    return out


def _label_extra_chunks(c: dict, per: int, labels: list[int]):
    """Tell other attention patches about the extra rows: ``cond_or_uncond`` (and ``uuids``) gain one entry per
    ``per`` extra rows (references count as positive, structure rows as negative), so patches that split the
    batch by ``len(cond_or_uncond)`` (IPAdapter-style) still see whole chunks. When the extra rows do not fill
    whole chunks the lists are left as they are."""
    opts = c.get("transformer_options")
    if not isinstance(opts, dict) or "cond_or_uncond" not in opts or len(labels) % per:
        return
    opts = dict(opts)
    chunk_labels = labels[::per]
    opts["cond_or_uncond"] = list(opts["cond_or_uncond"]) + chunk_labels
    if isinstance(opts.get("uuids"), list) and opts["uuids"]:
        opts["uuids"] = list(opts["uuids"]) + [opts["uuids"][0]] * len(chunk_labels)
    c["transformer_options"] = opts


def _pad_rows(t, extra: int):
    if not isinstance(t, torch.Tensor):
        return t
    return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))])


def install(model, state: TransferState):
    """A clone of ``model`` with the state's wrapper and attn1 patch; ``model`` itself is not touched."""
    if STATE_KEY in getattr(model, "model_options", {}):
        raise ValueError("model: this MODEL already comes from a Semantic Match Patch; patch the original MODEL once "
                         "(several references go into one patch: reference_2, reference_3, ...)")
    m = model.clone()
    previous = m.model_options.get("model_function_wrapper")
    m.set_model_unet_function_wrapper(state.wrap(previous))

    def attn1_patch(n, context, value, extra):  # a closure, so clones share it instead of deep-copying
        return state.attn1_patch(n, context, value, extra)

    m.set_model_attn1_patch(attn1_patch)
    m.model_options[STATE_KEY] = state
    return m


def state_of(model) -> TransferState | None:
    return getattr(model, "model_options", {}).get(STATE_KEY)
