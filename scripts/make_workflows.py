"""Generate the shipped workflows (editor + API format), their thumbnails and the editor's list of them.

    COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py          # workflows/TITLE.json, TITLE.jpg, api/
    COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py --check  # fails if the files are out of date

Each workflow has a short name (its API file, api/NAME.api.json, which scripts and the headless runner use) and a
title (TEMPLATES below), the name of its editor file and thumbnail. What the template browser does with them
(ComfyUI v0.3.64 lists workflows/*.json in the file system's order; frontends 1.27 and 1.58 read no per-pack index):

- a card's title is the file name; 1.27 shows the file name again as the description ("-" and "_" as spaces), 1.58
  shows no description. So the titles are short and differ in their first words, and the pack's editor extension
  (web/js/e4e_browser.js) lists the cards in TEMPLATES' order and writes each card's description, both from
  web/js/e4e_templates.js, which this script writes;
- the thumbnail is TITLE.jpg, shown square (400 x 400 here): the toy world's real result, drawn large;
- a template opens with the view fitted to its graph (1.58 ignores the workflow's extra.ds for templates, 1.27 fits
  when there is none), and the extension turns a fit too small to draw text into a readable one from the left;
- model download links: the loaders' ``properties.models`` and the workflow's ``models`` list (name, url,
  directory, as ComfyUI's own templates carry them); both frontends read them when a model is missing;
- each graph carries a Markdown Note (what it does, the models with their links, the inputs, what the outputs show).

Run it with a full ComfyUI's Python (scripts/run_tests.sh makes one: .venv, with .comfyui/ComfyUI). The inputs of
each node (order, widgets, defaults) come from the real node definitions: this pack's INPUT_TYPES and the checkout's
built-in nodes. The authors' settings come from engine/defaults.py through the runner's DEFAULTS, so the runner and
the workflows cannot drift apart. Writing (not --check) runs the toy world once through the in-process runner for
the thumbnails (``--toy-result sheet.png`` takes a sheet `python scripts/e4e_run.py` wrote instead). The tests
check the result with ComfyUI's own prompt validation and the real editor (tests/test_workflows.py,
tests/test_web.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
EXTENSION_DATA = "web/js/e4e_templates.js"  # the editor's list of the templates (order, card descriptions)
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
NODE_WIDTH, COL_WIDTH = 300, 340
TITLE_HEIGHT, GAP = 30, 30  # LiteGraph draws a node's title above its pos; the space between two nodes
THUMB = 400  # thumbnails are square (the template browser crops to a square)
# short name -> title (the editor file workflows/TITLE.json and TITLE.jpg, the card's title), in the order the
# template browser lists them: the one that runs without a checkpoint first. Short, differing in their first 24
# characters (a card shows about that many); letters, digits, spaces, "-", "." and parentheses only (both frontends
# fetch /api/workflow_templates/<pack>/<TITLE>.json as it is).
TEMPLATES = {
    "toy_world": "Toy world (no checkpoint)",
    "sd15_masks": "SD1.5 with masks",
    "sd15_whole_image": "SD1.5 whole images",
    "sd15_two_objects": "SD1.5 two objects",
    "sd15_ksampler_advanced": "KSamplerAdvanced SD1.5",
    "sdxl": "SDXL with masks",
    "flux": "Flux.1-dev with masks",
    "qwen_image": "Qwen-Image with masks",
    "wan_t2v": "Wan 2.1 video",
}
# Every model file the templates load: its official download link (the ones ComfyUI's own templates carry, in the
# comfyui-workflow-templates package; SD1.5's from the same Comfy-Org archive as their fp16 file) and its folder
# under ComfyUI/models.
MODEL_LINKS = {
    "v1-5-pruned-emaonly.safetensors": (
        "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly.safetensors",
        "checkpoints"),
    "sd_xl_base_1.0.safetensors": (
        "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"
        "?download=true", "checkpoints"),
    "flux1-dev.safetensors": (
        "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors", "diffusion_models"),
    "clip_l.safetensors": (
        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors", "text_encoders"),
    "t5xxl_fp16.safetensors": (
        "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors", "text_encoders"),
    "ae.safetensors": (
        "https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors",
        "vae"),
    "qwen_image_fp8_e4m3fn.safetensors": (
        "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/diffusion_models/"
        "qwen_image_fp8_e4m3fn.safetensors", "diffusion_models"),
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": (
        "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/"
        "qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders"),
    "qwen_image_vae.safetensors": (
        "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors",
        "vae"),
    "wan2.1_t2v_1.3B_fp16.safetensors": (
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/diffusion_models/"
        "wan2.1_t2v_1.3B_fp16.safetensors?download=true", "diffusion_models"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": (
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/text_encoders/"
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders"),
    "wan_2.1_vae.safetensors": (
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/vae/"
        "wan_2.1_vae.safetensors", "vae"),
}
# the loaders' widgets that name a model file
MODEL_WIDGETS = {"CheckpointLoaderSimple": ("ckpt_name",), "UNETLoader": ("unet_name",), "VAELoader": ("vae_name",),
                 "CLIPLoader": ("clip_name",), "DualCLIPLoader": ("clip_name1", "clip_name2")}


def _load_runner():
    spec = importlib.util.spec_from_file_location("e4e_run", REPO / "scripts" / "e4e_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("e4e_run", module)
    spec.loader.exec_module(module)
    return module


RUN = _load_runner()
D, T = RUN.DEFAULTS, RUN.TITLES
FAMILIES = importlib.import_module("e4e_headless.settings").FAMILIES  # the family registry (loaded by the runner)

# The toy world template: the bundled toy (toy_world/weights/<name>_toy.safetensors; "flux_taught", the toy on which
# both halves of the method work) and every inversion, patch and sampler setting from its family's shipped settings
# (the registry's: "sd1" the authors' SD schedule, "flux" the Flux one, its guidance in the toy's own conditioning)
TOY_NAME, TOY_FAMILY = "flux_taught", "flux"  # toy_world.models.TOYS maps the one to the other (a test keeps it so)
TOY = FAMILIES.shipped_settings(TOY_FAMILY)
TOY_ENLARGE = 8.0  # the sheet's nearest-neighbour enlargement (the creatures are 32 px)
TOY_SHEET_WIDTH = 640  # the node that shows the sheet (four pictures side by side), in the graph's last column
TOY_BASELINE_PATCH, TOY_BASELINE_SAMPLER = "Position matching (baseline)", "Sampler, position matching"


class _Specs(dict):
    """{class name: {"input": ..., "output": ..., "output_name": ...}}, read from the checkout on first use."""

    def __init__(self, comfy):
        super().__init__()
        self.comfy = comfy

    def __missing__(self, name):
        self[name] = self.comfy.class_info(name)
        return self[name]


def node_specs() -> dict:
    """The node definitions of a full ComfyUI checkout (COMFYUI_PATH) with this pack registered."""
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    import harness
    import real_comfy

    host = harness.setup_host()  # a full ComfyUI checkout (COMFYUI_PATH), or a clear error
    return _Specs(real_comfy.RealComfy(host.path, Path(tempfile.mkdtemp(prefix="e4e_specs_")), harness.load_pack()))


def is_widget(entry) -> bool:
    kind = entry[0]
    opts = entry[1] if len(entry) > 1 else {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not opts.get("forceInput")


def has_control(name: str, entry) -> bool:
    """INT inputs that get the editor's 'control after generate' widget (its value follows in widgets_values)."""
    opts = entry[1] if len(entry) > 1 else {}
    return entry[0] == "INT" and bool(opts.get("control_after_generate", name in ("seed", "noise_seed")))


