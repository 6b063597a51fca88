"""Which self-attention blocks the method rewrites: the presets per family, and parsing 'output.6-11'."""

from __future__ import annotations

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
    "custom": None,
}
DEFAULT_LAYERS = {
    "sd1": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sd2": LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"],
    "sdxl": LAYER_PRESETS["output 0-5 (SDXL)"],
}


def parse_layers(text: str) -> list[tuple[str, int]]:
    """``"output.6-11, output.3, input.7"`` -> ``[("output", 6), ..., ("input", 7)]``."""
    layers: list[tuple[str, int]] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        block, _, rng = part.replace(" ", ".").partition(".")
        rng = rng.strip(". ")
        if block not in ("input", "middle", "output") or not rng:
            raise ValueError(
                f"custom_layers: {part!r} is not like 'output.6' or 'output.6-11' (blocks: input, middle, output)"
            )
        lo, _, hi = rng.partition("-")
        try:
            start, stop = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"custom_layers: {part!r} has no block number") from None
        if start > stop or start < 0:
            raise ValueError(f"custom_layers: {part!r} is an empty range")
        layers += [(block, i) for i in range(start, stop + 1) if (block, i) not in layers]
    if not layers:
        raise ValueError("custom_layers: empty; name at least one block, e.g. 'output.6-11'")
    return layers


def resolve_layers(preset: str, custom: str, family: str) -> list[tuple[str, int]]:
    if preset not in LAYER_PRESETS:
        raise ValueError(f"layers: {preset!r} is not one of {list(LAYER_PRESETS)}")
    if preset == "custom":
        return parse_layers(custom)
    return list(LAYER_PRESETS[preset] or DEFAULT_LAYERS[family])
