"""Which attention blocks the method rewrites and where a diffusion transformer matches: the presets (each
family's 'auto' is in the registry), and the grammar of 'output.6-11, double.0' (defined here once; the editor
gets it through the node definition)."""

from __future__ import annotations

import re

from .families import FAMILIES, ORDER, Family

# Decoder self-attention layers the method rewrites, by block id (not token count, so any resolution
# keeps the same layers). SD1/SD2: the paper's six layers at the 32x32 and 64x64 maps of a 512 px image.
# SDXL: output 0..2 (depth 10, 32x32 at 1024 px) and 3..5 (depth 2, 64x64): every transformer block of
# the two decoder stages, the same "coarse + fine decoder" choice as the paper's.
LAYER_PRESETS = {
    "auto": None,
    "output 6-11 (SD1/SD2, paper)": [("output", i) for i in range(6, 12)],
    "output 0-5 (SDXL)": [("output", i) for i in range(0, 6)],
    "output 3-5 (SDXL 64x64)": [("output", i) for i in range(3, 6)],
    "output 0-2 (SDXL 32x32)": [("output", i) for i in range(0, 3)],
    "vital (Flux, Stable Flow)": None,
    "second half (SD3)": None,
    "custom": None,
}
# presets computed from a DiT's blocks (SD3, Qwen-Image and Wan take the second half of their blocks: see the
# README's family table for why, and that no real checkpoint backs the choice for Qwen-Image and Wan yet)
DIT_PRESETS = ("vital (Flux, Stable Flow)", "second half (SD3)")
BLOCK_KINDS = ("input", "middle", "output", "double", "single")
CUSTOM_DEFAULT = "output.6-11"  # custom_layers' default (the paper's six layers)

# One item of custom_layers: a block kind, a dot (or a space), a number or a range. Items are separated by commas
# or semicolons. The editor checks what is typed with the same pattern (GRAMMAR goes into the node definition).
# Plain ASCII classes only, so that Python's re and the editor's JavaScript RegExp read it alike.
ITEM = re.compile(r"^[ \t]*(input|middle|output|double|single)(?:[ \t]*\.[ \t]*|[ \t]+)([0-9]+)"
                  r"(?:[ \t]*-[ \t]*([0-9]+))?[ \t]*$")
SEPARATORS = ",;"
BLANK = " \t"  # an item of only these is skipped
MAX_BLOCKS = 4096  # more than any model has: refused before a range is spelled out
# The blocks each family has at most (SD3.5 Large: 38 joint blocks, named "double"); a model's own list is in the
# patch node's UI output after a run.
FAMILY_BLOCKS = {key: {kind: list(ids) for kind, ids in FAMILIES[key].max_blocks.items()} for key in ORDER}
GRAMMAR = {
    "item": ITEM.pattern,
    "separators": SEPARATORS,
    "blank": BLANK,
    "max_blocks": MAX_BLOCKS,
    "kinds": list(BLOCK_KINDS),
    "families": FAMILY_BLOCKS,
    "example": {"unet": "output.6-11, output.3", "dit": "double.0-1, single.34-37"},
}

# Flux.1 (19 double-stream + 38 single-stream blocks): the "vital layers" of Stable Flow (Avrahami et al.,
# CVPR 2025), the blocks whose attention injection changes the image while the rest keeps it: double 0, 1, 17,
# 18 and single 6, 9, 34, 35, 37 (their unified indices 25, 28, 53, 54, 56). Models of another depth get the
# same relative positions.
FLUX_VITAL = {"double": ((0, 1, 17, 18), 19), "single": ((6, 9, 34, 35, 37), 38)}