def ordered_inputs(spec: dict) -> list[tuple[str, list, bool]]:
    """(name, entry, required) in the order the editor lays them out."""
    return [(name, list(entry), section == "required")
            for section in ("required", "optional") for name, entry in (spec["input"].get(section) or {}).items()]


@dataclass
class Node:
    id: int
    type: str
    title: str
    col: int
    spec: dict
    values: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)  # input name -> (Node, output slot)
    y: int = 0
    collapsed: bool = False
    group: str | None = None
    width: int = NODE_WIDTH

    def __getitem__(self, key):
        if isinstance(key, str):
            key = self.spec["output_name"].index(key)
        if not 0 <= key < len(self.spec["output"]):
            raise IndexError(f"{self.type} has no output {key}")
        return (self, key)

    @property
    def sockets(self):
        return [(n, e) for n, e, _ in ordered_inputs(self.spec) if not is_widget(e)]

    @property
    def widgets(self):
        return [(n, e, r) for n, e, r in ordered_inputs(self.spec) if is_widget(e)]

    def size(self) -> list[int]:
        """Width and height as the editor draws the node after a run: its sockets and widgets (LiteGraph's
        rows), and the room its pictures take once they are there (input previews, output images, Load Masks'
        preview, the sampler's viewer), so that no node grows over the one below it."""
        rows = max(len(self.sockets), len(self.spec["output"]))
        widgets = len(self.widgets) + sum(has_control(n, e) for n, e, _ in self.widgets)
        widgets += any((e[1] if len(e) > 1 else {}).get("image_upload") for _, e, _ in self.widgets)  # upload button
        height = 30 + 20 * rows + 26 * widgets  # at least what LiteGraph's computeSize gives (1.27 and 1.58)
        if any((e[1] if len(e) > 1 else {}).get("multiline") for _, e, _ in self.widgets):
            height += 60
        height += PICTURES.get(self.type, 0)
        return [self.width, height]

    def height(self) -> int:
        """The height the node takes in its column (a collapsed node: its title only)."""
        return 0 if self.collapsed else self.size()[1]


# Room for a node's pictures, below its widgets, as the frontends size them (measured on 1.27 and 1.58):
# LoadImage's preview of its file, an output node's image once the graph ran (LiteGraph keeps 220 px for it),
# Load Masks' mask preview after a run (a UI output of the node: it grows by 224 px), the sampler's correspondence
# viewer (240 px) with a second line of caption after a run. The run's notices, when there are any, grow the
# sampler further: it is the last node of its column in every graph.
PICTURES = {"LoadImage": 210, "LoadImageMask": 210, "SaveImage": 226, "PreviewImage": 226, "SaveAnimatedWEBP": 226,
            "E4ELoadMasks": 226, "E4EAppearanceTransferSampler": 256}


class Graph:
    """One workflow: ``name`` its short name (TEMPLATES' key), ``about`` what it does (the Note's first paragraph),
    ``summary`` its card description (a sentence)."""

    def __init__(self, name: str, about: str, specs: dict, summary: str):
        self.name, self.title, self.about, self.summary, self.specs = name, TEMPLATES[name], about, summary, specs
        self.nodes: list[Node] = []
        self.groups: list[tuple[str, list[Node]]] = []
        self.note_col = 0  # the Markdown Note's column (the first: what a template opens with on the left)
        self.outputs: list[str] = []  # what the output nodes show, in words (the Note's "What comes out")

    def add(self, type_: str, title: str, col: int, **inputs) -> Node:
        spec = self.specs[type_]
        node = Node(len(self.nodes) + 1, type_, title, col, spec)
        known = {n: (e, r) for n, e, r in ordered_inputs(spec)}
        for key, value in inputs.items():
            if key not in known:
                raise KeyError(f"{type_} has no input {key!r}")
            if isinstance(value, tuple) and isinstance(value[0], Node):
                node.links[key] = value
            else:
                node.values[key] = value
        for name, entry, _ in node.widgets:
            if name not in node.values and name not in node.links:
                opts = entry[1] if len(entry) > 1 else {}
                if "default" in opts:
                    node.values[name] = opts["default"]
                elif isinstance(entry[0], list) and entry[0]:
                    node.values[name] = entry[0][0]
                else:
                    raise ValueError(f"{type_}.{name}: give a value (no default)")
        for name, entry, required in ordered_inputs(spec):
            if required and not is_widget(entry) and name not in node.links:
                raise ValueError(f"{type_}.{name}: required input not connected")
        self.nodes.append(node)
        return node

    def group(self, title: str, *nodes: Node):
        self.groups.append((title, list(nodes)))
        for node in nodes:
            node.group = title

    # -- what the graph needs and says

    def models(self) -> list[dict]:
        """Every model file the graph loads, as ComfyUI's templates declare them: name, url, directory."""
        out = []
        for node in self.nodes:
            for widget in MODEL_WIDGETS.get(node.type, ()):
                name = node.values[widget]
                url, directory = MODEL_LINKS[name]
                entry = {"name": name, "url": url, "directory": directory}
                if entry not in out:
                    out.append(entry)
        return out

    def images(self) -> list[str]:
        """The files of ComfyUI's input folder the graph loads (the pack's example inputs)."""
        names = []
        for node in self.nodes:
            if node.type in ("LoadImage", "LoadImageMask"):
                names.append(node.values["image"])
            for key in ("reference_mask_file", "target_mask_file"):
                names += [f.strip() for f in node.values.get(key, "").split(",") if f.strip()]
        return names

    def note(self) -> str:
        """The Markdown Note in the graph: what it does, the models (links, folders), the inputs, the outputs."""
        lines = [f"## {self.title}", "", self.about, ""]
        models = self.models()
        if models:
            lines += ["**Models** (the editor offers the downloads when a file is missing):", ""]
            lines += [f"- [{m['name']}]({m['url']}) in `ComfyUI/models/{m['directory']}/`" for m in models]
        else:
            lines += ["**Models:** none to download: the toy model ships with the pack."]
        images = self.images()
        if images:
            lines += ["", "**Inputs:** " + ", ".join(f"`{n}`" for n in dict.fromkeys(images)) + " from ComfyUI's "
                      "input folder. The pack puts its examples there when they are absent (it never overwrites a "
                      "file); pick your own images in the loaders."]
        lines += ["", "**What comes out:**", ""] + [f"- {o}" for o in self.outputs]
        lines += ["", "Press **Run**. Each node's tooltips say what its settings do."]
        return "\n".join(lines).strip() + "\n"

    # -- layout and formats

    def _layout(self):
        """Nodes stacked in their columns (a group's first node leaves room for the group's title), the Note at the
        foot of its column; returns the Note's position and size."""
        bottoms: dict[int, int] = {}
        last_group: dict[int, str | None] = {}
        for node in self.nodes:
            y = bottoms.get(node.col, TOP)
            if node.col in last_group and node.group != last_group[node.col] and node.group:
                y += GROUP_HEADER
            node.y = y
            bottoms[node.col] = y + node.height() + TITLE_HEIGHT + GAP
            last_group[node.col] = node.group
        y = bottoms.get(self.note_col, TOP) + (GROUP_HEADER if self.note_col in last_group else 0) // 2
        tallest = max(bottoms.values()) - TITLE_HEIGHT - GAP
        return [40 + self.note_col * COL_WIDTH, y], [NODE_WIDTH, max(NOTE_MIN_HEIGHT, tallest - y)]

    def _order(self) -> dict[int, int]:
        order, done = {}, set()
        while len(done) < len(self.nodes):
            for node in self.nodes:
                if node.id not in done and all(src.id in done for src, _ in node.links.values()):
                    order[node.id] = len(done)
                    done.add(node.id)
        return order

    def editor(self) -> dict:
        note_pos, note_size = self._layout()
        order = self._order()
        links, out_links, in_link = [], {}, {}
        for node in self.nodes:
            sockets = [n for n, _ in node.sockets]
            for name, (src, slot) in sorted(node.links.items(), key=lambda kv: sockets.index(kv[0])):
                link_id = len(links) + 1
                links.append([link_id, src.id, slot, node.id, sockets.index(name), src.spec["output"][slot]])
                out_links.setdefault((src.id, slot), []).append(link_id)
                in_link[(node.id, name)] = link_id
        nodes = []
        for node in self.nodes:
            widgets_values = []
            upload = False
            widgets = node.widgets
            for i, (name, entry, required) in enumerate(widgets):
                widgets_values.append(node.values[name])
                if has_control(name, entry):
                    widgets_values.append("fixed")
                upload = upload or bool((entry[1] if len(entry) > 1 else {}).get("image_upload"))
                last_required = required and (i + 1 == len(widgets) or not widgets[i + 1][2])
                if last_required and upload:
                    widgets_values.append("image")  # the upload button's value
            properties = {"Node name for S&R": node.type}
            if node.type in MODEL_WIDGETS:  # where the frontends look for a missing model's download link
                properties["models"] = [{"name": node.values[w], "url": MODEL_LINKS[node.values[w]][0],
                                         "directory": MODEL_LINKS[node.values[w]][1]} for w in MODEL_WIDGETS[node.type]]
            entry = {
                "id": node.id,
                "type": node.type,
                "pos": [40 + node.col * COL_WIDTH, node.y],
                "size": node.size(),
                "flags": {"collapsed": True} if node.collapsed else {},
                "order": order[node.id],
                "mode": 0,
                "inputs": [{"name": n, "type": e[0], "link": in_link.get((node.id, n))} for n, e in node.sockets],
                "outputs": [{"name": oname, "type": otype, "links": out_links.get((node.id, i), []),
                             "slot_index": i}
                            for i, (oname, otype) in enumerate(zip(node.spec["output_name"], node.spec["output"]))],
                "title": node.title,
                "properties": properties,
                "widgets_values": widgets_values,
            }
            if node.type.startswith("E4E"):
                entry["color"], entry["bgcolor"] = "#432", "#653"
            nodes.append(entry)
        nodes.append({  # the Note: a frontend-only node (not in the API format, not queued), with the last id
            "id": len(self.nodes) + 1, "type": "MarkdownNote", "pos": note_pos, "size": note_size, "flags": {},
            "order": len(self.nodes), "mode": 0, "inputs": [], "outputs": [], "title": "About this workflow",
            "properties": {}, "widgets_values": [self.note()], "color": "#432", "bgcolor": "#653"})
        groups = []
        for title, members in self.groups:
            x0 = min(40 + n.col * COL_WIDTH for n in members) - 15
            y0 = min(n.y for n in members) - TITLE_HEIGHT - 50
            x1 = max(40 + n.col * COL_WIDTH + n.size()[0] for n in members) + 15
            y1 = max(n.y + n.height() for n in members) + 15
            groups.append({"title": title, "bounding": [x0, y0, x1 - x0, y1 - y0], "color": "#3f789e",
                           "font_size": 22, "flags": {}})
        return {
            "last_node_id": len(self.nodes) + 1,
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": groups,
            "config": {},
            "extra": {"e4e": {"title": self.title, "summary": self.summary, "about": self.about}},
            "models": self.models(),
            "version": 0.4,
        }

    def api(self) -> dict:
        prompt = {}
        for node in self.nodes:
            inputs = {}
            for name, _entry, _req in ordered_inputs(node.spec):
                if name in node.links:
                    src, slot = node.links[name]
                    inputs[name] = [str(src.id), slot]
                elif name in node.values:
                    inputs[name] = node.values[name]
            prompt[str(node.id)] = {"inputs": inputs, "class_type": node.type, "_meta": {"title": node.title}}
        return prompt


