"""Generate the shipped workflows (editor + API format) and their thumbnails from one description.

    COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py          # workflows/TITLE.json, TITLE.jpg, api/
    COMFYUI_PATH=/path/to/ComfyUI python scripts/make_workflows.py --check  # fails if the files are out of date

Each workflow has a short name (its API file, api/NAME.api.json, which scripts and the headless runner use) and a
title (TEMPLATES below), the name of its editor file and thumbnail. ComfyUI's template browser shows nothing but the
file name: the card's title is the file name without ".json", its description the same with "-" and "_" turned
into spaces (frontends 1.27 to 1.58 read no per-pack index or metadata), so the titles are written to be read.
The pack's category label in the browser comes from locales/en/main.json.

Run it with a full ComfyUI's Python (scripts/run_tests.sh makes one: .venv-comfyui, with .comfyui/ComfyUI). The
inputs of each node (order, widgets, defaults) come from the real node definitions: this pack's INPUT_TYPES and
the checkout's built-in nodes. The authors' settings come from engine/defaults.py through the runner's DEFAULTS,
so the runner and the workflows cannot drift apart. The tests check the result with ComfyUI's own prompt
validation and the real editor (tests/test_workflows.py, tests/test_web.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
COL_WIDTH, GAP = 360, 30
# short name -> title: the editor file workflows/TITLE.json (and TITLE.jpg), as the template browser shows it.
# Letters, digits, spaces, "-" and "." only: both frontends fetch /api/workflow_templates/<pack>/<TITLE>.json.
TEMPLATES = {
    "sd15_masks": "Eye-for-an-eye SD1.5 with masks",
    "sd15_whole_image": "Eye-for-an-eye SD1.5 whole images",
    "sdxl": "Eye-for-an-eye SDXL with masks",
    "sd15_two_objects": "Eye-for-an-eye SD1.5 two objects",
    "sd15_ksampler_advanced": "Eye-for-an-eye SD1.5 with KSamplerAdvanced",
    "flux": "Eye-for-an-eye Flux.1-dev with masks",
    "toy_world": "Eye-for-an-eye toy world - no checkpoint needed",
    "qwen_image": "Eye-for-an-eye Qwen-Image with masks",
    "wan_t2v": "Eye-for-an-eye Wan 2.1 video from one reference image",
}


def _load_runner():
    spec = importlib.util.spec_from_file_location("e4e_run", REPO / "scripts" / "e4e_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("e4e_run", module)
    spec.loader.exec_module(module)
    return module


RUN = _load_runner()
D, T = RUN.DEFAULTS, RUN.TITLES


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
        rows = max(len(self.sockets), len(self.spec["output"]))
        height = 30 + 22 * rows + 26 * len(self.widgets)
        if any((e[1] if len(e) > 1 else {}).get("multiline") for _, e, _ in self.widgets):
            height += 70
        if self.type in ("SaveImage", "PreviewImage", "LoadImage", "LoadImageMask"):
            height += 200
        if self.type == "E4EAppearanceTransferSampler":
            height += 240  # the correspondence viewer
        return [COL_WIDTH - 40, height]


class Graph:
    def __init__(self, name: str, title: str, about: str, specs: dict):
        self.name, self.title, self.about, self.specs = name, title, about, specs
        self.nodes: list[Node] = []
        self.groups: list[tuple[str, list[Node]]] = []

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

    # -- layout and formats

    def _layout(self):
        heights: dict[int, int] = {}
        for node in self.nodes:
            node.y = heights.get(node.col, 120)
            heights[node.col] = node.y + node.size()[1] + GAP + 30

    def _order(self) -> dict[int, int]:
        order, done = {}, set()
        while len(done) < len(self.nodes):
            for node in self.nodes:
                if node.id not in done and all(src.id in done for src, _ in node.links.values()):
                    order[node.id] = len(done)
                    done.add(node.id)
        return order

    def editor(self) -> dict:
        self._layout()
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
            entry = {
                "id": node.id,
                "type": node.type,
                "pos": [40 + node.col * COL_WIDTH, node.y],
                "size": node.size(),
                "flags": {},
                "order": order[node.id],
                "mode": 0,
                "inputs": [{"name": n, "type": e[0], "link": in_link.get((node.id, n))} for n, e in node.sockets],
                "outputs": [{"name": oname, "type": otype, "links": out_links.get((node.id, i), []),
                             "slot_index": i}
                            for i, (oname, otype) in enumerate(zip(node.spec["output_name"], node.spec["output"]))],
                "title": node.title,
                "properties": {"Node name for S&R": node.type},
                "widgets_values": widgets_values,
            }
            if node.type.startswith("E4E"):
                entry["color"], entry["bgcolor"] = "#432", "#653"
            nodes.append(entry)
        groups = []
        for title, members in self.groups:
            x0 = min(40 + n.col * COL_WIDTH for n in members) - 15
            y0 = min(n.y for n in members) - 80
            x1 = max(40 + n.col * COL_WIDTH + n.size()[0] for n in members) + 15
            y1 = max(n.y + n.size()[1] for n in members) + 15
            groups.append({"title": title, "bounding": [x0, y0, x1 - x0, y1 - y0], "color": "#3f789e",
                           "font_size": 22, "flags": {}})
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": groups,
            "config": {},
            "extra": {"ds": {"scale": 0.75, "offset": [0, 0]}, "e4e": {"title": self.title, "about": self.about}},
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


# ------------------------------------------------------------------------------------------- the graphs


def _common(g: Graph, ckpt: str, size: int):
    """Checkpoint, the authors' FreeU once on its MODEL (used by both inversions and the patch), prompts."""
    ckpt_node = g.add("CheckpointLoaderSimple", T["checkpoint"], 0, ckpt_name=ckpt)
    b1, b2, s1, s2 = D["freeu_sdxl"] if ckpt == RUN.SDXL_CHECKPOINT else D["freeu"]
    freeu = g.add("E4EAuthorsFreeU", T["freeu"], 0, model=ckpt_node["MODEL"], b1=b1, b2=b2, s1=s1, s2=s2)
    pos = g.add("CLIPTextEncode", T["prompt"], 0, text=D["prompt"], clip=ckpt_node["CLIP"])
    neg = g.add("CLIPTextEncode", T["negative"], 0, text=D["negative"], clip=ckpt_node["CLIP"])
    g.group("Model, prompt", ckpt_node, freeu, pos, neg)
    return ckpt_node, freeu, pos, neg


