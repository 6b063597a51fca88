"""Write tests/comfy_builtins.json: the inputs and outputs of the ComfyUI built-in nodes the shipped workflows use.

The workflow tests check the workflows against this spec when no full ComfyUI is at hand (CI has only the
``comfy/`` core). Regenerate it from a full checkout, with a Python that has ComfyUI's requirements and
not ``notcomfy``:

    COMFYUI_PATH=/path/to/ComfyUI python scripts/dump_builtin_spec.py

Lists of files (checkpoints, input images) depend on the machine and are stored empty.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "comfy_builtins.json"
BUILTINS = ("CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "LoadImageMask", "ImageScale", "VAEEncode",
            "VAEDecode", "SaveImage", "KSamplerAdvanced", "PreviewImage")
FILE_INPUTS = {("CheckpointLoaderSimple", "ckpt_name"), ("LoadImage", "image"), ("LoadImageMask", "image")}


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def node_info(name: str, cls) -> dict:
    """The parts of ComfyUI's /object_info entry that a workflow check needs (hidden inputs left out)."""
    types = cls.INPUT_TYPES()
    inputs = {}
    for section in ("required", "optional"):
        entries = {}
        for key, entry in (types.get(section) or {}).items():
            entry = list(entry)
            if (name, key) in FILE_INPUTS:
                entry[0] = []  # the machine's files
            entries[key] = _jsonable(entry)
        inputs[section] = entries
    outputs = list(getattr(cls, "RETURN_TYPES", ()))
    return {
        "input": inputs,
        "output": _jsonable(outputs),
        "output_name": _jsonable(list(getattr(cls, "RETURN_NAMES", None) or outputs)),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }


def main() -> int:
    checkout = os.environ.get("COMFYUI_PATH")
    if not checkout:
        print("dump_builtin_spec: set COMFYUI_PATH to a full ComfyUI checkout", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(checkout).resolve()))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import nodes  # the checkout's nodes.py

    version = "unknown"
    vfile = Path(checkout) / "comfyui_version.py"
    if vfile.is_file():
        for line in vfile.read_text().splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    spec = {"comfyui_version": version, "nodes": {n: node_info(n, nodes.NODE_CLASS_MAPPINGS[n]) for n in BUILTINS}}
    OUT.write_text(json.dumps(spec, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(REPO)} from ComfyUI {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
