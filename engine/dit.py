"""The method inside a diffusion transformer (Flux.1, SD3/SD3.5), one model call from start to end.

1. ``rows.on_model_call`` (the patched model's ``APPLY_MODEL`` wrapper) appends the reference rows (and at
   structure steps the structure rows) and puts the call's ``CallLayout`` into ``transformer_options``;
2. every chosen block has a ``dit`` block-replace patch (:class:`BlockPatch`, in
   ``transformer_options["patches_replace"]["dit"]``) that runs the original block with a forward hook on its
   Q/K/V projection of the image tokens (Flux double blocks: ``img_attn.qkv``; single blocks: ``linear1``, whose
   first ``3 * hidden`` outputs are Q, K, V; SD3 joint blocks: ``x_block.attn.qkv``). The hook sees the
   block's normalised, modulated image tokens (the features the method matches on) and their projections:

   * matching steps: each positive target token of an object takes the Q/K/V of its matched reference token.
     The projection acts token by token, so this is the same as replacing the token's feature before the
     projection (the UNet path), while the residual stream (and in Flux single blocks the parallel MLP) keeps
     the target's own. Text tokens are never touched; rotary position embeddings come after the projection,
     so the injected tokens keep the target's positions;
   * structure steps: every row takes the *queries and keys* of the target's own tokens (the structure rows)
     and keeps its values: Flux.1-dev samples without a negative branch, so the UNet's trick has nothing to act
     on; the attention pattern, which carries the layout, becomes the target's;
3. the wrapper drops the extra rows from the output.
"""

from __future__ import annotations

import torch

from ..matching import rearrange
from . import correspondence
from .plan import PlanPatch, TransferPlan
from .rows import CallLayout, call_of
from .run import TransferRun


def qkv_module(net, block: tuple[str, int]) -> torch.nn.Module:
    """The linear layer that projects a block's image tokens to Q, K, V."""
    kind, i = block
    if hasattr(net, "double_blocks"):  # Flux
        return net.double_blocks[i].img_attn.qkv if kind == "double" else net.single_blocks[i].linear1
    return net.joint_blocks[i].x_block.attn.qkv  # SD3 / SD3.5 (MMDiT)


def image_tokens(kind: str, call: CallLayout) -> slice:
    """Where the target image tokens sit on a block's token axis: Flux single blocks carry the text first."""
    start = call.context_len if kind == "single" else 0
    return slice(start, start + call.grid[0] * call.grid[1])


def inject_matches(plan: TransferPlan, run: TransferRun, call: CallLayout, x: torch.Tensor, y: torch.Tensor,
                   block: tuple[str, int]):
    """In place on ``y``: each positive target token of an object takes the Q/K/V of its nearest reference token
    (cosine similarity of the pre-projection features ``x``)."""
    tokens = image_tokens(block[0], call)
    feats = x[:, tokens]
    src = correspondence.find_matches(plan, run, call, feats.index_select(0, call.cond_rows),
                                      feats.index_select(0, call.ref_rows), call.grid, block)
    qkv = y[:, tokens, : 3 * x.shape[-1]]
    ref_flat = qkv.index_select(0, call.ref_rows).reshape(1, -1, qkv.shape[-1]).expand(src.shape[0], -1, -1)
    qkv.index_copy_(0, call.cond_rows, rearrange(qkv.index_select(0, call.cond_rows), ref_flat, src,
                                                 strength=plan.settings.strength))


def inject_structure(call: CallLayout, x: torch.Tensor, y: torch.Tensor, block: tuple[str, int]):
    """In place on ``y``: every row's image tokens take the queries and keys of the target's own tokens."""
    tokens = image_tokens(block[0], call)
    qk = y[:, tokens, : 2 * x.shape[-1]]
    qk.index_copy_(0, call.struct_targets, qk.index_select(0, call.struct_rows))


class BlockPatch(PlanPatch):
    """ComfyUI's ``dit`` block replacement for one chosen block: ``(args, extras) -> out``. It runs the block
    (or the replacement that was there before, chained) with the projection hook on for the duration."""

    def __init__(self, plan: TransferPlan, block: tuple[str, int], module: torch.nn.Module, previous=None):
        super().__init__(plan)
        self.block, self.module, self.previous = block, module, previous

    def __call__(self, args, extras):
        run_block = (lambda a: self.previous(a, extras)) if self.previous is not None else extras["original_block"]
        call, run = call_of(args.get("transformer_options"))
        if call is None:
            return run_block(args)

        def hook(module, inputs, output):
            x = inputs[0]
            if call.match:
                inject_matches(self.plan, run, call, x, output, self.block)
            if call.struct:
                inject_structure(call, x, output, self.block)
            return output

        handle = self.module.register_forward_hook(hook)
        try:
            return run_block(args)
        finally:
            handle.remove()


def add_block_patches(m, plan: TransferPlan):
    """On the clone ``m``: a :class:`BlockPatch` on every chosen block (chaining a replacement already there)."""
    net = m.model.diffusion_model
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for block in sorted(plan.layers):
        kind, i = block
        name = f"{kind}_block"
        m.set_model_patch_replace(BlockPatch(plan, block, qkv_module(net, block), existing.get((name, i))),
                                  "dit", name, i)