def _scale(g: Graph, title: str, image, size: int):
    return g.add("ImageScale", title, 2, image=image, upscale_method=D["upscale_method"], width=size, height=size,
                 crop=D["crop"])


def _invert(g: Graph, title: str, model, pos, neg, latent, method: str | None = None):
    """DDIM Invert Reference at the authors' settings; ``model``, ``pos``, ``neg``, ``latent``: output sockets."""
    return g.add("E4EDDIMInvertReference", title, 3, model=model, positive=pos, negative=neg,
                 latent=latent, steps=D["steps"], skip_steps=D["skip_steps"], cfg=D["inversion_cfg"],
                 method=method or D["method"], scheduler=D["scheduler"], seed=D["seed"])


def _patch(g: Graph, model, ref_inv, tgt_inv, **extra):
    """Semantic Match Patch at the authors' settings; ``model``: an output socket."""
    return g.add("E4ESemanticMatchPatch", T["patch"], 4, model=model, reference=ref_inv["inversion"],
                 target=tgt_inv["inversion"], layers=D["layers"], custom_layers=D["custom_layers"],
                 start_percent=D["start_percent"], end_percent=D["end_percent"],
                 structure_every=D["structure_every"], structure_end_percent=D["structure_end_percent"],
                 strength=D["strength"], **extra)


