"""Loading the shipped API workflows and filling them: file names and settings, found by node title."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import RunError
from .settings import TITLES


def load_workflow(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise RunError(f"--workflow: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise RunError(f"--workflow: {path} is not JSON ({exc})") from None


def find_node(prompt: dict, key: str) -> dict | None:
    """The node titled ``TITLES[key]``, or None."""
    for node in prompt.values():
        if (node.get("_meta") or {}).get("title") == TITLES[key]:
            return node
    return None


def drop_masks(prompt: dict) -> dict:
    """The whole-image variant of a masks workflow: remove the mask nodes and the masks input."""
    prompt = json.loads(json.dumps(prompt))
    gone = set()
    for key in ("reference_mask", "target_mask", "masks"):
        for node_id, node in list(prompt.items()):
            if (node.get("_meta") or {}).get("title") == TITLES[key]:
                gone.add(node_id)
                del prompt[node_id]
    changed = True
    while changed:  # nodes fed only by removed ones (the masks preview)
        changed = False
        for node_id, node in list(prompt.items()):
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in gone:
                    if node["class_type"] in ("PreviewImage", "SaveImage") and name == "images":
                        gone.add(node_id)
                        del prompt[node_id]
                        changed = True
                        break
                    del node["inputs"][name]
    return prompt


def fill_workflow(prompt: dict, names: dict, settings: dict) -> dict:
    """A copy of an API workflow with the uploaded file names and the settings given (None: keep).

    Nodes are found by title (see TITLES); a setting given for a node the workflow lacks is an error.
    """
    prompt = json.loads(json.dumps(prompt))

    def put(keys, name, value):
        if value is None:
            return
        nodes = [n for n in (find_node(prompt, k) for k in keys) if n is not None]
        if not nodes:
            raise RunError(f"workflow: no node titled {' or '.join(repr(TITLES[k]) for k in keys)} to set {name}")
        for node in nodes:
            node["inputs"][name] = value

    put(["reference_image"], "image", names["reference"])
    put(["target_image"], "image", names["target"])
    put(["reference_mask"], "image", names.get("reference_mask"))
    put(["target_mask"], "image", names.get("target_mask"))
    s = settings
    if find_node(prompt, "checkpoint") is None and find_node(prompt, "unet") is not None:
        put(["unet"], "unet_name", s.get("checkpoint"))  # Flux: the diffusion model of UNETLoader
    else:
        put(["checkpoint"], "ckpt_name", s.get("checkpoint"))
    put(["prompt"], "text", s.get("prompt"))
    put(["negative"], "text", s.get("negative"))
    put(["scale_reference", "scale_target", "masks"], "width", s.get("width"))  # masks scale like the images
    put(["scale_reference", "scale_target", "masks"], "height", s.get("height"))
    put(["invert_reference", "invert_target"], "steps", s.get("steps"))
    put(["invert_reference", "invert_target"], "skip_steps", s.get("skip_steps"))
    put(["invert_reference", "invert_target"], "cfg", s.get("inversion_cfg"))
    put(["invert_reference", "invert_target"], "seed", s.get("seed"))
    put(["sampler", "ksampler"], "cfg", s.get("cfg"))
    if find_node(prompt, "ksampler") is not None:  # KSamplerAdvanced follows the inversion's schedule
        put(["ksampler"], "steps", s.get("steps"))
        put(["ksampler"], "start_at_step", s.get("skip_steps"))
    put(["save"], "filename_prefix", s.get("filename_prefix"))
    return prompt
