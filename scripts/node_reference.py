#!/usr/bin/env python3
"""Print the README's node reference (every input, its default and tooltip) from the nodes' own INPUT_TYPES, and
its table of model families from the family registry (``engine/models/families.py``).

    python scripts/node_reference.py            # print them
    python scripts/node_reference.py --write    # rewrite the README between its markers

tests/test_readme.py checks that the README's tables are what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # e4e_headless: the one rule for ComfyUI and the pack


def _default(kind, opts) -> str:
    if isinstance(kind, list):
        return f"`{opts.get('default', kind[0])}`"
    if "default" in opts:
        d = opts["default"]
        return f"`{d!r}`" if isinstance(d, str) else f"`{d}`"
    return "—"


def _kind(kind) -> str:
    if isinstance(kind, list):
        return "choice"
    return kind


def reference() -> str:
    from e4e_headless import host

    host.setup_comfyui()
    pack = host.load_pack()
    lines = []
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        lines.append(f"### {pack.NODE_DISPLAY_NAME_MAPPINGS[key]} (`{key}`)\n")
        lines.append(cls.DESCRIPTION + "\n")
        lines.append("| input | type | default | what it does |")
        lines.append("|---|---|---|---|")
        spec = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for name, (kind, *rest) in spec.get(group, {}).items():
                opts = rest[0] if rest else {}
                tip = opts.get("tooltip", "").replace("|", "\\|")
                label = name if group == "required" else f"{name} (optional)"
                lines.append(f"| {label} | {_kind(kind)} | {_default(kind, opts)} | {tip} |")
        outs = ", ".join(f"`{n}` ({t})" for n, t in zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))
        lines.append(f"\nOutputs: {outs}.\n")
    return "\n".join(lines).rstrip() + "\n"


def families_table() -> str:
    """The README's table of model families, from the registry."""
    from e4e_headless import host

    pack_name = host.load_pack().__name__
    import importlib

    fam = importlib.import_module(f"{pack_name}.engine.models.families")
    layers = importlib.import_module(f"{pack_name}.engine.models.layers")
    lines = ["| family | what | layers (`auto`) | correspondence found at (`match_block` auto) | inversion | sampling |",
             "|---|---|---|---|---|---|"]
    for key in fam.ORDER:
        f = fam.FAMILIES[key]
        preset = f.layers
        if f.dit:
            largest = {(kind, i) for kind, ids in f.max_blocks.items() for i in ids}
            blocks = layers.dit_layers(preset, largest)
            layer_text = f"{preset}: {layers.format_blocks(blocks)} (at the largest model's depth; scaled to others)"
            kind, i = layers.half_depth(f, largest)
            matcher = f"`{kind}.{i}`, half the depth of the largest model (every model: its own half)"
        else:
            layer_text = f"{preset}: decoder attn1 {layers.format_blocks(layers.LAYER_PRESETS[preset])}"
            matcher = "every rewritten layer, on its own features (the paper's rule)"
        if f.schedule is None:
            inversion, sampling = "as Flux, with CFG (no shipped schedule)", "CFG as usual for the model"
        else:
            s = fam.shipped_settings(key)
            inversion = (f"{s['method']}, {s['steps']} steps ({s['scheduler']}), {s['skip_steps']} skipped, CFG "
                         f"{s['inversion_cfg']:g}")
            sampling = f"CFG {s['cfg']:g}" + (f", FluxGuidance {s['guidance']:g}" if s["guidance"] else "")
        lines.append(f"| {f.name} | {f.listed} | {layer_text} | {matcher} | {inversion} | {sampling} |")
    return "\n".join(lines) + "\n"


README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = {"node-reference": reference, "families": families_table}


def readme_section(text: str, name: str = "node-reference") -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return text.split(start, 1)[1].split(end, 1)[0].strip() + "\n"


def write_readme():
    text = README.read_text()
    for name, make in SECTIONS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = f"{head}{start}\n{make()}{end}{tail}"
    README.write_text(text)


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme()
    else:
        for make in SECTIONS.values():
            sys.stdout.write(make() + "\n")
