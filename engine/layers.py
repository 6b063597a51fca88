"""Which attention blocks the method rewrites: the presets per family, the grammar of 'output.6-11, double.0'
(defined here once; the editor gets it through the node definition), and the token map of each block."""

from __future__ import annotations

import re

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
DEFAULT_LAYERS = {
    "sd1": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sd2": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sdxl": LAYER_PRESETS["output 0-5 (SDXL)"],
}
# SD3, Qwen-Image and Wan: the second half of their blocks (the same rule for the three; see the README's family
# table for why, and that no real checkpoint backs the choice for Qwen-Image and Wan yet)
DIT_PRESET = {"flux": "vital (Flux, Stable Flow)", "sd3": "second half (SD3)", "qwen_image": "second half (SD3)",
              "wan": "second half (SD3)"}
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
FAMILY_BLOCKS = {
    "sd1": {"input": [1, 2, 4, 5, 7, 8], "middle": [0], "output": list(range(3, 12))},
    "sd2": {"input": [1, 2, 4, 5, 7, 8], "middle": [0], "output": list(range(3, 12))},
    "sdxl": {"input": [4, 5, 7, 8], "middle": [0], "output": list(range(0, 6))},
    "flux": {"double": list(range(19)), "single": list(range(38))},
    "sd3": {"double": list(range(38))},
    "qwen_image": {"double": list(range(60))},
    "wan": {"double": list(range(40))},  # 14B: 40 blocks; 1.3B: 30; 5B: 30
}
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


def resolve_layers(preset: str, custom: str, family: str, blocks: set | None = None) -> list[tuple[str, int]]:
    """The block ids of ``preset`` for a model of ``family`` whose attention blocks are ``blocks``."""
    if preset not in LAYER_PRESETS:
        raise ValueError(f"layers: {preset!r} is not one of {list(LAYER_PRESETS)}")
    if preset == "custom":
        return parse_layers(custom)
    if preset == "auto" and family in DIT_PRESET:
        preset = DIT_PRESET[family]
    if preset in DIT_PRESET.values() and DIT_PRESET.get(family) != preset:
        raise ValueError(f"layers: {preset!r} is a preset for another family; this is a {family} model, use 'auto'")
    if preset in DIT_PRESET.values():
        return dit_layers(preset, blocks or set())
    return list(LAYER_PRESETS[preset] or DEFAULT_LAYERS[family])


def spatial_patch(net) -> int:
    """The side of a DiT's image patch in latent pixels (Wan's patch is ``(1, 2, 2)``: one frame by 2x2)."""
    p = getattr(net, "patch_size", 2)
    return int(p[-1]) if isinstance(p, (tuple, list)) else int(p)


def _halve(side: int, times: int) -> int:
    for _ in range(times):
        side = (side + 1) // 2  # a stride-2 convolution with padding 1
    return side


def token_maps(model, blocks, latent_hw: tuple[int, int]) -> dict[tuple[str, int], tuple[int, int]]:
    """The token map ``(h, w)`` each block works on for a latent of ``latent_hw``: DiT blocks see the patch grid;
    a UNet block the latent halved once per downsampling before it (read off the network's own blocks)."""
    net = model.model.diffusion_model
    h, w = latent_hw
    if not hasattr(net, "input_blocks"):
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
