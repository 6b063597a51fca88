"""Helpers for the workflow and end-to-end tests: node specs, workflow checks, a real ComfyUI server.

Node specs have the shape of ComfyUI's ``/object_info`` entries: ``{"input": {"required": {...},
"optional": {...}}, "output": [...], "output_name": [...]}``. This pack's come from its real INPUT_TYPES;
ComfyUI's built-ins from ``tests/comfy_builtins.json`` (written by scripts/dump_builtin_spec.py), or from the
real ``nodes.py`` when a full ComfyUI checkout is at hand.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
BUILTIN_SPEC = Path(__file__).resolve().parent / "comfy_builtins.json"
WORKFLOW_NAMES = ("sd15_masks", "sd15_whole_image", "sdxl", "sd15_two_objects", "sd15_ksampler_advanced")
BUILTINS = ("CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "LoadImageMask", "ImageScale", "VAEEncode",
            "VAEDecode", "SaveImage", "KSamplerAdvanced", "PreviewImage")
PACK_NODES = ("E4ELoadMasks", "E4EDDIMInvertReference", "E4ESemanticMatchPatch", "E4EAppearanceTransferSampler",
              "E4EAuthorsFreeU")
# Combos whose choices are the machine's files: any file name is fine in a shipped workflow.
FILE_INPUTS = {("CheckpointLoaderSimple", "ckpt_name"), ("LoadImage", "image"), ("LoadImageMask", "image")}
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


# ---------------------------------------------------------------------------------------------- specs


def class_info(cls) -> dict:
    outputs = list(getattr(cls, "RETURN_TYPES", ()))
    return {"input": json.loads(json.dumps(cls.INPUT_TYPES(), default=list)), "output": outputs,
            "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs),
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False))}


def pack_specs(pack) -> dict:
    return {name: class_info(cls) for name, cls in pack.NODE_CLASS_MAPPINGS.items()}


def builtin_specs() -> dict:
    return json.loads(BUILTIN_SPEC.read_text())["nodes"]


def real_builtin_specs(checkout: Path) -> dict:
    """Specs of the built-ins from the checkout's own nodes.py (the host must be set up on that checkout)."""
    module = sys.modules.get("nodes")
    if module is None or Path(getattr(module, "__file__", "")).resolve() != (checkout / "nodes.py").resolve():
        spec = importlib.util.spec_from_file_location("nodes", checkout / "nodes.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["nodes"] = module
        spec.loader.exec_module(module)
    return {name: class_info(module.NODE_CLASS_MAPPINGS[name]) for name in BUILTINS
            if name in module.NODE_CLASS_MAPPINGS}


def _opts(entry) -> dict:
    return entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}


def is_widget(entry) -> bool:
    return (isinstance(entry[0], list) or entry[0] in WIDGET_TYPES) and not _opts(entry).get("forceInput")


def has_control(name: str, entry) -> bool:
    return entry[0] == "INT" and bool(_opts(entry).get("control_after_generate", name in ("seed", "noise_seed")))


def ordered_inputs(spec: dict) -> list[tuple[str, list, bool]]:
    return [(name, list(entry), section == "required")
            for section in ("required", "optional") for name, entry in (spec["input"].get(section) or {}).items()]


def compatible(output_type: str, input_type) -> bool:
    if isinstance(input_type, list):
        return False  # a combo takes no link in these workflows
    return output_type == input_type or "*" in (output_type, input_type) or output_type in input_type.split(",")


def value_problems(node_type: str, name: str, entry, value) -> list[str]:
    """Why ``value`` is not acceptable for the widget input ``entry`` (empty if it is)."""
    kind, opts = entry[0], _opts(entry)
    where = f"{node_type}.{name}={value!r}"
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else opts.get("options", [])
        if (node_type, name) in FILE_INPUTS:
            return [] if isinstance(value, str) and value else [f"{where}: a file name is needed"]
        return [] if value in choices else [f"{where}: not one of {choices}"]
    if kind == "INT":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{where}: not an INT"]
    elif kind == "FLOAT":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"{where}: not a FLOAT"]
    elif kind == "STRING":
        return [] if isinstance(value, str) else [f"{where}: not a STRING"]
    elif kind == "BOOLEAN":
        return [] if isinstance(value, bool) else [f"{where}: not a BOOLEAN"]
    problems = []
    if "min" in opts and value < opts["min"]:
        problems.append(f"{where}: below min {opts['min']}")
    if "max" in opts and value > opts["max"]:
        problems.append(f"{where}: above max {opts['max']}")
    return problems


