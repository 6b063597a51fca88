"""The method inside a UNet, one model call from start to end.

1. ``call.on_model_call`` (the patched model's ``APPLY_MODEL`` wrapper) appends the reference rows (and at
   structure steps the structure rows) and puts the call's ``CallLayout`` into ``transformer_options``;
2. in every chosen decoder block, :class:`Attn1Patch` receives the block's ``norm1`` output (it becomes Q, K and
   V) and the call's ``transformer_options`` (as ``extra_options``):

   * matching steps: each positive ``out`` token inside a target object is replaced by its cosine nearest
     neighbour among the reference tokens inside the reference object (``matches.find_matches``),
     before Q/K/V: whole-feature injection;
   * structure steps: the negative ``out`` rows take the structure rows' features (the target's own);
3. the wrapper drops the extra rows from the output.
"""

from __future__ import annotations

import torch

from ...matching import rearrange
from .call import CallLayout, call_of
from .matches import find_matches
from .plan import PlanPatch, TransferPlan
from .run import TransferRun


class Attn1Patch(PlanPatch):
    """ComfyUI's ``attn1_patch``: ``(n, context, value, extra_options) -> (n, context, value)``, one per patched
    model. It reads the call's layout and the run (which holds the plan) from ``extra_options``."""

    def __call__(self, n, context, value, extra):
        call, run = call_of(extra)
        block = extra.get("block")
        if call is None or block not in run.plan.layers:
            return n, context, value
        n_in = n
        if call.match:
            n = inject_matches(run.plan, run, call, n, block)
        if call.struct:
            n = inject_structure(call, n, block)
        ctx = n if context is n_in else context
        val = n if value is n_in else value
        return n, ctx, val


def inject_matches(plan: TransferPlan, run: TransferRun, call: CallLayout, n: torch.Tensor,
                   block: tuple[str, int]) -> torch.Tensor:
    """Each positive ``out`` token of a target object takes the features of its nearest reference token."""
    grid = plan.token_maps[block]
    if grid[0] * grid[1] != n.shape[1]:
        raise ValueError(f"layers: block {block[0]}.{block[1]} works on {n.shape[1]} tokens, not the {grid[1]}x"
                         f"{grid[0]} map the latent gives; sample the target inversion's latent")
    out = n.index_select(0, call.cond_rows)  # [B, N, C]
    refs = n.index_select(0, call.ref_rows)  # [R, N, C]
    src = find_matches(plan, run, call, out, refs, grid, block)
    flat = refs.reshape(1, -1, refs.shape[-1]).expand(out.shape[0], -1, -1)
    return n.index_copy(0, call.cond_rows, rearrange(out, flat, src, strength=plan.settings.strength))


def inject_structure(call: CallLayout, n: torch.Tensor, block: tuple[str, int]) -> torch.Tensor:
    """The negative ``out`` rows take the target's own features (its stored inverted latent) at ``block``."""
    return n.index_copy(0, call.struct_targets, n.index_select(0, call.struct_rows))
