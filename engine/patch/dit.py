"""The method inside a diffusion transformer (Flux.1, SD3/SD3.5, Qwen-Image, Wan), one model call from start to end.

1. ``call.on_model_call`` (the patched model's ``APPLY_MODEL`` wrapper) appends the reference rows (and at
   structure steps the structure rows) and puts the call's ``CallLayout`` into ``transformer_options``;
2. every rewritten block, and the matching block, has a ``dit`` block-replace patch (:class:`BlockPatch`, in
   ``transformer_options["patches_replace"]["dit"]``) that runs the original block with a forward hook on the
   layers projecting its image tokens (the registry's ``projections``: Flux double blocks ``img_attn.qkv``,
   single blocks ``linear1``, whose first ``3 * hidden`` outputs are Q, K, V; SD3 ``x_block.attn.qkv``;
   Qwen-Image ``attn.to_q/to_k/to_v``; Wan ``self_attn.q/k/v``). The hook sees the block's normalised, modulated
   image tokens (the features the method matches on) and their projections:

   * matching steps: the **matching block** (``match_block``, by default the block at half the depth) finds the
     step's correspondence on its features (a few channels of "massive activations" left out, see
     :func:`matching_features`), once per model call; every **rewritten block** then gives each positive target
     token of an object the Q/K/V of its matched reference token: the same target token takes the same reference
     token at every block (they share one token grid). A block that runs before the matching block takes the
     correspondence of the last matched step (none at the first). With ``match_block`` 'each layer' every
     rewritten block matches on its own features instead. The projection acts token by token, so this is the
     same as replacing the token's feature before the projection (the UNet path), while the residual stream (and
     in Flux single blocks the parallel MLP) keeps the target's own. Text tokens are never touched; rotary
     position embeddings come after the projection, so the injected tokens keep the target's positions;
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

from ...matching import keep_ordinary_channels, rearrange
from ..models.blocks import projections
from .call import CallLayout, call_of
from .matches import find_matches
from .plan import PlanPatch, TransferPlan
from .run import TransferRun


def image_tokens(kind: str, call: CallLayout) -> slice:
    """Where the target image tokens sit on a block's token axis: Flux single blocks carry the text first; a video's
    tokens are its frames' one after the other."""
    start = call.context_len if kind == "single" else 0
    return slice(start, start + call.frames * call.grid[0] * call.grid[1])


def _width(x: torch.Tensor, y: torch.Tensor, gives: str, fused: int) -> int:
    """How many leading outputs of a projection to rewrite: ``fused`` x hidden of a fused QKV layer, all of a
    single Q, K or V layer."""
    return fused * x.shape[-1] if gives == "qkv" else y.shape[-1]


def matching_features(out: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The features a DiT matches on: the block's normalised, modulated image tokens ``[rows, N, C]``,

    * with the few channels of "massive activations" left out (DiTF, arXiv 2505.18584: in real DiTs a handful of
      channels carry values tens of times larger than the rest, nearly the same at every token, and swamp cosine
      similarity; ``matching.keep_ordinary_channels`` finds them by their size, without knowing their indices);
    * each row less its mean over its image tokens: the AdaLN shift is one vector added to every token of an
      image and says nothing about any of them, yet it can dominate their cosine similarity (what is left is
      the modulated content of each token, compared across images whatever their overall colour)."""
    keep = keep_ordinary_channels(out, refs)
    out, refs = out * keep, refs * keep
    return out - out.mean(dim=1, keepdim=True), refs - refs.mean(dim=1, keepdim=True)


def match_sources(plan: TransferPlan, run: TransferRun, call: CallLayout, x: torch.Tensor,
                  block: tuple[str, int]) -> torch.Tensor:
    """``[B, N]``: the reference token each positive target token of an object takes (-1: its own), by cosine
    similarity of the pre-projection features ``x``."""
    feats = x[:, image_tokens(block[0], call)]
    out, refs = matching_features(feats.index_select(0, call.cond_rows), feats.index_select(0, call.ref_rows))
    return find_matches(plan, run, call, out, refs, call.grid, block)


def take_matches(plan: TransferPlan, call: CallLayout, x: torch.Tensor, y: torch.Tensor, block: tuple[str, int],
                 src: torch.Tensor, gives: str = "qkv"):
    """In place on ``y`` (a projection's output): each positive target token takes its matched token's Q/K/V."""
    proj = y[:, image_tokens(block[0], call), : _width(x, y, gives, 3)]
    ref_flat = proj.index_select(0, call.ref_rows).reshape(1, -1, proj.shape[-1]).expand(src.shape[0], -1, -1)
    proj.index_copy_(0, call.cond_rows, rearrange(proj.index_select(0, call.cond_rows), ref_flat, src,
                                                  strength=plan.settings.strength))


def inject_structure(call: CallLayout, x: torch.Tensor, y: torch.Tensor, block: tuple[str, int], gives: str = "qkv"):
    """In place on ``y``: every row's image tokens take the queries and keys of the target's own tokens (a fused
    layer's Q and K, or all of a Q or K layer)."""
    qk = y[:, image_tokens(block[0], call), : _width(x, y, gives, 2)]
    qk.index_copy_(0, call.struct_targets, qk.index_select(0, call.struct_rows))


class BlockPatch(PlanPatch):
    """ComfyUI's ``dit`` block replacement for a rewritten block (``rewrite``) or the matching block (``matcher``),
    or both: ``(args, extras) -> out``. It runs the block (or the replacement that was there before, chained)
    with the projection hook on for the duration."""

    def __init__(self, plan: TransferPlan, block: tuple[str, int], modules, previous=None, rewrite: bool = True,
                 matcher: bool = False):
        super().__init__(plan)
        self.block, self.modules, self.previous = block, tuple(modules), previous
        self.rewrite, self.matcher = rewrite, matcher

    def _sources(self, call: CallLayout, run: TransferRun, x: torch.Tensor) -> torch.Tensor | None:
        """The correspondence this block call uses: its own match (the matching block, or every rewritten block
        when there is none), else the matching block's of this or the last matched step."""
        if self.matcher or run.plan.settings.match_block is None:
            src = match_sources(run.plan, run, call, x, self.block)
            if self.matcher:
                run.keep_shared(call.step, src)
            return src
        return run.shared_for(call.step, len(call.cond_rows))

    def __call__(self, args, extras):
        run_block = (lambda a: self.previous(a, extras)) if self.previous is not None else extras["original_block"]
        call, run = call_of(args.get("transformer_options"))
        if call is None:
            return run_block(args)
        found = {}  # this block call's correspondence, found at its first projection and taken by all of them

        def hook(gives, x, output):
            if call.match:
                if "src" not in found:
                    found["src"] = self._sources(call, run, x)
                if self.rewrite and found["src"] is not None:
                    take_matches(run.plan, call, x, output, self.block, found["src"], gives)
            if call.struct and self.rewrite and gives in ("qkv", "q", "k"):
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
    """On the clone ``m``: a :class:`BlockPatch` on every rewritten block and on the matching block (chaining a
    replacement already there)."""
    net = m.model.diffusion_model
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    matcher = plan.settings.match_block
    for block in sorted(plan.layers | ({matcher} if matcher else set())):
        kind, i = block
        name = f"{kind}_block"
        patch = BlockPatch(plan, block, projections(plan.family, net, block), existing.get((name, i)),
                           rewrite=block in plan.layers, matcher=block == matcher)
        m.set_model_patch_replace(patch, "dit", name, i)