# ------------------------------------------------------------------------------------------- editor


def editor_widget_values(node: dict, spec: dict) -> tuple[dict, list[str]]:
    """Map a node's ``widgets_values`` to input names, as the editor lays widgets out; and the problems."""
    values = list(node.get("widgets_values") or [])
    where = f"node {node['id']} ({node['type']})"
    converted = {i["name"] for i in node.get("inputs", []) if i.get("widget")}
    named, problems = {}, []
    widgets = [(n, e, r) for n, e, r in ordered_inputs(spec) if is_widget(e)]
    upload = False
    pos = 0
    for i, (name, entry, required) in enumerate(widgets):
        if pos >= len(values):
            problems.append(f"{where}: widgets_values ends before {name!r}")
            return named, problems
        if name not in converted or values[pos] is not None:
            named[name] = values[pos]
        pos += 1
        if has_control(name, entry):
            if pos >= len(values) or values[pos] not in CONTROL_VALUES:
                problems.append(f"{where}: {name!r} needs its control value {CONTROL_VALUES} next")
            pos += 1
        upload = upload or bool(_opts(entry).get("image_upload"))
        if upload and required and (i + 1 == len(widgets) or not widgets[i + 1][2]):
            if pos < len(values) and values[pos] == "image":
                pos += 1  # the upload button
    if pos != len(values):
        problems.append(f"{where}: {len(values) - pos} widgets_values left over: {values[pos:]}")
    return named, problems


def check_editor(wf: dict, specs: dict) -> list[str]:
    """Problems of an editor-format (LiteGraph) workflow against the node specs."""
    problems = []
    if wf.get("version") != 0.4:
        problems.append(f"version is {wf.get('version')!r}, expected 0.4")
    nodes = {n["id"]: n for n in wf.get("nodes", [])}
    if len(nodes) != len(wf.get("nodes", [])):
        problems.append("node ids are not unique")
    links = {link[0]: link for link in wf.get("links", [])}
    if len(links) != len(wf.get("links", [])):
        problems.append("link ids are not unique")
    if nodes and wf.get("last_node_id", -1) < max(nodes):
        problems.append("last_node_id is below the highest node id")
    if links and wf.get("last_link_id", -1) < max(links):
        problems.append("last_link_id is below the highest link id")
    for link_id, link in links.items():
        if len(link) != 6:
            problems.append(f"link {link_id}: expected [id, origin, slot, target, slot, type]")
            continue
        _, o_id, o_slot, t_id, t_slot, ltype = link
        if o_id not in nodes or t_id not in nodes:
            problems.append(f"link {link_id}: origin or target node missing")
            continue
        outs, ins = nodes[o_id].get("outputs", []), nodes[t_id].get("inputs", [])
        if not 0 <= o_slot < len(outs) or link_id not in (outs[o_slot].get("links") or []):
            problems.append(f"link {link_id}: not listed on node {o_id}'s output {o_slot}")
        elif outs[o_slot]["type"] != ltype:
            problems.append(f"link {link_id}: type {ltype} but node {o_id}'s output {o_slot} is {outs[o_slot]['type']}")
        if not 0 <= t_slot < len(ins) or ins[t_slot].get("link") != link_id:
            problems.append(f"link {link_id}: not the link of node {t_id}'s input {t_slot}")
        elif not compatible(ltype, ins[t_slot]["type"]):
            problems.append(f"link {link_id}: {ltype} into {ins[t_slot]['type']} (node {t_id})")
    for node in wf.get("nodes", []):
        where = f"node {node['id']} ({node.get('type')})"
        spec = specs.get(node.get("type"))
        if spec is None:
            problems.append(f"{where}: unknown node type")
            continue
        entries = {n: (e, r) for n, e, r in ordered_inputs(spec)}
        seen = set()
        for slot, inp in enumerate(node.get("inputs", [])):
            name = inp.get("name")
            seen.add(name)
            if name not in entries:
                problems.append(f"{where}: no input named {name!r}")
                continue
            entry, _ = entries[name]
            expected = "COMBO" if isinstance(entry[0], list) else entry[0]
            if is_widget(entry) and not inp.get("widget"):
                problems.append(f"{where}: {name!r} is a widget, listed as a socket without 'widget'")
            if inp.get("type") != expected:
                problems.append(f"{where}: input {name!r} has type {inp.get('type')}, the node says {expected}")
            link_id = inp.get("link")
            if link_id is not None:
                link = links.get(link_id)
                if link is None or link[3] != node["id"] or link[4] != slot:
                    problems.append(f"{where}: input {name!r} names link {link_id}, which does not end here")
        for name, (entry, required) in entries.items():
            linked = any(i.get("name") == name and i.get("link") is not None for i in node.get("inputs", []))
            if required and not is_widget(entry) and not linked:
                problems.append(f"{where}: required input {name!r} is not connected")
        outs = node.get("outputs", [])
        if [o.get("type") for o in outs] != list(spec["output"]):
            problems.append(f"{where}: outputs {[o.get('type') for o in outs]}, the node has {spec['output']}")
        for slot, out in enumerate(outs):
            for link_id in out.get("links") or []:
                link = links.get(link_id)
                if link is None or link[1] != node["id"] or link[2] != slot:
                    problems.append(f"{where}: output {slot} lists link {link_id}, which does not start here")
        named, wproblems = editor_widget_values(node, spec)
        problems += wproblems
        for name, value in named.items():
            problems += value_problems(node["type"], name, entries[name][0], value)
    return problems


