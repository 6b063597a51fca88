"""The method inside ComfyUI's diffusion transformers (Flux.1, SD3/SD3.5): block patches on image tokens.

The batch of each model call is extended exactly as for a UNet (``attention_hooks.with_extra_rows``). What
changes is where the features are rewritten: a DiT has no ``attn1`` patch, so each chosen block gets a ``dit``
block-replace patch (``transformer_options["patches_replace"]["dit"]``, in the 2024 core and in current
ComfyUI) that runs the original block with a forward hook on its Q/K/V projection of the image tokens (Flux
double blocks: ``img_attn.qkv``; single blocks: ``linear1``, whose first ``3 * hidden`` outputs are Q, K, V;
SD3 joint blocks: ``x_block.attn.qkv``). The hook sees the block's normalised, modulated image tokens (its
input: the features the method matches on) and their projections (its output). Because the projection acts
token by token, giving a target token the Q, K and V of its matched reference token is the same as replacing
the token's feature before the projection, as the UNet path does, while the residual stream (and, in Flux
single blocks, the parallel MLP) keeps the target's own. Text tokens are never touched; rotary position
embeddings are applied after the projection, so the injected tokens keep the target's positions.

Structure: Flux.1-dev is guidance-distilled and samples without a negative branch, so the UNet trick (the
target's features into the unconditional rows) has nothing to act on. At structure steps every row instead
takes the *queries and keys* of the target's own tokens (its stored inversion, appended as structure rows)
and keeps its own values: the attention pattern, which carries the layout, is the target's, while the
content it gathers stays the row's own (the "plug-and-play" idea of injecting attention, not features).
``structure_every = 0`` switches it off.
"""

from __future__ import annotations

import torch

from ..matching import rearrange
from .transfer_state import CallLayout, TransferState


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


def inject_dit_matches(state: TransferState, call: CallLayout, x: torch.Tensor, y: torch.Tensor,
                       block: tuple[str, int]):
    """In place on ``y``: each positive target token of an object takes the Q/K/V of its nearest reference token
    (cosine similarity of the pre-projection features ``x``)."""
    tokens = image_tokens(block[0], call)
    feats = x[:, tokens]
    src = state.match(call, feats.index_select(0, call.cond_rows), feats.index_select(0, call.ref_rows), call.grid,
                      block)
    qkv = y[:, tokens, : 3 * x.shape[-1]]
    ref_flat = qkv.index_select(0, call.ref_rows).reshape(1, -1, qkv.shape[-1]).expand(src.shape[0], -1, -1)
    qkv.index_copy_(0, call.cond_rows, rearrange(qkv.index_select(0, call.cond_rows), ref_flat, src,
                                                 strength=state.settings.strength))


def inject_dit_structure(state: TransferState, call: CallLayout, x: torch.Tensor, y: torch.Tensor,
                         block: tuple[str, int]):
    """In place on ``y``: every row's image tokens take the queries and keys of the target's own tokens."""
    tokens = image_tokens(block[0], call)
    qk = y[:, tokens, : 2 * x.shape[-1]]
    qk.index_copy_(0, call.struct_targets, qk.index_select(0, call.struct_rows))


def _projection_hook(state: TransferState, block: tuple[str, int]):
    def hook(module, args, output):
        call = state.call
        if call is None:
            return output
        x = args[0]
        if call.match:
            inject_dit_matches(state, call, x, output, block)
        if call.struct:
            inject_dit_structure(state, call, x, output, block)
        return output

    return hook


def add_block_patches(m, state: TransferState):
    """On the clone ``m``: a ``dit`` block-replace patch on every chosen block (chaining one already there)."""
    net = m.model.diffusion_model
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for block in sorted(state.layers):
        kind, i = block
        key = (f"{kind}_block", i)
        module, hook, previous = qkv_module(net, block), _projection_hook(state, block), existing.get(key)

        def block_patch(args, extras, _module=module, _hook=hook, _previous=previous):
            run = (lambda a: _previous(a, extras)) if _previous is not None else extras["original_block"]
            if state.call is None:
                return run(args)
            handle = _module.register_forward_hook(_hook)
            try:
                return run(args)
            finally:
                handle.remove()

        m.set_model_patch_replace(block_patch, "dit", key[0], i)