def dit_layers(preset: str, blocks: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """The DiT presets on a model with ``blocks``: Flux's vital layers, or SD3's second half of joint blocks."""
    depth = {kind: sum(1 for k, _ in blocks if k == kind) for kind in ("double", "single")}
    if preset == "vital (Flux, Stable Flow)":
        chosen = []
        for kind, (indices, full) in FLUX_VITAL.items():
            for i in indices:
                block = (kind, min(depth[kind] - 1, i * depth[kind] // full))
                if depth[kind] and block not in chosen:
                    chosen.append(block)
        return chosen
    n = depth["double"]
    return [("double", i) for i in range(n // 2, n)]


def format_blocks(blocks) -> str:
    """``[("double", 0), ("double", 1), ("single", 6)]`` -> ``"double.0-1, single.6"`` (the grammar's own form)."""
    out = []
    for kind in BLOCK_KINDS:
        ids = sorted(i for k, i in blocks if k == kind)
        start = None
        for j, i in enumerate(ids):
            if start is None:
                start = i
            if j + 1 == len(ids) or ids[j + 1] != i + 1:
                out.append(f"{kind}.{start}" if start == i else f"{kind}.{start}-{i}")
                start = None
    return ", ".join(out)


def parse_layers(text: str) -> list[tuple[str, int]]:
    """``"output.6-11, output.3, input.7"`` -> ``[("output", 6), ..., ("input", 7)]`` (the grammar of ``ITEM``)."""
    layers: list[tuple[str, int]] = []
    for part in re.split(f"[{SEPARATORS}]", text or ""):
        if not part.strip(BLANK):
            continue
        m = ITEM.fullmatch(part)  # (re.match would let "$" match before a final newline)
        if m is None:
            raise ValueError(
                f"custom_layers: {part!r} is not like 'output.6', 'output.6-11' or 'single.34-37' "
                f"(blocks: {', '.join(BLOCK_KINDS)})"
            )
        block, start = m.group(1), int(m.group(2))
        stop = int(m.group(3)) if m.group(3) is not None else start
        if start > stop:
            raise ValueError(f"custom_layers: {part!r} is an empty range")
        if stop - start + len(layers) >= MAX_BLOCKS:
            raise ValueError(f"custom_layers: {part!r} names more blocks than any model has")
        layers += [(block, i) for i in range(start, stop + 1) if (block, i) not in layers]
    if not layers:
        raise ValueError("custom_layers: empty; name at least one block, e.g. 'output.6-11'")
    return layers


def resolve_layers(preset: str, custom: str, family: Family, blocks: set | None = None) -> list[tuple[str, int]]:
    """The block ids of ``preset`` for a model of ``family`` whose attention blocks are ``blocks``."""
    if preset not in LAYER_PRESETS:
        raise ValueError(f"layers: {preset!r} is not one of {list(LAYER_PRESETS)}")
    if preset == "custom":
        return parse_layers(custom)
    own = family.layers
    if preset == "auto":
        preset = own
    if preset in DIT_PRESETS and preset != own:
        raise ValueError(f"layers: {preset!r} is a preset for another family; this is a {family.key} model, use "
                         "'auto'")
    if preset in DIT_PRESETS:
        return dit_layers(preset, blocks or set())
    return list(LAYER_PRESETS[preset])


# Where a diffusion transformer finds each step's correspondence (Semantic Match Patch's match_block).
MATCH_AUTO, MATCH_EACH = "auto", "each layer"


def half_depth(f: Family, blocks) -> tuple[str, int]:
    """The block at half a DiT's depth, its stacks counted one after the other (Flux.1: ``single.9``, the 29th of
    57 blocks; SD3.5 Large ``double.19``; Qwen-Image ``double.30``; Wan 1.3B ``double.15``)."""
    from .blocks import run_order

    ordered = run_order(f, blocks)
    return ordered[len(ordered) // 2]


def resolve_match_block(text: str, f: Family, blocks) -> tuple[str, int] | None:
    """The block a DiT matches at (``None``: every rewritten block matches on its own features). UNets always
    match at every rewritten layer on its own features, the paper's rule."""
    text = (text or "").strip() or MATCH_AUTO
    if text == MATCH_EACH or (text == MATCH_AUTO and not f.dit):
        return None
    if not f.dit:
        raise ValueError(f"match_block: {text!r}: a UNet ({f.name}) matches at every rewritten layer on its own "
                         f"features (the paper's rule); leave it at '{MATCH_AUTO}'")
    if text == MATCH_AUTO:
        return half_depth(f, blocks)
    m = ITEM.fullmatch(text)
    if m is None or m.group(3) is not None:
        raise ValueError(f"match_block: {text!r} is not '{MATCH_AUTO}', '{MATCH_EACH}' or one block like 'single.9'")
    block = (m.group(1), int(m.group(2)))
    if block not in blocks:
        have = format_blocks(blocks)
        raise ValueError(f"match_block: {text!r} is not a block of this {f.name} model; its blocks are {have}")
    return block