TOP = 140  # the first node of a column (its group's title above it)
GROUP_HEADER = 60  # room for a group's title when a column's next node starts another group
NOTE_MIN_HEIGHT = 420


# ------------------------------------------------------------------------------------------- the graphs
#
# Column 0 holds the Note; the stages of a transfer follow left to right, one group per column or per set of whole
# columns (a group's box never reaches into another's column). Nodes are added in the order of their ids (the API
# files' ids, which the headless runner's tests pin); their column says where they go.

SAVED = "**Save result**: the target with the reference's appearance, in ComfyUI's output folder."


def correspondence(refs: int = 1, name: str = "Correspondences", what: str = "the target") -> str:
    """The Note's words for the sampler's correspondence picture (matching/correspondence_pictures.py draws it)."""
    code = "the reference's colour code" if refs == 1 else f"the {refs} references' colour codes, one each"
    return (f"**{name}** (the sampler's second output): on the left {code} (each position of a reference has its "
            f"own colour: red grows to the right, green downwards), on the right {what}, each spot painted in the "
            "colour of the reference position it takes its appearance from. Dark grey: outside the masks, kept as "
            "it is.")


VIEWER = ("The sampler's viewer shows the same on the images after a run: hover a spot of the target to see where "
          "it comes from, or a spot of the reference to see which target spots copy it.")


def _common(g: Graph, ckpt: str, size: int):
    """Checkpoint, the authors' FreeU once on its MODEL (used by both inversions and the patch), prompts."""
    ckpt_node = g.add("CheckpointLoaderSimple", T["checkpoint"], 1, ckpt_name=ckpt)
    b1, b2, s1, s2 = D["freeu_sdxl"] if ckpt == RUN.SDXL_CHECKPOINT else D["freeu"]
    freeu = g.add("E4EAuthorsFreeU", T["freeu"], 1, model=ckpt_node["MODEL"], b1=b1, b2=b2, s1=s1, s2=s2)
    pos = g.add("CLIPTextEncode", T["prompt"], 1, text=D["prompt"], clip=ckpt_node["CLIP"])
    neg = g.add("CLIPTextEncode", T["negative"], 1, text=D["negative"], clip=ckpt_node["CLIP"])
    g.group("Model, prompt", ckpt_node, freeu, pos, neg)
    return ckpt_node, freeu, pos, neg


def _scale(g: Graph, title: str, image, size: int, col: int):
    return g.add("ImageScale", title, col, image=image, upscale_method=D["upscale_method"], width=size, height=size,
                 crop=D["crop"])


def _invert(g: Graph, title: str, model, pos, neg, latent, col: int, method: str | None = None, s: dict = D):
    """DDIM Invert Reference at the settings ``s`` (the authors', or a family's shipped ones); ``model``, ``pos``,
    ``neg``, ``latent``: output sockets."""
    return g.add("E4EDDIMInvertReference", title, col, model=model, positive=pos, negative=neg,
                 latent=latent, steps=s["steps"], skip_steps=s["skip_steps"], cfg=s["inversion_cfg"],
                 method=method or s["method"], scheduler=s["scheduler"], seed=s["seed"])