def _sample_and_save(g: Graph, ckpt, patched, pos, neg, tgt_scaled=None, ref_scaled=None):
    extra = {}
    if tgt_scaled is not None:
        extra["target_image"] = tgt_scaled[0]
    if ref_scaled is not None:
        extra["reference_image"] = ref_scaled[0]
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 4, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D["cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], **extra)
    decode = g.add("VAEDecode", "VAE Decode", 5, samples=sampler["latent"], vae=ckpt["VAE"])
    save = g.add("SaveImage", T["save"], 5, images=decode[0], filename_prefix=D["filename_prefix"])
    corr = g.add("PreviewImage", "Correspondences", 5, images=sampler["correspondence"])
    g.group("Transfer", patched, sampler)
    return sampler, decode, save, corr


def one_object(name: str, title: str, about: str, specs: dict, ckpt: str, size: int, masks: bool) -> Graph:
    g = Graph(name, title, about, specs)
    ckpt_node, model, pos, neg = _common(g, ckpt, size)
    ref = g.add("LoadImage", T["reference_image"], 1, image="e4e_reference.png")
    ref_mask = g.add("LoadImageMask", T["reference_mask"], 1, image="e4e_reference_mask.png",
                     channel=D["mask_channel"]) if masks else None
    tgt = g.add("LoadImage", T["target_image"], 1, image="e4e_target.png")
    tgt_mask = g.add("LoadImageMask", T["target_mask"], 1, image="e4e_target_mask.png",
                     channel=D["mask_channel"]) if masks else None
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], size)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size)
    g.group("Images, one size", ref, tgt, *(n for n in (ref_mask, tgt_mask) if n))
    extra = {}
    if masks:
        mask_node = g.add("E4ELoadMasks", T["masks"], 2, reference_of_object="", invert=False, width=size,
                          height=size, crop=D["crop"], target_mask=tgt_mask["MASK"], reference_mask=ref_mask["MASK"],
                          target_image=tgt_s[0], reference_image=ref_s[0])
        g.add("PreviewImage", "Masks preview", 2, images=mask_node["preview"])
        extra["masks"] = mask_node["masks"]
    ref_lat = g.add("VAEEncode", "Encode reference", 3, pixels=ref_s[0], vae=ckpt_node["VAE"])
    tgt_lat = g.add("VAEEncode", "Encode target", 3, pixels=tgt_s[0], vae=ckpt_node["VAE"])
    ref_inv = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], ref_lat[0])
    tgt_inv = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], tgt_lat[0])
    g.group("Inversion", ref_lat, tgt_lat, ref_inv, tgt_inv)
    patched = _patch(g, model["MODEL"], ref_inv, tgt_inv, **extra)
    _sample_and_save(g, ckpt_node, patched, pos, neg, tgt_s, ref_s)
    return g


def two_objects(specs: dict) -> Graph:
    g = Graph("sd15_two_objects", "SD1.5: two objects from two references",
              "Target object 1 takes its appearance from reference 1, object 2 from reference 2. Masks are files "
              "in ComfyUI's input folder (white = object), one per object; Load Masks scales them like the images.", specs)
    ckpt, model, pos, neg = _common(g, RUN.SD15_CHECKPOINT, D["size"])
    ref1 = g.add("LoadImage", T["reference_image"], 1, image="e4e_reference_1.png")
    ref2 = g.add("LoadImage", "Reference image 2", 1, image="e4e_reference_2.png")
    tgt = g.add("LoadImage", T["target_image"], 1, image="e4e_target.png")
    size = D["size"]
    ref1_s = _scale(g, T["scale_reference"], ref1["IMAGE"], size)
    ref2_s = _scale(g, "Scale reference 2", ref2["IMAGE"], size)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size)
    g.group("Images, one size", ref1, ref2, tgt)
    masks = g.add("E4ELoadMasks", T["masks"], 2, reference_of_object="1,2", invert=False, width=size, height=size,
                  crop=D["crop"], target_mask_file="e4e_target_mask_1.png, e4e_target_mask_2.png",
                  reference_mask_file="e4e_reference_1_mask.png, e4e_reference_2_mask.png", target_image=tgt_s[0])
    g.add("PreviewImage", "Masks preview", 2, images=masks["preview"])
    lats = [g.add("VAEEncode", f"Encode {t}", 3, pixels=s[0], vae=ckpt["VAE"])
            for t, s in (("reference", ref1_s), ("reference 2", ref2_s), ("target", tgt_s))]
    inv1 = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], lats[0][0])
    inv2 = _invert(g, "Invert reference 2", model["MODEL"], pos[0], neg[0], lats[1][0])
    inv_t = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], lats[2][0])
    g.group("Inversion", *lats, inv1, inv2, inv_t)
    patched = _patch(g, model["MODEL"], inv1, inv_t, masks=masks["masks"], reference_2=inv2["inversion"])
    _sample_and_save(g, ckpt, patched, pos, neg, tgt_s)
    return g