def editor_to_api(wf: dict, specs: dict) -> dict:
    """The API-format prompt the editor would queue for ``wf`` (as 'Save (API)' writes it)."""
    links = {link[0]: link for link in wf.get("links", [])}
    prompt = {}
    for node in wf["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted / bypassed
            continue
        spec = specs[node["type"]]
        named, _ = editor_widget_values(node, spec)
        linked = {}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                link = links[inp["link"]]
                linked[inp["name"]] = [str(link[1]), link[2]]
        inputs = {}
        for name, _entry, _req in ordered_inputs(spec):
            if name in linked:
                inputs[name] = linked[name]
            elif name in named:
                inputs[name] = named[name]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


# ---------------------------------------------------------------------------------------------- API


def check_api(prompt: dict, specs: dict) -> list[str]:
    """Problems of an API-format prompt against the node specs (what ComfyUI's validate_prompt checks)."""
    problems = []
    outputs = 0
    for node_id, node in prompt.items():
        where = f"node {node_id} ({node.get('class_type')})"
        spec = specs.get(node.get("class_type"))
        if spec is None:
            problems.append(f"{where}: unknown node type")
            continue
        if node["class_type"] in ("SaveImage", "PreviewImage") or spec.get("output_node"):
            outputs += 1
        entries = {n: (e, r) for n, e, r in ordered_inputs(spec)}
        inputs = node.get("inputs", {})
        for name in inputs:
            if name not in entries:
                problems.append(f"{where}: no input named {name!r}")
        for name, (entry, required) in entries.items():
            if name not in inputs:
                if required:
                    problems.append(f"{where}: required input {name!r} missing")
                continue
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
                src = prompt.get(value[0])
                if src is None:
                    problems.append(f"{where}: {name!r} links to missing node {value[0]}")
                    continue
                src_spec = specs.get(src.get("class_type"))
                if src_spec is None:
                    continue
                if not 0 <= value[1] < len(src_spec["output"]):
                    problems.append(f"{where}: {name!r} links to output {value[1]} of node {value[0]}, "
                                    f"which has {len(src_spec['output'])}")
                    continue
                out_type = src_spec["output"][value[1]]
                expected = "COMBO" if isinstance(entry[0], list) else entry[0]
                if not compatible(out_type, expected):
                    problems.append(f"{where}: {name!r} takes {expected}, linked to a {out_type} output")
            elif is_widget(entry):
                problems += value_problems(node["class_type"], name, entry, value)
            else:
                problems.append(f"{where}: {name!r} takes a {entry[0]} link, got the value {value!r}")
    if outputs == 0:
        problems.append("no output node (SaveImage / PreviewImage)")
    return problems


def load(name: str, kind: str = "editor") -> dict:
    return json.loads((WORKFLOWS / (f"{name}.json" if kind == "editor" else f"api/{name}.api.json")).read_text())


# ------------------------------------------------------------------------------------ the runner


def load_runner():
    """scripts/e4e_run.py, loaded by path as module ``e4e_run``; it puts scripts/ on sys.path for its parts."""
    spec = importlib.util.spec_from_file_location("e4e_run", REPO / "scripts" / "e4e_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("e4e_run", module)
    spec.loader.exec_module(module)
    return module


def runner_part(name: str):
    """The module ``name`` of the runner's package scripts/e4e_headless (after load_runner)."""
    return importlib.import_module(f"e4e_headless.{name}")


# ------------------------------------------------------------------------------------- real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comfy_python() -> str:
    return os.environ.get("E4E_COMFY_PYTHON") or sys.executable


def has_module(python: str, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec({module!r}) else 1)"
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0


def sd15_checkpoint_shapes(checkout: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an SD1.5 checkpoint (UNet, VAE, CLIP-L), from ComfyUI's own modules on the meta device.

    Runs in a subprocess of the ComfyUI Python so that nothing heavy stays in this process.
    """
    code = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import comfy.cli_args
comfy.cli_args.args.cpu = True
import torch
import comfy.ops, comfy.sd1_clip, comfy.supported_models
from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
from comfy.ldm.models.autoencoder import AutoencoderKL
unet = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
            adm_in_channels=None, in_channels=4, model_channels=320, num_res_blocks=2,
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], channel_mult=[1, 2, 4, 4], transformer_depth_middle=1,
            use_linear_in_transformer=False, context_dim=768, num_heads=8, num_head_channels=-1,
            transformer_depth_output=[1] * 9 + [0] * 3, use_temporal_attention=False, use_temporal_resblock=False)
shapes = {}
with torch.device("meta"):
    net = UNetModel(**unet, operations=comfy.ops.disable_weight_init, device="meta")
    shapes.update({"model.diffusion_model." + k: list(v.shape) for k, v in net.state_dict().items()})
    dd = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    vae = AutoencoderKL(ddconfig=dd, embed_dim=4)
    shapes.update({"first_stage_model." + k: list(v.shape) for k, v in vae.state_dict().items()})
    clip = comfy.sd1_clip.SDClipModel(device="meta", dtype=torch.float16)
    shapes.update({"cond_stage_model." + k: list(v.shape) for k, v in clip.state_dict().items()
                   if k.startswith("transformer.text_model.")})  # as in the released file
    shapes["cond_stage_model.transformer.text_model.embeddings.position_ids"] = [1, 77]
print(json.dumps(shapes))
"""
    out = subprocess.run([comfy_python(), "-c", code, str(checkout)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"could not list SD1.5 shapes: {out.stderr.strip().splitlines()[-1:]}")
    return {k: tuple(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def write_random_sd15(path: Path, checkout: Path, seed: int = 0) -> Path:
    """A random-weight fp16 checkpoint with SD1.5's real tensor names and shapes (~2 GB), for a real server.

    Weights are drawn like a default init (std 1/sqrt(fan_in)), norms at 1, biases at 0, so activations stay
    finite; the images it makes are noise, which is all an end-to-end test needs.
    """
    import torch
    from safetensors.torch import save_file

    shapes = sd15_checkpoint_shapes(checkout)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, shape in shapes.items():
        if key.endswith("position_ids"):
            tensors[key] = torch.arange(shape[-1]).reshape(shape)
            continue
        if len(shape) >= 2:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            std = 0.02 if "embedding" in key else fan_in ** -0.5
            tensors[key] = (torch.randn(shape, generator=gen) * std).half()
        elif key.endswith("weight") and ("norm" in key or "ln_" in key):
            tensors[key] = torch.ones(shape, dtype=torch.float16)
        else:
            tensors[key] = torch.zeros(shape, dtype=torch.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


class ComfyServer:
    """``python main.py --cpu`` on a free loopback port with this pack in ``base/custom_nodes``."""

    def __init__(self, checkout: Path, base: Path, python: str | None = None):
        self.checkout, self.base, self.python = checkout, base, python or comfy_python()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = base / "server.log"

    def start(self, timeout: float = 300.0):
        for sub in ("custom_nodes", "models/checkpoints", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        link = self.base / "custom_nodes" / "eye_for_an_eye"
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--disable-auto-launch"]
        known = (self.checkout / "comfy" / "cli_args.py").read_text()
        if "--disable-api-nodes" in known:  # newer ComfyUI: no online API nodes, no database file
            cmd.append("--disable-api-nodes")
        if "--database-url" in known:
            cmd += ["--database-url", "sqlite:///:memory:"]
        if not has_module(self.python, "comfyui_frontend_package"):
            empty = self.base / "frontend"
            empty.mkdir(exist_ok=True)
            (empty / "index.html").write_text("<html></html>")
            cmd += ["--front-end-root", str(empty)]
        env = {k: v for k, v in os.environ.items() if k not in ("COMFYUI_PATH",)}
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=self.checkout, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(1.0)
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s: {self.tail()}")

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if getattr(self, "log", None):
            self.log.close()

    def object_info(self) -> dict:
        with urllib.request.urlopen(self.url + "/object_info", timeout=60) as r:
            return json.loads(r.read())


def disk_free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9