def _patch(g: Graph, model, ref_inv, tgt_inv, col: int, **extra):
    """Semantic Match Patch at the authors' settings; ``model``: an output socket."""
    return g.add("E4ESemanticMatchPatch", T["patch"], col, model=model, reference=ref_inv["inversion"],
                 target=tgt_inv["inversion"], layers=D["layers"], custom_layers=D["custom_layers"],
                 start_percent=D["start_percent"], end_percent=D["end_percent"],
                 structure_every=D["structure_every"], structure_end_percent=D["structure_end_percent"],
                 strength=D["strength"], **extra)


def _sample_and_save(g: Graph, ckpt, patched, pos, neg, col: int, tgt_scaled=None, ref_scaled=None, refs=1):
    extra = {}
    if tgt_scaled is not None:
        extra["target_image"] = tgt_scaled[0]
    if ref_scaled is not None:
        extra["reference_image"] = ref_scaled[0]
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], col, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D["cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], **extra)
    decode = g.add("VAEDecode", "VAE Decode", col + 1, samples=sampler["latent"], vae=ckpt["VAE"])
    save = g.add("SaveImage", T["save"], col + 1, images=decode[0], filename_prefix=D["filename_prefix"])
    corr = g.add("PreviewImage", "Correspondences", col + 1, images=sampler["correspondence"])
    g.group("Transfer", patched, sampler)
    g.outputs = [SAVED, correspondence(refs), VIEWER]
    return sampler, decode, save, corr


def _masks(g: Graph, col: int, preview: bool = True, **inputs) -> Node:
    """Load Masks and a preview of them (collapsed: Load Masks shows the same picture itself after a run)."""
    masks = g.add("E4ELoadMasks", T["masks"], col, reference_of_object=inputs.pop("reference_of_object", ""),
                  invert=False, crop=D["crop"], **inputs)
    shown = [masks]
    if preview:
        shown.append(g.add("PreviewImage", "Masks preview", col, images=masks["preview"]))
        shown[-1].collapsed = True
    g.group("Masks", *shown)
    return masks


def one_object(name: str, about: str, specs: dict, ckpt: str, size: int, masks: bool, summary: str) -> Graph:
    g = Graph(name, about, specs, summary)
    ckpt_node, model, pos, neg = _common(g, ckpt, size)
    ref = g.add("LoadImage", T["reference_image"], 2, image="e4e_reference.png")
    ref_mask = g.add("LoadImageMask", T["reference_mask"], 2, image="e4e_reference_mask.png",
                     channel=D["mask_channel"]) if masks else None
    tgt = g.add("LoadImage", T["target_image"], 3, image="e4e_target.png")
    tgt_mask = g.add("LoadImageMask", T["target_mask"], 3, image="e4e_target_mask.png",
                     channel=D["mask_channel"]) if masks else None
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], size, 2)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size, 3)
    g.group("Images, one size", ref, tgt, *(n for n in (ref_mask, tgt_mask) if n), ref_s, tgt_s)
    extra = {}
    if masks:
        extra["masks"] = _masks(g, 4, width=size, height=size, target_mask=tgt_mask["MASK"],
                                reference_mask=ref_mask["MASK"], target_image=tgt_s[0],
                                reference_image=ref_s[0])["masks"]
    ref_lat = g.add("VAEEncode", "Encode reference", 5, pixels=ref_s[0], vae=ckpt_node["VAE"])
    tgt_lat = g.add("VAEEncode", "Encode target", 5, pixels=tgt_s[0], vae=ckpt_node["VAE"])
    ref_inv = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], ref_lat[0], 5)
    tgt_inv = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], tgt_lat[0], 5)
    g.group("Inversion", ref_lat, tgt_lat, ref_inv, tgt_inv)
    patched = _patch(g, model["MODEL"], ref_inv, tgt_inv, 6, **extra)
    _sample_and_save(g, ckpt_node, patched, pos, neg, 6, tgt_s, ref_s)
    return g


def two_objects(specs: dict) -> Graph:
    g = Graph("sd15_two_objects",
              "Target object 1 takes its appearance from reference 1, object 2 from reference 2. Masks are files "
              "in ComfyUI's input folder (white = object), one per object; Load Masks scales them like the images.",
              specs, "Two objects, each from its own reference (mask files).")
    ckpt, model, pos, neg = _common(g, RUN.SD15_CHECKPOINT, D["size"])
    ref1 = g.add("LoadImage", T["reference_image"], 2, image="e4e_reference_1.png")
    ref2 = g.add("LoadImage", "Reference image 2", 2, image="e4e_reference_2.png")
    tgt = g.add("LoadImage", T["target_image"], 3, image="e4e_target.png")
    size = D["size"]
    ref1_s = _scale(g, T["scale_reference"], ref1["IMAGE"], size, 3)
    ref2_s = _scale(g, "Scale reference 2", ref2["IMAGE"], size, 3)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size, 3)
    g.group("Images, one size", ref1, ref2, tgt, ref1_s, ref2_s, tgt_s)
    masks = _masks(g, 4, reference_of_object="1,2", width=size, height=size,
                   target_mask_file="e4e_target_mask_1.png, e4e_target_mask_2.png",
                   reference_mask_file="e4e_reference_1_mask.png, e4e_reference_2_mask.png", target_image=tgt_s[0])
    lats = [g.add("VAEEncode", f"Encode {t}", 5, pixels=s[0], vae=ckpt["VAE"])
            for t, s in (("reference", ref1_s), ("reference 2", ref2_s), ("target", tgt_s))]
    inv1 = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], lats[0][0], 5)
    inv2 = _invert(g, "Invert reference 2", model["MODEL"], pos[0], neg[0], lats[1][0], 6)
    inv_t = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], lats[2][0], 6)
    g.group("Inversion", *lats, inv1, inv2, inv_t)
    patched = _patch(g, model["MODEL"], inv1, inv_t, 7, masks=masks["masks"], reference_2=inv2["inversion"])
    _sample_and_save(g, ckpt, patched, pos, neg, 7, tgt_s, refs=2)
    return g


def ksampler_advanced(specs: dict) -> Graph:
    g = Graph("sd15_ksampler_advanced",
              "The patched MODEL in ComfyUI's own KSamplerAdvanced: the target is inverted with method 'ddim'; "
              "KSamplerAdvanced samples the patched model from the target's start latent: add_noise disable, "
              "start_at_step = skip_steps, the same steps and scheduler, sampler ddim.", specs,
              "The patch in ComfyUI's own KSamplerAdvanced (DDIM).")
    ckpt, model, pos, neg = _common(g, RUN.SD15_CHECKPOINT, D["size"])
    ref = g.add("LoadImage", T["reference_image"], 2, image="e4e_reference.png")
    tgt = g.add("LoadImage", T["target_image"], 3, image="e4e_target.png")
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], D["size"], 2)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], D["size"], 3)
    g.group("Images, one size", ref, tgt, ref_s, tgt_s)
    ref_lat = g.add("VAEEncode", "Encode reference", 4, pixels=ref_s[0], vae=ckpt["VAE"])
    tgt_lat = g.add("VAEEncode", "Encode target", 4, pixels=tgt_s[0], vae=ckpt["VAE"])
    ref_inv = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], ref_lat[0], 4)
    tgt_inv = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], tgt_lat[0], 4, method="ddim")
    g.group("Inversion (target: ddim)", ref_lat, tgt_lat, ref_inv, tgt_inv)
    patched = _patch(g, model["MODEL"], ref_inv, tgt_inv, 5)
    ks = g.add("KSamplerAdvanced", T["ksampler"], 5, model=patched[0], add_noise="disable", noise_seed=0,
               steps=D["steps"], cfg=D["cfg"], sampler_name="ddim", scheduler=D["scheduler"], positive=pos[0],
               negative=neg[0], latent_image=tgt_inv["start_latent"], start_at_step=D["skip_steps"],
               end_at_step=10000, return_with_leftover_noise="disable")
    decode = g.add("VAEDecode", "VAE Decode", 6, samples=ks[0], vae=ckpt["VAE"])
    g.add("SaveImage", T["save"], 6, images=decode[0], filename_prefix=D["filename_prefix"])
    g.group("Transfer", patched, ks)
    g.outputs = [SAVED, "No correspondence picture here: KSamplerAdvanced has one output; the Appearance Transfer "
                 "Sampler (in the other SD1.5 templates) shows what was matched."]
    return g