def ksampler_advanced(specs: dict) -> Graph:
    g = Graph("sd15_ksampler_advanced", "SD1.5: the patch with ComfyUI's KSamplerAdvanced",
              "The target is inverted with method 'ddim'; KSamplerAdvanced samples the patched model from the "
              "target's start latent: add_noise disable, start_at_step = skip_steps, the same steps and "
              "scheduler, sampler ddim.", specs)
    ckpt, model, pos, neg = _common(g, RUN.SD15_CHECKPOINT, D["size"])
    ref = g.add("LoadImage", T["reference_image"], 1, image="e4e_reference.png")
    tgt = g.add("LoadImage", T["target_image"], 1, image="e4e_target.png")
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], D["size"])
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], D["size"])
    g.group("Images, one size", ref, tgt)
    ref_lat = g.add("VAEEncode", "Encode reference", 3, pixels=ref_s[0], vae=ckpt["VAE"])
    tgt_lat = g.add("VAEEncode", "Encode target", 3, pixels=tgt_s[0], vae=ckpt["VAE"])
    ref_inv = _invert(g, T["invert_reference"], model["MODEL"], pos[0], neg[0], ref_lat[0])
    tgt_inv = _invert(g, T["invert_target"], model["MODEL"], pos[0], neg[0], tgt_lat[0], method="ddim")
    g.group("Inversion (target: ddim)", ref_lat, tgt_lat, ref_inv, tgt_inv)
    patched = _patch(g, model["MODEL"], ref_inv, tgt_inv)
    ks = g.add("KSamplerAdvanced", T["ksampler"], 4, model=patched[0], add_noise="disable", noise_seed=0,
               steps=D["steps"], cfg=D["cfg"], sampler_name="ddim", scheduler=D["scheduler"], positive=pos[0],
               negative=neg[0], latent_image=tgt_inv["start_latent"], start_at_step=D["skip_steps"],
               end_at_step=10000, return_with_leftover_noise="disable")
    decode = g.add("VAEDecode", "VAE Decode", 5, samples=ks[0], vae=ckpt["VAE"])
    g.add("SaveImage", T["save"], 5, images=decode[0], filename_prefix=D["filename_prefix"])
    g.group("Transfer", patched, ks)
    return g


def flux(specs: dict) -> Graph:
    g = Graph("flux", "Flux.1-dev: one object, with masks",
              "Flux.1-dev through ComfyUI's usual loaders (UNETLoader, DualCLIPLoader type flux, VAELoader). The "
              "patch rewrites the image tokens of Stable Flow's vital blocks; no CFG (FluxGuidance 3.5); 28 "
              "steps of the simple schedule, 9 skipped.", specs)
    size = D["flux_size"]
    unet = g.add("UNETLoader", T["unet"], 0, unet_name=RUN.FLUX_MODEL, weight_dtype="default")
    clip = g.add("DualCLIPLoader", T["text_encoders"], 0, clip_name1=RUN.FLUX_TEXT_ENCODERS[0],
                 clip_name2=RUN.FLUX_TEXT_ENCODERS[1], type="flux")
    vae = g.add("VAELoader", T["vae"], 0, vae_name=RUN.FLUX_VAE)
    text = g.add("CLIPTextEncode", T["prompt"], 0, text=D["prompt"], clip=clip[0])
    pos = g.add("FluxGuidance", T["guidance"], 0, conditioning=text[0], guidance=D["flux_guidance"])
    neg = g.add("CLIPTextEncode", T["negative"], 0, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, text, pos, neg)
    return _masked_transfer(g, unet, vae, pos, neg, size, "flux")


