"""Loading the shipped API workflows and filling them.

Nodes are found by their class and their links (the reference image is the LoadImage upstream of the inversion
that feeds the Semantic Match Patch's ``reference`` input, and so on), never by title: users rename titles.
The ids this finds in the shipped files are stable (tests/test_headless.py pins them); titles only name nodes in
messages.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import RunError

# what each role is, for messages
ROLES = {
    "checkpoint": "CheckpointLoaderSimple",
    "unet": "UNETLoader",
    "reference_image": "LoadImage upstream of the reference inversion",
    "target_image": "LoadImage upstream of the target inversion",
    "reference_mask": "LoadImageMask feeding E4ELoadMasks.reference_mask",
    "target_mask": "LoadImageMask feeding E4ELoadMasks.target_mask",
    "prompt": "CLIPTextEncode of the inversions' positive input",
    "negative": "CLIPTextEncode of the inversions' negative input",
    "guidance": "FluxGuidance",
    "scale": "ImageScale",
    "masks": "E4ELoadMasks",
    "invert": "E4EDDIMInvertReference",
    "patch": "E4ESemanticMatchPatch",
    "sampler": "E4EAppearanceTransferSampler",
    "ksampler": "KSamplerAdvanced",
    "save": "SaveImage",
}
_BY_CLASS = ("checkpoint", "unet", "guidance", "scale", "masks", "invert", "patch", "sampler", "ksampler", "save")


def load_workflow(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise RunError(f"--workflow: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise RunError(f"--workflow: {path} is not JSON ({exc})") from None


def _order(node_id: str):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def node_label(prompt: dict, node_id) -> str:
    """``[12 Appearance Transfer Sampler]``: the node's id and title (its class when untitled), for messages."""
    node = prompt.get(str(node_id)) or {}
    title = (node.get("_meta") or {}).get("title") or node.get("class_type") or "?"
    return f"[{node_id} {title}]"


def find_nodes(prompt: dict) -> dict[str, list[str]]:
    """Role (see ROLES) -> the ids of the nodes that play it, found by class and links."""

    def source(node_id, name):
        value = prompt.get(node_id, {}).get("inputs", {}).get(name)
        if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
            return str(value[0])
        return None

    def upstream(node_id, follow, until):
        """The first node of class ``until`` going up through the inputs named in ``follow``."""
        seen = set()
        while node_id is not None and node_id not in seen:
            seen.add(node_id)
            if prompt[node_id]["class_type"] == until:
                return node_id
            node_id = next((s for s in (source(node_id, n) for n in follow) if s is not None), None)
        return None

    found = {role: sorted((k for k, n in prompt.items() if n.get("class_type") == ROLES[role]), key=_order)
             for role in _BY_CLASS}
    for role in ("reference_image", "target_image", "reference_mask", "target_mask", "prompt", "negative"):
        found[role] = []

    def add(role, node_id):
        if node_id is not None and node_id not in found[role]:
            found[role].append(node_id)

    for side in ("reference", "target"):
        for patch in found["patch"]:
            add(f"{side}_image", upstream(source(patch, side), ("latent", "samples", "pixels", "image"), "LoadImage"))
        for masks in found["masks"]:
            add(f"{side}_mask", upstream(source(masks, f"{side}_mask"), ("mask", "image"), "LoadImageMask"))
    for user in found["invert"] + found["sampler"] + found["ksampler"]:
        add("prompt", upstream(source(user, "positive"), ("conditioning",), "CLIPTextEncode"))
        add("negative", upstream(source(user, "negative"), ("conditioning",), "CLIPTextEncode"))
    return found


def drop_masks(prompt: dict) -> dict:
    """The whole-image variant of a masks workflow: without E4ELoadMasks, its LoadImageMask nodes, the masks input
    and the nodes only the masks fed (the masks preview)."""
    prompt = json.loads(json.dumps(prompt))
    found = find_nodes(prompt)
    gone = set(found["masks"]) | set(found["reference_mask"]) | set(found["target_mask"])
    for node_id in gone:
        del prompt[node_id]
    changed = True
    while changed:
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
    """A copy of an API workflow with the input file names and the settings given (None: keep the workflow's).

    A setting given for a node the workflow lacks is an error.
    """
    prompt = json.loads(json.dumps(prompt))
    found = find_nodes(prompt)

    def put(roles, name, value):
        if value is None:
            return
        ids = [i for role in roles for i in found[role]]
        if not ids:
            raise RunError(f"workflow: no {' or '.join(ROLES[r] for r in roles)} node to set {name}")
        for node_id in ids:
            prompt[node_id]["inputs"][name] = value

    s = settings
    put(["reference_image"], "image", names["reference"])
    put(["target_image"], "image", names["target"])
    put(["reference_mask"], "image", names.get("reference_mask"))
    put(["target_mask"], "image", names.get("target_mask"))
    if not found["checkpoint"] and found["unet"]:
        put(["unet"], "unet_name", s.get("checkpoint"))  # Flux: the diffusion model of UNETLoader
    else:
        put(["checkpoint"], "ckpt_name", s.get("checkpoint"))
    put(["prompt"], "text", s.get("prompt"))
    put(["negative"], "text", s.get("negative"))
    put(["scale", "masks"], "width", s.get("width"))  # masks scale like the images
    put(["scale", "masks"], "height", s.get("height"))
    put(["invert"], "steps", s.get("steps"))
    put(["invert"], "skip_steps", s.get("skip_steps"))
    put(["invert"], "cfg", s.get("inversion_cfg"))
    put(["invert"], "seed", s.get("seed"))
    put(["patch"], "hints", s.get("hints"))
    put(["sampler", "ksampler"], "cfg", s.get("cfg"))
    if found["ksampler"]:  # KSamplerAdvanced follows the inversion's schedule
        put(["ksampler"], "steps", s.get("steps"))
        put(["ksampler"], "start_at_step", s.get("skip_steps"))
    put(["save"], "filename_prefix", s.get("filename_prefix"))
    return prompt


def schedule_of(prompt: dict) -> tuple[int, int] | None:
    """(steps, skip_steps) of the workflow's first inversion, or None."""
    invert = find_nodes(prompt)["invert"]
    if not invert:
        return None
    inputs = prompt[invert[0]]["inputs"]
    return inputs.get("steps"), inputs.get("skip_steps")
