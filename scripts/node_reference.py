#!/usr/bin/env python3
"""Print the README's node reference (every input, its default and tooltip) from the nodes' own INPUT_TYPES.

    python scripts/node_reference.py            # print it
    python scripts/node_reference.py --write    # rewrite the README between its node-reference markers

tests/test_readme.py checks that the README's table is what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


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
    import harness

    pack = harness.load_pack()
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


START, END = "<!-- node-reference:start -->", "<!-- node-reference:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0].strip() + "\n"


def write_readme():
    text = README.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{START}\n{reference()}{END}{tail}")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme()
    else:
        sys.stdout.write(reference())
