"""The method inside a diffusion transformer (Flux.1, SD3/SD3.5, Qwen-Image, Wan), one model call from start to end.

1. ``rows.on_model_call`` (the patched model's ``APPLY_MODEL`` wrapper) appends the reference rows (and at
   structure steps the structure rows) and puts the call's ``CallLayout`` into ``transformer_options``;
2. every chosen block has a ``dit`` block-replace patch (:class:`BlockPatch`, in
   ``transformer_options["patches_replace"]["dit"]``) that runs the original block with a forward hook on its
   Q/K/V projection of the image tokens (Flux double blocks: ``img_attn.qkv``; single blocks: ``linear1``, whose
   first ``3 * hidden`` outputs are Q, K, V; SD3 joint blocks: ``x_block.attn.qkv``), or on each of its three
   projections where Q, K and V have their own (Qwen-Image: ``attn.to_q/to_k/to_v``; Wan: ``self_attn.q/k/v``;
   the match is found once per block call, at the first of them). The hook sees the block's normalised,
   modulated image tokens (the features the method matches on) and their projections:

   * matching steps: each positive target token of an object takes the Q/K/V of its matched reference token.
     The projection acts token by token, so this is the same as replacing the token's feature before the
     projection (the UNet path), while the residual stream (and in Flux single blocks the parallel MLP) keeps
     the target's own. Text tokens are never touched; rotary position embeddings come after the projection,
     so the injected tokens keep the target's positions;
   * structure steps: every row takes the *queries and keys* of the target's own tokens (the structure rows)
     and keeps its values: Flux.1-dev samples without a negative branch, so the UNet's trick has nothing to act
     on; the attention pattern, which carries the layout, becomes the target's;
   * video (Wan): the image tokens are the frames' tokens one frame after the other; every frame's object tokens
     are matched (per frame, through an anchor frame, or over the whole clip: ``video_matching``), and the
     reference rows are the reference's video (a reference image repeated over the frames);
3. the wrapper drops the extra rows from the output.
"""

from __future__ import annotations

import torch

from ..matching import rearrange
from . import correspondence
from .plan import PlanPatch, TransferPlan
from .rows import CallLayout, call_of
from .run import TransferRun


def projections(net, block: tuple[str, int]) -> tuple[tuple[torch.nn.Module, str], ...]:
    """The linear layers that project a block's image tokens, each with what it gives: ``"qkv"`` (one layer whose
    outputs start with Q, K, V) or ``"q"``, ``"k"``, ``"v"`` (one layer each, in the order the block runs them)."""
    kind, i = block
    if hasattr(net, "double_blocks"):  # Flux
        return ((net.double_blocks[i].img_attn.qkv if kind == "double" else net.single_blocks[i].linear1, "qkv"),)
    if hasattr(net, "joint_blocks"):  # SD3 / SD3.5 (MMDiT)
        return ((net.joint_blocks[i].x_block.attn.qkv, "qkv"),)
    if hasattr(net, "transformer_blocks"):  # Qwen-Image
        attn = net.transformer_blocks[i].attn
        return (attn.to_q, "q"), (attn.to_k, "k"), (attn.to_v, "v")
    attn = net.blocks[i].self_attn  # Wan
    return (attn.q, "q"), (attn.k, "k"), (attn.v, "v")


def image_tokens(kind: str, call: CallLayout) -> slice:
    """Where the target image tokens sit on a block's token axis: Flux single blocks carry the text first; a video's
    tokens are its frames' one after the other."""
    start = call.context_len if kind == "single" else 0
    return slice(start, start + call.frames * call.grid[0] * call.grid[1])


def _width(x: torch.Tensor, y: torch.Tensor, gives: str, fused: int) -> int:
    """How many leading outputs of a projection to rewrite: ``fused`` x hidden of a fused QKV layer, all of a
    single Q, K or V layer."""
    return fused * x.shape[-1] if gives == "qkv" else y.shape[-1]


