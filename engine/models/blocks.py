"""The attention blocks of a loaded network, read off the network with what the registry (``families``) says:
which blocks the method can act on, which layers project a DiT block's image tokens, and the token map of each
block for a given latent."""

from __future__ import annotations

import torch

from .families import Family


def _stack(net, f: Family, kind: str):
    return getattr(net, dict(f.stacks)[kind])


def attention_blocks(f: Family, net) -> set[tuple[str, int]]:
    """Block ids the method can act on: UNet blocks holding a self-attention transformer (``("output", 6)``); a
    DiT's blocks by stack (Flux ``("double", 0)``, ``("single", 9)``; SD3's joint blocks, Qwen-Image's and Wan's
    blocks are ``("double", i)``, as ComfyUI names their block patches ``double_block``)."""
    if f.dit:
        return {(kind, i) for kind, _ in f.stacks for i in range(len(_stack(net, f, kind)))}
    from comfy.ldm.modules.attention import SpatialTransformer

    found = set()
    for kind, blocks in (("input", net.input_blocks), ("output", net.output_blocks), ("middle", [net.middle_block])):
        for i, block in enumerate(blocks):
            if any(isinstance(m, SpatialTransformer) for m in block.modules()):
                found.add((kind, i))
    return found


def run_order(f: Family, blocks) -> list[tuple[str, int]]:
    """A DiT's ``blocks`` in the order the network runs them (its stacks one after the other)."""
    kinds = [kind for kind, _ in f.stacks]
    return sorted(blocks, key=lambda b: (kinds.index(b[0]), b[1]))


def projections(f: Family, net, block: tuple[str, int]) -> tuple[tuple[torch.nn.Module, str], ...]:
    """The linear layers that project a DiT block's image tokens, each with what it gives: ``"qkv"`` (one layer
    whose outputs start with Q, K, V) or ``"q"``, ``"k"``, ``"v"`` (one layer each, in the order the block runs
    them)."""
    kind, i = block
    module = _stack(net, f, kind)[i]
    out = []
    for path, gives in f.projections[kind]:
        layer = module
        for name in path.split("."):
            layer = getattr(layer, name)
        out.append((layer, gives))
    return tuple(out)


def spatial_patch(net) -> int:
    """The side of a DiT's image patch in latent pixels (Wan's patch is ``(1, 2, 2)``: one frame by 2x2)."""
    p = getattr(net, "patch_size", 2)
    return int(p[-1]) if isinstance(p, (tuple, list)) else int(p)


def _halve(side: int, times: int) -> int:
    for _ in range(times):
        side = (side + 1) // 2  # a stride-2 convolution with padding 1
    return side


def token_maps(f: Family, net, blocks, latent_hw: tuple[int, int]) -> dict[tuple[str, int], tuple[int, int]]:
    """The token map ``(h, w)`` each block works on for a latent of ``latent_hw``: DiT blocks see the patch grid;
    a UNet block the latent halved once per downsampling before it (read off the network's own blocks)."""
    h, w = latent_hw
    if f.dit:
        p = spatial_patch(net)
        return {b: (-(-h // p), -(-w // p)) for b in blocks}
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

    def has(block, kind):
        return any(isinstance(m, kind) for m in block.modules())

    levels, level = {}, 0
    for i, block in enumerate(net.input_blocks):
        levels[("input", i)] = level
        level += has(block, Downsample)
    levels[("middle", 0)] = level
    for i, block in enumerate(net.output_blocks):
        levels[("output", i)] = level
        level -= has(block, Upsample)
    return {b: (_halve(h, levels[b]), _halve(w, levels[b])) for b in blocks if b in levels}