def flux(specs: dict) -> Graph:
    g = Graph("flux",
              "Flux.1-dev through ComfyUI's usual loaders (UNETLoader, DualCLIPLoader type flux, VAELoader). The "
              "patch rewrites the image tokens of Stable Flow's vital blocks; no CFG (FluxGuidance 3.5); 28 "
              "steps of the simple schedule, 9 skipped.", specs,
              "One object with masks, 1024 px, FluxGuidance 3.5.")
    size = D["flux_size"]
    unet = g.add("UNETLoader", T["unet"], 1, unet_name=RUN.FLUX_MODEL, weight_dtype="default")
    clip = g.add("DualCLIPLoader", T["text_encoders"], 1, clip_name1=RUN.FLUX_TEXT_ENCODERS[0],
                 clip_name2=RUN.FLUX_TEXT_ENCODERS[1], type="flux")
    vae = g.add("VAELoader", T["vae"], 1, vae_name=RUN.FLUX_VAE)
    text = g.add("CLIPTextEncode", T["prompt"], 1, text=D["prompt"], clip=clip[0])
    pos = g.add("FluxGuidance", T["guidance"], 1, conditioning=text[0], guidance=D["flux_guidance"])
    neg = g.add("CLIPTextEncode", T["negative"], 1, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, text, pos, neg)
    return _masked_transfer(g, unet, vae, pos, neg, size, "flux")