def _masked_transfer(g: Graph, unet, vae, pos, neg, size: int, key: str) -> Graph:
    """A diffusion transformer's one-object transfer with masks, after its loaders and prompts: the images and
    masks at ``size``, both inversions, the patch, the sampler, decode and save; ``key``: the family's settings in
    DEFAULTS (``flux_steps``, ``qwen_cfg``, ...)."""
    ref = g.add("LoadImage", T["reference_image"], 1, image="e4e_reference.png")
    ref_mask = g.add("LoadImageMask", T["reference_mask"], 1, image="e4e_reference_mask.png", channel=D["mask_channel"])
    tgt = g.add("LoadImage", T["target_image"], 1, image="e4e_target.png")
    tgt_mask = g.add("LoadImageMask", T["target_mask"], 1, image="e4e_target_mask.png", channel=D["mask_channel"])
    ref_s = _scale(g, T["scale_reference"], ref["IMAGE"], size)
    tgt_s = _scale(g, T["scale_target"], tgt["IMAGE"], size)
    g.group("Images, one size", ref, tgt, ref_mask, tgt_mask)
    masks = g.add("E4ELoadMasks", T["masks"], 2, reference_of_object="", invert=False, width=size, height=size,
                  crop=D["crop"], target_mask=tgt_mask["MASK"], reference_mask=ref_mask["MASK"],
                  target_image=tgt_s[0], reference_image=ref_s[0])
    g.add("PreviewImage", "Masks preview", 2, images=masks["preview"])
    ref_lat = g.add("VAEEncode", "Encode reference", 3, pixels=ref_s[0], vae=vae[0])
    tgt_lat = g.add("VAEEncode", "Encode target", 3, pixels=tgt_s[0], vae=vae[0])
    invs = [g.add("E4EDDIMInvertReference", title, 3, model=unet[0], positive=pos[0], negative=neg[0], latent=lat[0],
                  steps=D[f"{key}_steps"], skip_steps=D[f"{key}_skip_steps"], cfg=D[f"{key}_cfg"], method=D["method"],
                  scheduler=D[f"{key}_scheduler"], seed=D["seed"])
            for title, lat in ((T["invert_reference"], ref_lat), (T["invert_target"], tgt_lat))]
    g.group("Inversion", ref_lat, tgt_lat, *invs)
    patched = _patch(g, unet["MODEL"], invs[0], invs[1], masks=masks["masks"])
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 4, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D[f"{key}_cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], target_image=tgt_s[0], reference_image=ref_s[0])
    decode = g.add("VAEDecode", "VAE Decode", 5, samples=sampler["latent"], vae=vae[0])
    g.add("SaveImage", T["save"], 5, images=decode[0], filename_prefix=D["filename_prefix"])
    g.add("PreviewImage", "Correspondences", 5, images=sampler["correspondence"])
    g.group("Transfer", patched, sampler)
    return g


def qwen_image(specs: dict) -> Graph:
    g = Graph("qwen_image", "Qwen-Image: one object, with masks",
              "Qwen-Image through ComfyUI's usual loaders (UNETLoader, CLIPLoader type qwen_image, VAELoader). The "
              "patch rewrites the image tokens of the second half of the blocks (as for SD3); 30 steps of the "
              "simple schedule, 10 skipped; CFG 2.5.", specs)
    size = D["qwen_size"]
    unet = g.add("UNETLoader", T["unet"], 0, unet_name=RUN.QWEN_MODEL, weight_dtype="default")
    clip = g.add("CLIPLoader", T["text_encoder"], 0, clip_name=RUN.QWEN_TEXT_ENCODER, type="qwen_image")
    vae = g.add("VAELoader", T["vae"], 0, vae_name=RUN.QWEN_VAE)
    pos = g.add("CLIPTextEncode", T["prompt"], 0, text=D["prompt"], clip=clip[0])
    neg = g.add("CLIPTextEncode", T["negative"], 0, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, pos, neg)
    return _masked_transfer(g, unet, vae, pos, neg, size, "qwen")


def wan_t2v(specs: dict) -> Graph:
    g = Graph("wan_t2v", "Wan 2.1 (1.3B): a video takes a reference image's appearance",
              "Wan 2.1 text-to-video through ComfyUI's usual loaders (UNETLoader, CLIPLoader type wan, VAELoader). "
              "The target video is made from the prompt here (to transfer onto your own video, put LoadVideo, "
              "GetVideoComponents and VAE Encode in place of the KSampler); the reference is one image. Every "
              "frame's tokens take the Q/K/V of their matched reference tokens in the second half of the blocks; "
              "30 steps of the simple schedule, 10 skipped; CFG 5.", specs)
    width, height = D["wan_size"]
    unet = g.add("UNETLoader", T["unet"], 0, unet_name=RUN.WAN_MODEL, weight_dtype="default")
    clip = g.add("CLIPLoader", T["text_encoder"], 0, clip_name=RUN.WAN_TEXT_ENCODER, type="wan")
    vae = g.add("VAELoader", T["vae"], 0, vae_name=RUN.WAN_VAE)
    pos = g.add("CLIPTextEncode", T["prompt"], 0, text=D["wan_prompt"], clip=clip[0])
    neg = g.add("CLIPTextEncode", T["negative"], 0, text=D["negative"], clip=clip[0])
    g.group("Model, prompt", unet, clip, vae, pos, neg)
    empty = g.add("EmptyHunyuanLatentVideo", "Video size", 1, width=width, height=height, length=D["wan_frames"],
                  batch_size=1)
    video = g.add("KSampler", T["target_video"], 1, model=unet[0], seed=0, steps=D["wan_steps"], cfg=D["wan_cfg"],
                  sampler_name="uni_pc", scheduler=D["wan_scheduler"], positive=pos[0], negative=neg[0],
                  latent_image=empty[0], denoise=1.0)
    ref = g.add("LoadImage", T["reference_image"], 1, image="e4e_reference.png")
    g.group("Target video, reference image", empty, video, ref)
    ref_s = g.add("ImageScale", T["scale_reference"], 2, image=ref["IMAGE"], upscale_method=D["upscale_method"],
                  width=width, height=height, crop="center")
    ref_lat = g.add("VAEEncode", "Encode reference", 2, pixels=ref_s[0], vae=vae[0])
    invs = [g.add("E4EDDIMInvertReference", title, 3, model=unet[0], positive=pos[0], negative=neg[0], latent=lat,
                  steps=D["wan_steps"], skip_steps=D["wan_skip_steps"], cfg=D["wan_cfg"], method=D["method"],
                  scheduler=D["wan_scheduler"], seed=D["seed"])
            for title, lat in ((T["invert_reference"], ref_lat[0]), (T["invert_target"], video[0]))]
    g.group("Inversion", ref_s, ref_lat, *invs)
    patched = _patch(g, unet["MODEL"], invs[0], invs[1])
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 4, model=patched[0], positive=pos[0],
                    negative=neg[0], cfg=D["wan_cfg"], adain=D["adain"], adain_start_percent=D["adain_start_percent"],
                    ending=D["ending"], reference_image=ref_s[0])
    g.group("Transfer", patched, sampler)
    decode = g.add("VAEDecode", "VAE Decode", 5, samples=sampler["latent"], vae=vae[0])
    g.add("SaveAnimatedWEBP", T["save"], 5, images=decode[0], filename_prefix=D["filename_prefix"],
          fps=float(D["wan_fps"]), lossless=False, quality=90, method="default")
    g.add("PreviewImage", "Correspondences", 5, images=sampler["correspondence"])
    return g