def match_sources(plan: TransferPlan, run: TransferRun, call: CallLayout, x: torch.Tensor,
                  block: tuple[str, int]) -> torch.Tensor:
    """``[B, N]``: the reference token each positive target token of an object takes (-1: its own), by cosine
    similarity of the pre-projection features ``x``."""
    feats = x[:, image_tokens(block[0], call)]
    return correspondence.find_matches(plan, run, call, feats.index_select(0, call.cond_rows),
                                       feats.index_select(0, call.ref_rows), call.grid, block)


def take_matches(plan: TransferPlan, call: CallLayout, x: torch.Tensor, y: torch.Tensor, block: tuple[str, int],
                 src: torch.Tensor, gives: str = "qkv"):
    """In place on ``y`` (a projection's output): each positive target token takes its matched token's Q/K/V."""
    proj = y[:, image_tokens(block[0], call), : _width(x, y, gives, 3)]
    ref_flat = proj.index_select(0, call.ref_rows).reshape(1, -1, proj.shape[-1]).expand(src.shape[0], -1, -1)
    proj.index_copy_(0, call.cond_rows, rearrange(proj.index_select(0, call.cond_rows), ref_flat, src,
                                                  strength=plan.settings.strength))


def inject_matches(plan: TransferPlan, run: TransferRun, call: CallLayout, x: torch.Tensor, y: torch.Tensor,
                   block: tuple[str, int]):
    """In place on ``y``, the output of a fused QKV layer: each positive target token of an object takes the Q/K/V
    of its nearest reference token."""
    take_matches(plan, call, x, y, block, match_sources(plan, run, call, x, block))


def inject_structure(call: CallLayout, x: torch.Tensor, y: torch.Tensor, block: tuple[str, int], gives: str = "qkv"):
    """In place on ``y``: every row's image tokens take the queries and keys of the target's own tokens (a fused
    layer's Q and K, or all of a Q or K layer)."""
    qk = y[:, image_tokens(block[0], call), : _width(x, y, gives, 2)]
    qk.index_copy_(0, call.struct_targets, qk.index_select(0, call.struct_rows))


class BlockPatch(PlanPatch):
    """ComfyUI's ``dit`` block replacement for one chosen block: ``(args, extras) -> out``. It runs the block
    (or the replacement that was there before, chained) with the projection hook on for the duration."""

    def __init__(self, plan: TransferPlan, block: tuple[str, int], modules, previous=None):
        super().__init__(plan)
        self.block, self.modules, self.previous = block, tuple(modules), previous

    def __call__(self, args, extras):
        run_block = (lambda a: self.previous(a, extras)) if self.previous is not None else extras["original_block"]
        call, run = call_of(args.get("transformer_options"))
        if call is None:
            return run_block(args)
        found = {}  # this block call's match, found at its first projection and taken by all of them

        def hook(gives, x, output):
            if call.match and gives == "qkv":
                inject_matches(self.plan, run, call, x, output, self.block)
            elif call.match:
                if "src" not in found:
                    found["src"] = match_sources(self.plan, run, call, x, self.block)
                take_matches(self.plan, call, x, output, self.block, found["src"], gives)
            if call.struct and gives == "qkv":
                inject_structure(call, x, output, self.block)
            elif call.struct and gives in ("q", "k"):
                inject_structure(call, x, output, self.block, gives)
            return output

        handles = [module.register_forward_hook(lambda _m, inputs, output, gives=gives: hook(gives, inputs[0], output))
                   for module, gives in self.modules]
        try:
            return run_block(args)
        finally:
            for handle in handles:
                handle.remove()


def add_block_patches(m, plan: TransferPlan):
    """On the clone ``m``: a :class:`BlockPatch` on every chosen block (chaining a replacement already there)."""
    net = m.model.diffusion_model
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    for block in sorted(plan.layers):
        kind, i = block
        name = f"{kind}_block"
        m.set_model_patch_replace(BlockPatch(plan, block, projections(net, block), existing.get((name, i))),
                                  "dit", name, i)