def _masked_transfer(g: Graph, unet, vae, pos, neg, size: int, key: str) -> Graph:
    """A diffusion transformer's one-object transfer with masks, after its loaders and prompts: the images and
    masks at ``size``, both inversions, the patch, the sampler, decode and save; ``key``: the family's settings in
    DEFAULTS (``flux_steps``, ``qwen_cfg``, ...)."""
    ref = g.add("LoadImage", T["reference_image"], 2, image="e4e_reference.png")
    ref_mask = g.add("LoadImageMask", T["reference_mask"], 2, image="e4e_reference_mask.png", channel=D["mask_channel"])
    tgt = g.add("LoadImage", T["target_image"], 3, image="e4e_target.png")
    tgt_mask = g.add("LoadImageMask", T["target_mask"], 3, image="e4e_target_mask.png", channel=D["mask_channel"])
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], size, 2)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size, 3)
    g.group("Images, one size", ref, tgt, ref_mask, tgt_mask, ref_s, tgt_s)
    masks = _masks(g, 4, width=size, height=size, target_mask=tgt_mask["MASK"], reference_mask=ref_mask["MASK"],
                   target_image=tgt_s[0], reference_image=ref_s[0])
    ref_lat = g.add("VAEEncode", "Encode reference", 5, pixels=ref_s[0], vae=vae[0])
    tgt_lat = g.add("VAEEncode", "Encode target", 5, pixels=tgt_s[0], vae=vae[0])
    invs = [g.add("E4EDDIMInvertReference", title, 5, model=unet[0], positive=pos[0], negative=neg[0], latent=lat[0],
                  steps=D[f"{key}_steps"], skip_steps=D[f"{key}_skip_steps"], cfg=D[f"{key}_cfg"], method=D["method"],
                  scheduler=D[f"{key}_scheduler"], seed=D["seed"])
            for title, lat in ((T["invert_reference"], ref_lat), (T["invert_target"], tgt_lat))]
    g.group("Inversion", ref_lat, tgt_lat, *invs)
    patched = _patch(g, unet["MODEL"], invs[0], invs[1], 6, masks=masks["masks"])
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 6, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D[f"{key}_cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], target_image=tgt_s[0], reference_image=ref_s[0])
    decode = g.add("VAEDecode", "VAE Decode", 7, samples=sampler["latent"], vae=vae[0])
    g.add("SaveImage", T["save"], 7, images=decode[0], filename_prefix=D["filename_prefix"])
    g.add("PreviewImage", "Correspondences", 7, images=sampler["correspondence"])
    g.group("Transfer", patched, sampler)
    g.outputs = [SAVED, correspondence(), VIEWER]
    return g


def qwen_image(specs: dict) -> Graph:
    g = Graph("qwen_image",
              "Qwen-Image through ComfyUI's usual loaders (UNETLoader, CLIPLoader type qwen_image, VAELoader). The "
              "patch rewrites the image tokens of the second half of the blocks (as for SD3); 30 steps of the "
              "simple schedule, 10 skipped; CFG 2.5.", specs,
              "One object with masks on Qwen-Image, 1024 px, CFG 2.5.")
    size = D["qwen_size"]
    unet = g.add("UNETLoader", T["unet"], 1, unet_name=RUN.QWEN_MODEL, weight_dtype="default")
    clip = g.add("CLIPLoader", T["text_encoder"], 1, clip_name=RUN.QWEN_TEXT_ENCODER, type="qwen_image")
    vae = g.add("VAELoader", T["vae"], 1, vae_name=RUN.QWEN_VAE)
    pos = g.add("CLIPTextEncode", T["prompt"], 1, text=D["prompt"], clip=clip[0])
    neg = g.add("CLIPTextEncode", T["negative"], 1, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, pos, neg)
    return _masked_transfer(g, unet, vae, pos, neg, size, "qwen")


def wan_t2v(specs: dict) -> Graph:
    g = Graph("wan_t2v",
              "Wan 2.1 text-to-video through ComfyUI's usual loaders (UNETLoader, CLIPLoader type wan, VAELoader). "
              "The target video is made from the prompt here (to transfer onto your own video, put LoadVideo, "
              "GetVideoComponents and VAE Encode in place of the KSampler); the reference is one image. Every "
              "frame's tokens take the Q/K/V of their matched reference tokens in the second half of the blocks; "
              "30 steps of the simple schedule, 10 skipped; CFG 5.", specs,
              "A 33-frame video from the prompt takes a reference's look.")
    width, height = D["wan_size"]
    unet = g.add("UNETLoader", T["unet"], 1, unet_name=RUN.WAN_MODEL, weight_dtype="default")
    clip = g.add("CLIPLoader", T["text_encoder"], 1, clip_name=RUN.WAN_TEXT_ENCODER, type="wan")
    vae = g.add("VAELoader", T["vae"], 1, vae_name=RUN.WAN_VAE)
    pos = g.add("CLIPTextEncode", T["prompt"], 1, text=D["wan_prompt"], clip=clip[0])
    neg = g.add("CLIPTextEncode", T["negative"], 1, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, pos, neg)
    empty = g.add("EmptyHunyuanLatentVideo", "Video size", 2, width=width, height=height, length=D["wan_frames"],
                  batch_size=1)
    video = g.add("KSampler", T["target_video"], 2, model=unet[0], seed=0, steps=D["wan_steps"], cfg=D["wan_cfg"],
                  sampler_name="uni_pc", scheduler=D["wan_scheduler"], positive=pos[0], negative=neg[0],
                  latent_image=empty[0], denoise=1.0)
    ref = g.add("LoadImage", T["reference_image"], 2, image="e4e_reference.png")
    g.group("Target video, reference image", empty, video, ref)
    ref_s = g.add("ImageScale", T["scale_reference"], 3, image=ref["IMAGE"], upscale_method=D["upscale_method"],
                  width=width, height=height, crop="center")
    ref_lat = g.add("VAEEncode", "Encode reference", 3, pixels=ref_s[0], vae=vae[0])
    invs = [g.add("E4EDDIMInvertReference", title, 3, model=unet[0], positive=pos[0], negative=neg[0], latent=lat,
                  steps=D["wan_steps"], skip_steps=D["wan_skip_steps"], cfg=D["wan_cfg"], method=D["method"],
                  scheduler=D["wan_scheduler"], seed=D["seed"])
            for title, lat in ((T["invert_reference"], ref_lat[0]), (T["invert_target"], video[0]))]
    g.group("Inversion", ref_s, ref_lat, *invs)
    patched = _patch(g, unet["MODEL"], invs[0], invs[1], 4)
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 4, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D["wan_cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], reference_image=ref_s[0])
    g.group("Transfer", patched, sampler)
    decode = g.add("VAEDecode", "VAE Decode", 5, samples=sampler["latent"], vae=vae[0])
    g.add("SaveAnimatedWEBP", T["save"], 5, images=decode[0], filename_prefix=D["filename_prefix"],
          fps=float(D["wan_fps"]), lossless=False, quality=90, method="default")
    g.add("PreviewImage", "Correspondences", 5, images=sampler["correspondence"])
    g.outputs = ["**Save result**: the video with the reference's appearance, an animated WebP in ComfyUI's output "
                 "folder.", correspondence(what="each frame"), VIEWER]
    return g


def _toy_words(family: str) -> tuple[str, str]:
    """The toy model of ``family`` in words, and its shipped schedule (``TOY``) in words, for the Note."""
    layout = {"sd1": "SD1.5-layout UNet", "flux": "Flux-layout transformer",
              "flux_taught": "Flux-layout transformer (its matching block taught the parts)"}.get(family, family)
    sched = (f"{TOY['steps']} steps of the {TOY['scheduler']} schedule, {TOY['skip_steps']} skipped, "
             f"CFG {TOY['cfg']:g}")
    if TOY["guidance"] is not None:
        sched += f", guidance {TOY['guidance']:g} in the toy's own conditioning (no FluxGuidance node)"
    return layout, sched


def _toy_patch(g: Graph, title: str, toy, invs, masks, col: int, matching: str) -> Node:
    """Semantic Match Patch at the toy family's shipped settings; ``matching``: the method or the baseline."""
    s = TOY
    extra = {"custom_layers": s["custom_layers"]} if s["custom_layers"] else {}  # '': the node's default
    return g.add("E4ESemanticMatchPatch", title, col, model=toy["model"], reference=invs[0]["inversion"],
                 target=invs[1]["inversion"], layers=s["layers"], start_percent=s["start_percent"],
                 end_percent=s["end_percent"], structure_every=s["structure_every"],
                 structure_end_percent=s["structure_end_percent"], strength=s["strength"], masks=masks["masks"],
                 matching=matching, match_block=s["match_block"], **extra)


def _toy_sampler(g: Graph, title: str, toy, patched, pair, col: int) -> Node:
    """The Appearance Transfer Sampler at the toy family's shipped settings, the creatures in its viewer."""
    s = TOY
    return g.add("E4EAppearanceTransferSampler", title, col, model=patched[0], positive=toy["positive"],
                 negative=toy["negative"], cfg=s["cfg"], adain=s["adain"], adain_start_percent=s["adain_start_percent"],
                 ending=s["ending"], target_image=pair["target"], reference_image=pair["reference"])


def toy_world(specs: dict) -> Graph:
    """The demo: the bundled toy model (TOY_NAME) and two generated creatures; runs anywhere, in seconds on a CPU.
    The method and position matching side by side, on the same inversions and masks, so that the eye can judge
    what the matching does."""
    method, baseline = specs["E4ESemanticMatchPatch"]["input"]["optional"]["matching"][0][:2]
    layout, schedule = _toy_words(TOY_NAME)
    g = Graph("toy_world",
              f"A transfer on the small {layout} this pack trained on its toy world of creatures (bundled): the "
              "target creature keeps its shape and pose and takes the reference's colours part by part (head from "
              "head, wing from wing). The same inversions and masks go through two patches: the method "
              f"(matching '{method}': each target token takes its most similar reference token) and position "
              f"matching (matching '{baseline}': each target token takes the reference token at its own place, "
              "nothing is matched), so the sheet shows what the matching does. The family's shipped settings: "
              f"{schedule}. Change the seed for another pair.", specs,
              "No download: a toy creature takes another's colours.")
    toy = g.add("E4EToyModel", "Toy model", 1, family=TOY_NAME)
    pair = g.add("E4EToyCreatures", "Toy creatures", 1)  # the node's default pair
    g.group("Model, images", toy, pair)
    masks = _masks(g, 1, preview=False, width=0, height=0, target_mask=pair["target_mask"], reference_mask=pair["reference_mask"],
                   target_image=pair["target"], reference_image=pair["reference"])
    ref_lat = g.add("E4EToyVAEEncode", "Encode reference", 2, pixels=pair["reference"], toy_vae=toy["toy_vae"])
    tgt_lat = g.add("E4EToyVAEEncode", "Encode target", 2, pixels=pair["target"], toy_vae=toy["toy_vae"])
    invs = [_invert(g, title, toy["model"], toy["positive"], toy["negative"], lat[0], 2, s=TOY)
            for title, lat in ((T["invert_reference"], ref_lat), (T["invert_target"], tgt_lat))]
    g.group("Inversion", ref_lat, tgt_lat, *invs)
    patched = _toy_patch(g, T["patch"], toy, invs, masks, 3, method)
    sampler = _toy_sampler(g, T["sampler"], toy, patched, pair, 3)
    g.group("Transfer (the method)", patched, sampler)
    by_place = _toy_patch(g, TOY_BASELINE_PATCH, toy, invs, masks, 4, baseline)
    by_place_sampler = _toy_sampler(g, TOY_BASELINE_SAMPLER, toy, by_place, pair, 4)
    g.group("Position matching (baseline)", by_place, by_place_sampler)
    decode = g.add("E4EToyVAEDecode", "Toy VAE Decode", 5, samples=sampler["latent"], toy_vae=toy["toy_vae"])
    by_place_decode = g.add("E4EToyVAEDecode", "Toy VAE Decode (position matching)", 5,
                            samples=by_place_sampler["latent"], toy_vae=toy["toy_vae"])
    stitch = dict(direction="right", match_image_size=False, spacing_width=2, spacing_color="white")
    sheet = g.add("ImageStitch", "Reference | target", 6, image1=pair["reference"], image2=pair["target"], **stitch)
    sheet = g.add("ImageStitch", "... | result", 6, image1=sheet[0], image2=decode[0], **stitch)
    sheet = g.add("ImageStitch", "... | position matching", 6, image1=sheet[0], image2=by_place_decode[0], **stitch)
    big = g.add("ImageScaleBy", "Enlarge", 6, image=sheet[0], upscale_method="nearest-exact", scale_by=TOY_ENLARGE)
    for plumbing in g.nodes[-4:]:  # the sheet's plumbing, titles only, above what it makes
        plumbing.collapsed = True
    save = g.add("SaveImage", f"{T['save']}: reference | target | result | position matching", 6,
                 images=big[0], filename_prefix="e4e_toy")
    save.width = TOY_SHEET_WIDTH  # the last column: room for the wide sheet, nothing to its right
    # below the decoders, a short column: the editor's minimap sits in the view's bottom right corner
    g.add("SaveImage", "Save correspondences", 5, images=sampler["correspondence"],
          filename_prefix="e4e_toy_correspondence")
    g.outputs = [f"**Save result**: four pictures side by side, enlarged {TOY_ENLARGE:g} times without smoothing "
                 "(the creatures are 32 px): the reference, the target, the method's result and position "
                 "matching's result. Where the method's matching finds the right parts, its result has the "
                 "reference's colours on the right parts; position matching paints each target spot with whatever "
                 "lies at the same place in the reference. Where the two look alike, the matching found little "
                 "more than the places: click correspondence hints in the method's viewer (a target spot, then "
                 "the reference spot it should copy) and run again.",
                 correspondence(name="Save correspondences") + " (The method's.)", VIEWER]
    return g


def graphs(specs: dict) -> list[Graph]:
    """Every shipped workflow, in TEMPLATES' order."""
    made = {
        "sd15_masks": lambda: one_object(
            "sd15_masks", "The target object takes the reference object's appearance; the background stays. Masks "
            "are black/white images (white = object) made from the images they belong to.",
            specs, RUN.SD15_CHECKPOINT, D["size"], True,
            "The paper's set-up: one object with masks, 512 px."),
        "sd15_whole_image": lambda: one_object(
            "sd15_whole_image", "The whole target takes the whole reference's appearance (nothing is kept as "
            "background).", specs, RUN.SD15_CHECKPOINT, D["size"], False,
            "No masks: the whole target takes the reference's look."),
        "sdxl": lambda: one_object(
            "sdxl", "As the SD1.5 workflow with masks, on SDXL at 1024 px; the patch uses the decoder blocks output "
            "0-5. FreeU at FreeU's SDXL values (b1 1.3, b2 1.4: the authors never ran SDXL).", specs,
            RUN.SDXL_CHECKPOINT, D["sdxl_size"], True, "One object with masks on SDXL at 1024 px."),
        "sd15_two_objects": lambda: two_objects(specs),
        "sd15_ksampler_advanced": lambda: ksampler_advanced(specs),
        "flux": lambda: flux(specs),
        "toy_world": lambda: toy_world(specs),
        "qwen_image": lambda: qwen_image(specs),
        "wan_t2v": lambda: wan_t2v(specs),
    }
    return [made[name]() for name in TEMPLATES]


# ------------------------------------------------------------------------------------------ thumbnails
#
# Square, 400 px, text large enough to read on a card (about 256 px wide): what goes in and what comes out, and
# what has to be downloaded (the card itself shows the title and the description). The toy world's shows its real result (a run of the shipped graph through
# the in-process runner); the others show the example images they load, with their masks, and say which model makes
# the result.

BG, FG, DIM, ACCENT = (30, 32, 36), (240, 240, 240), (175, 180, 190), (240, 170, 90)


def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    for name in (("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")[not bold], "LiberationSans-Bold.ttf"):
        for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation"):
            try:
                return ImageFont.truetype(f"{folder}/{name}", size)
            except OSError:
                continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _wrap(draw, text: str, font, width: float) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def _panel(img, size: int, mask=None):
    """An RGB square of ``size`` px, the mask's outline (if any) drawn on it; nearest-neighbour for small pictures."""
    from PIL import Image, ImageChops, ImageFilter

    out = img.convert("RGB").resize((size, size), Image.NEAREST if img.width < size else Image.LANCZOS)
    if mask is not None:
        m = mask.convert("L").resize((size, size), Image.NEAREST).point(lambda v: 255 if v > 127 else 0)
        edge = ImageChops.subtract(m.filter(ImageFilter.MaxFilter(5)), m)
        out.paste(Image.new("RGB", (size, size), ACCENT), (0, 0), edge)
    return out


def _example_inputs(g: Graph) -> tuple[list, list]:
    """(references, targets) as [image, mask or None] pairs: the example files the graph loads."""
    from PIL import Image, ImageChops

    inputs = WORKFLOWS / "inputs"
    refs, tgts = [], []
    for node in g.nodes:
        if node.type == "LoadImage":
            (tgts if node.title == T["target_image"] else refs).append([Image.open(inputs / node.values["image"]), None])
    for node in g.nodes:
        if node.type == "LoadImageMask":
            side = tgts if node.title == T["target_mask"] else refs
            side[0][1] = Image.open(inputs / node.values["image"])
        if node.type == "E4ELoadMasks" and node.values.get("target_mask_file"):
            files = [f.strip() for f in node.values["reference_mask_file"].split(",")]
            for pair, file in zip(refs, files):
                pair[1] = Image.open(inputs / file)
            union = None
            for file in node.values["target_mask_file"].split(","):
                m = Image.open(inputs / file.strip()).convert("L")
                union = m if union is None else ImageChops.lighter(union, m)
            tgts[0][1] = union
    return refs, tgts


def _needs(g: Graph) -> str:
    models = [m["name"] for m in g.models()]
    return "Needs " + ", ".join(models) if models else "No download: runs on any CPU, in seconds."


def _fitted(draw, text: str, width: int, start: int, smallest: int):
    """The largest bold font (``start`` down to ``smallest`` px) that fits ``text`` into ``width``."""
    for size in range(start, smallest - 1, -1):
        font = _font(size, bold=True)
        if draw.textlength(text, font=font) <= width:
            return font
    return _font(smallest, bold=True)


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85, optimize=True)
    return buf.getvalue()


def toy_pictures(sheet, n: int = 4) -> list:
    """The ``n`` square pictures of the toy world's sheet (side by side, a white strip between them)."""
    h = sheet.height
    step = h + (sheet.width - n * h) // (n - 1)
    return [sheet.crop((k * step, 0, k * step + h, h)) for k in range(n)]


def _toy_thumbnail(img, draw, toy_sheet, top: int, bottom: int) -> bytes:
    """The toy world's picture: its real sheet (``toy_sheet``; without it, grey squares) as a 2 x 2 grid, what goes
    in above and what comes out below, the method's result outlined."""
    from PIL import Image

    if toy_sheet is not None:
        pics = toy_pictures(toy_sheet.convert("RGB"))
    else:  # no run at hand (the tests render without one)
        pics = [Image.new("RGB", (32, 32), (70, 72, 78)) for _ in range(4)]
    label, lab, gap = _font(17, bold=True), 22, 24
    side = min((THUMB - 32 - gap) // 2, (bottom - top - 2 * lab - 8) // 2)
    x0 = (THUMB - 2 * side - gap) // 2
    names = ("reference", "target", "result", "position matching")
    for k, (name, pic) in enumerate(zip(names, pics)):
        x, y = x0 + (k % 2) * (side + gap), top + (k // 2) * (side + lab + 8)
        img.paste(_panel(pic, side), (x, y))
        if k == 2:
            draw.rectangle([x - 2, y - 2, x + side + 1, y + side + 1], outline=ACCENT, width=3)
        draw.text((x + side / 2, y + side + 2), name, fill=ACCENT if k == 2 else FG, font=label, anchor="ma")
    return _jpeg(img)


def thumbnail(g: Graph, toy_sheet=None) -> bytes:
    """The template's picture: what goes in (left) and what comes out (right, large), what it needs. ``toy_sheet``:
    the toy world's reference | target | result | position matching sheet as the demo saves it (for the toy
    world's own picture; without it, grey squares)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (THUMB, THUMB), BG)
    draw = ImageDraw.Draw(img)
    small, label = _font(16), _font(17, bold=True)
    width = THUMB - 32
    # the card shows the title and the description under the picture, and 1.58 puts a badge over its top left
    draw.text((THUMB - 16, 14), "Eye-for-an-eye", fill=DIM, font=small, anchor="ra")
    y = 44
    needs = _wrap(draw, _needs(g), small, width)[:3]
    bottom = THUMB - 12 - 20 * len(needs)
    for i, line in enumerate(needs):
        draw.text((16, bottom + 8 + 20 * i), line, fill=DIM, font=small)
    top, lab = y + 10, 22
    if g.name == "toy_world":
        return _toy_thumbnail(img, draw, toy_sheet, top, bottom)
    body = bottom - top - lab  # the right panel with its label
    left = (bottom - top - 2 * lab - 6) // 2  # two panels with labels, one above the other
    right = min(body, width - left - 24)
    refs, tgts = _example_inputs(g)
    if len(refs) > 1:  # two references side by side in one square
        half = (left - 4) // 2
        both = Image.new("RGB", (left, left), BG)
        for i, (ref, mask) in enumerate(refs[:2]):
            both.paste(_panel(ref, half, mask), (i * (half + 4), (left - half) // 2))
        inputs = [("references", both)]
    else:
        inputs = [("reference", _panel(refs[0][0], left, refs[0][1]))]
    if tgts:
        inputs.append(("target", _panel(tgts[0][0], left, tgts[0][1])))
    else:  # Wan: the target video comes from the prompt
        box = Image.new("RGB", (left, left), (55, 60, 72))
        d = ImageDraw.Draw(box)
        for i, line in enumerate(("a video", "made from", "the prompt")):
            d.text((left / 2, left / 2 - 27 + 18 * i), line, fill=FG, font=_font(14, bold=True), anchor="ma")
        inputs.append(("target", box))
    result = Image.new("RGB", (right, right), (45, 48, 55))
    d = ImageDraw.Draw(result)
    model = {"sdxl": "SDXL", "flux": "Flux.1-dev", "qwen_image": "Qwen-Image", "wan_t2v": "Wan 2.1"}.get(g.name, "SD1.5")
    d.text((right / 2, right / 2 - 34), "made by", fill=FG, font=_font(22, bold=True), anchor="ma")
    d.text((right / 2, right / 2 + 2), model, fill=ACCENT, font=_fitted(d, model, right - 16, 34, 18),
           anchor="ma")
    for i, (name, pic) in enumerate(inputs):
        y = top + i * (left + lab + 6)
        img.paste(pic, (16, y))
        draw.text((16 + left / 2, y + left + 2), name, fill=FG, font=label, anchor="ma")
    x = 16 + left + 24
    draw.text((x - 13, top + right / 2), "\u2192", fill=ACCENT, font=_font(24, bold=True), anchor="mm")
    img.paste(result, (x, top))
    draw.rectangle([x - 2, top - 2, x + right + 1, top + right + 1], outline=ACCENT, width=3)
    draw.text((x + right / 2, top + right + 2), "result", fill=FG, font=label, anchor="ma")
    return _jpeg(img)


# ----------------------------------------------------------------------------- the editor's list of templates


def extension_data(gs: list[Graph]) -> str:
    """web/js/e4e_templates.js: the templates in the browser's order, each with its card description."""
    entries = "\n".join(f"  {{ name: {json.dumps(TEMPLATES[g.name])}, description: {json.dumps(g.summary)} }},"
                        for g in gs)
    return ("// Generated by scripts/make_workflows.py (do not edit: its --check fails when this is stale).\n"
            "// The pack's templates (workflows/<name>.json) in the order the template browser lists them, each with\n"
            "// the description its card shows. Read by e4e_browser.js; no ComfyUI import, no side effects.\n\n"
            f"export const TEMPLATES = [\n{entries}\n];\n")


def toy_sheet_from_run():
    """The toy world's reference | target | result | position matching sheet: the shipped toy graph run once by the
    in-process runner (as `python scripts/e4e_run.py` does), or None (with the reason) when it cannot run here."""
    import contextlib

    import torch
    from PIL import Image

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the toy model is small: one thread takes ~20 s, more spin on a busy machine
    try:
        with tempfile.TemporaryDirectory(prefix="e4e_thumbs_") as out, contextlib.redirect_stdout(io.StringIO()):
            if RUN.main(["--out", out, "--quiet"]) != 0:
                return None
            return Image.open(Path(out) / "e4e_toy.png").convert("RGB")
    except Exception as exc:  # noqa: BLE001 - thumbnails are not worth failing the generator for
        print(f"the toy world did not run ({exc}): its thumbnail shows grey squares", file=sys.stderr)
        return None
    finally:
        torch.set_num_threads(threads)


def render(specs: dict, toy_sheet=None) -> dict[str, bytes]:
    """Every generated file, by its path in the repository."""
    files = {}
    gs = graphs(specs)
    for g in gs:
        title = TEMPLATES[g.name]
        files[f"workflows/{title}.json"] = (json.dumps(g.editor(), indent=1) + "\n").encode()
        files[f"workflows/api/{g.name}.api.json"] = (json.dumps(g.api(), indent=1) + "\n").encode()
        files[f"workflows/{title}.jpg"] = thumbnail(g, toy_sheet)
    files[EXTENSION_DATA] = extension_data(gs).encode()
    return files


def shipped_files() -> set[str]:
    """What the repository holds now of what render() writes (workflows/inputs/, the example images, is not ours)."""
    top = {f"workflows/{p.name}" for p in WORKFLOWS.glob("*") if p.is_file() and p.suffix in (".json", ".jpg")}
    api = {f"workflows/api/{p.name}" for p in (WORKFLOWS / "api").glob("*.api.json")}
    return top | api | ({EXTENSION_DATA} if (REPO / EXTENSION_DATA).is_file() else set())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the generated files are up to date")
    parser.add_argument("--toy-result", type=Path, metavar="PNG",
                        help="the toy world's sheet (e4e_toy.png from `python scripts/e4e_run.py`) for its thumbnail, "
                             "instead of running it here")
    args = parser.parse_args(argv)
    specs = node_specs()
    if args.check:
        files = render(specs)
        stale = [n for n, data in files.items() if not n.endswith(".jpg")
                 and (not (REPO / n).is_file() or (REPO / n).read_bytes() != data)]
        missing = [n for n in files if not (REPO / n).is_file()]
        extra = sorted(shipped_files() - set(files))
        if stale or missing or extra:
            print(f"out of date: {', '.join(sorted(set(stale + missing + extra)))}; run scripts/make_workflows.py")
            return 1
        print("generated files are up to date")
        return 0
    sheet = None
    if args.toy_result:
        from PIL import Image

        sheet = Image.open(args.toy_result).convert("RGB")
    files = render(specs, sheet)
    extra = sorted(shipped_files() - set(files))
    for n, data in files.items():
        (REPO / n).parent.mkdir(parents=True, exist_ok=True)
        (REPO / n).write_bytes(data)
    for n in extra:  # a renamed workflow's old files
        (REPO / n).unlink()
    if sheet is None:  # the toy world's thumbnail from a run of the API file just written (not the one before it)
        sheet = toy_sheet_from_run()
        if sheet is not None:
            toy = f"workflows/{TEMPLATES['toy_world']}.jpg"
            (REPO / toy).write_bytes(render(specs, sheet)[toy])
    print(f"wrote {len(files)} files" + (f", removed {', '.join(extra)}" if extra else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