def toy_world(specs: dict) -> Graph:
    """The demo: the bundled toy model and two generated creatures; runs anywhere, in seconds on a CPU."""
    g = Graph("toy_world", "Toy world: no checkpoint needed",
              "A transfer on the small SD1.5-layout model this pack trained on its toy world of creatures "
              "(bundled): the target creature keeps its shape and pose and takes the reference's colours part by "
              "part (head from head, wing from wing). Change the seed for another pair. The authors' settings, "
              "no FreeU (the toy model was trained without it).", specs)
    toy = g.add("E4EToyModel", "Toy model", 0, family="sd1")
    pair = g.add("E4EToyCreatures", "Toy creatures", 1)  # the node's default pair
    g.group("Model, images", toy, pair)
    masks = g.add("E4ELoadMasks", T["masks"], 2, reference_of_object="", invert=False, width=0, height=0,
                  crop=D["crop"], target_mask=pair["target_mask"], reference_mask=pair["reference_mask"],
                  target_image=pair["target"], reference_image=pair["reference"])
    ref_lat = g.add("E4EToyVAEEncode", "Encode reference", 2, pixels=pair["reference"], toy_vae=toy["toy_vae"])
    tgt_lat = g.add("E4EToyVAEEncode", "Encode target", 2, pixels=pair["target"], toy_vae=toy["toy_vae"])
    invs = [_invert(g, title, toy["model"], toy["positive"], toy["negative"], lat[0])
            for title, lat in ((T["invert_reference"], ref_lat), (T["invert_target"], tgt_lat))]
    g.group("Inversion", ref_lat, tgt_lat, *invs)
    patched = _patch(g, toy["model"], invs[0], invs[1], masks=masks["masks"])
    sampler = g.add("E4EAppearanceTransferSampler", T["sampler"], 4, model=patched[0], positive=toy["positive"],
                    negative=toy["negative"], cfg=D["cfg"], adain=D["adain"],
                    adain_start_percent=D["adain_start_percent"], ending=D["ending"], target_image=pair["target"],
                    reference_image=pair["reference"])
    g.group("Transfer", patched, sampler)
    decode = g.add("E4EToyVAEDecode", "Toy VAE Decode", 5, samples=sampler["latent"], toy_vae=toy["toy_vae"])
    stitch = dict(direction="right", match_image_size=False, spacing_width=2, spacing_color="white")
    sheet = g.add("ImageStitch", "Reference | target", 5, image1=pair["reference"], image2=pair["target"], **stitch)
    sheet = g.add("ImageStitch", "Reference | target | result", 5, image1=sheet[0], image2=decode[0], **stitch)
    big = g.add("ImageScaleBy", "Enlarge", 5, image=sheet[0], upscale_method="nearest-exact", scale_by=8.0)
    g.add("SaveImage", T["save"], 5, images=big[0], filename_prefix="e4e_toy")
    g.add("SaveImage", "Save correspondences", 5, images=sampler["correspondence"],
          filename_prefix="e4e_toy_correspondence")
    return g


def graphs(specs: dict) -> list[Graph]:
    return [
        one_object("sd15_masks", "SD1.5: one object, with masks",
                   "The target object takes the reference object's appearance; the background stays. Masks are "
                   "black/white images (white = object) made from the images they belong to.",
                   specs, RUN.SD15_CHECKPOINT, D["size"], masks=True),
        one_object("sd15_whole_image", "SD1.5: whole images, no masks",
                   "The whole target takes the whole reference's appearance (nothing is kept as background).",
                   specs, RUN.SD15_CHECKPOINT, D["size"], masks=False),
        one_object("sdxl", "SDXL: one object, with masks",
                   "As the SD1.5 workflow with masks, on SDXL at 1024 px; the patch uses the decoder blocks output 0-5.",
                   specs, RUN.SDXL_CHECKPOINT, D["sdxl_size"], masks=True),
        two_objects(specs),
        ksampler_advanced(specs),
        flux(specs),
        toy_world(specs),
        qwen_image(specs),
        wan_t2v(specs),
    ]


# ------------------------------------------------------------------------------------------ thumbnails


SHORT = {"Negative prompt": "Negative", "Reference image": "Reference", "Reference image 2": "Reference 2",
         "Target image": "Target", "Reference mask": "Ref. mask", "Target mask": "Target mask",
         "Scale reference 2": "Scale ref. 2", "Scale reference": "Scale ref.", "Scale target": "Scale target",
         "Object masks": "Load Masks", "Encode reference 2": "Encode ref. 2", "Encode reference": "Encode ref.",
         "Invert reference 2": "Invert ref. 2", "Invert reference": "Invert ref.", "Encode target": "Encode target",
         "Semantic Match Patch": "Semantic Match Patch", "Appearance Transfer Sampler": "Transfer Sampler",
         "KSampler (Advanced)": "KSampler Advanced", "Save result": "Save image", "Authors' FreeU": "Authors' FreeU",
         "Diffusion model": "Diffusion model", "Text encoders": "CLIP-L + T5", "Flux guidance": "Flux guidance",
         "Text encoder": "Text encoder", "Target video": "Target video", "Video size": "Video size"}
PLUMBING = ("MODEL", "CLIP", "VAE", "CONDITIONING")  # not drawn: every node would link to the checkpoint


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


def thumbnail(g: Graph) -> bytes:
    """A small diagram of the graph: a box per node (previews left out) in its column, a line per image,
    latent, mask or inversion link; orange = this pack's nodes, green = output."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = 480, 270
    img = Image.new("RGB", (w, h), (32, 34, 38))
    draw = ImageDraw.Draw(img)
    try:
        font, big = ImageFont.load_default(size=10), ImageFont.load_default(size=15)
    except TypeError:  # Pillow without FreeType
        font = big = ImageFont.load_default()
    draw.text((10, 8), g.title, fill=(235, 235, 235), font=big)
    shown = [n for n in g.nodes if n.type != "PreviewImage"]
    cols = sorted({n.col for n in shown})
    col_w = (w - 16) / len(cols)
    boxes = {}
    for ci, col in enumerate(cols):
        members = [n for n in shown if n.col == col]
        box_h = min(30, (h - 70) / len(members) - 6)
        for ri, node in enumerate(members):
            x0 = 8 + ci * col_w + 6
            y0 = 38 + ri * (box_h + 6)
            boxes[node.id] = (x0, y0, x0 + col_w - 14, y0 + box_h)
    for node in shown:
        for src, slot in node.links.values():
            if src.id in boxes and node.id in boxes and src.spec["output"][slot] not in PLUMBING:
                a, b = boxes[src.id], boxes[node.id]
                if src.col == node.col:  # down the column, on the right edge
                    x = a[2] - 6 - 4 * (b[1] > a[3] + 40)
                    start, end = (x, a[3]), (x, b[1])
                    head = [end, (end[0] - 3, end[1] - 5), (end[0] + 3, end[1] - 5)]
                else:
                    start, end = (a[2], (a[1] + a[3]) / 2), (b[0], (b[1] + b[3]) / 2)
                    head = [end, (end[0] - 5, end[1] - 3), (end[0] - 5, end[1] + 3)]
                draw.line([start, end], fill=(150, 160, 170), width=1)
                draw.polygon(head, fill=(150, 160, 170))
    for node in shown:
        x0, y0, x1, y1 = boxes[node.id]
        if node.type.startswith("E4E"):
            fill, edge = (150, 95, 40), (240, 170, 90)
        elif node.type in ("SaveImage", "KSamplerAdvanced"):
            fill, edge = (40, 100, 60), (110, 200, 130)
        else:
            fill, edge = (55, 62, 75), (120, 130, 150)
        draw.rounded_rectangle([x0, y0, x1, y1], radius=4, fill=fill, outline=edge)
        lines = _wrap(draw, SHORT.get(node.title, node.title), font, x1 - x0 - 6)[:2]
        top = (y0 + y1) / 2 - 6 * len(lines)
        for i, line in enumerate(lines):
            draw.text(((x0 + x1) / 2, top + 12 * i), line, fill=(240, 240, 240), font=font, anchor="ma")
    draw.text((10, h - 18), "orange: Eye-for-an-eye nodes   green: output   grey: ComfyUI built-ins",
              fill=(170, 170, 170), font=font)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80, optimize=True)
    return buf.getvalue()


def render(specs: dict) -> dict[str, bytes]:
    files = {}
    for g in graphs(specs):
        title = TEMPLATES[g.name]
        files[f"{title}.json"] = (json.dumps(g.editor(), indent=1) + "\n").encode()
        files[f"api/{g.name}.api.json"] = (json.dumps(g.api(), indent=1) + "\n").encode()
        files[f"{title}.jpg"] = thumbnail(g)
    return files


def shipped_files() -> set[str]:
    """What workflows/ holds now of what render() writes (workflows/inputs/, the example images, is not ours)."""
    top = {p.name for p in WORKFLOWS.glob("*") if p.is_file() and p.suffix in (".json", ".jpg")}
    return top | {f"api/{p.name}" for p in (WORKFLOWS / "api").glob("*.api.json")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that workflows/ is up to date")
    args = parser.parse_args(argv)
    files = render(node_specs())
    stale = [n for n, data in files.items() if not n.endswith(".jpg")
             and (not (WORKFLOWS / n).is_file() or (WORKFLOWS / n).read_bytes() != data)]
    extra = sorted(shipped_files() - set(files))
    if args.check:
        missing = [n for n in files if not (WORKFLOWS / n).is_file()]
        if stale or missing or extra:
            print(f"out of date: {', '.join(sorted(set(stale + missing + extra)))}; run scripts/make_workflows.py")
            return 1
        print("workflows/ is up to date")
        return 0
    for n, data in files.items():
        (WORKFLOWS / n).parent.mkdir(parents=True, exist_ok=True)
        (WORKFLOWS / n).write_bytes(data)
    for n in extra:  # a renamed workflow's old files
        (WORKFLOWS / n).unlink()
    print(f"wrote {len(files)} files to {WORKFLOWS.relative_to(REPO)}/" + (f", removed {', '.join(extra)}" if extra else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
