"""Helpers for the workflow and end-to-end tests: the shipped workflows, the runner, a real ComfyUI server.

Workflows are checked by ComfyUI's own code, not by a re-implementation of it: API files by the checkout's
``execution.validate_prompt`` (tests/real_comfy.py), editor files by the real editor in headless Chromium
(tests/test_web.py), both where a full ComfyUI checkout is the host.
"""

from __future__ import annotations

import functools
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
WORKFLOW_NAMES = ("sd15_masks", "sd15_whole_image", "sdxl", "sd15_two_objects", "sd15_ksampler_advanced", "flux",
                  "toy_world", "qwen_image", "wan_t2v")
BUILTINS = ("CheckpointLoaderSimple", "CLIPTextEncode", "LoadImage", "LoadImageMask", "ImageScale", "VAEEncode",
            "VAEDecode", "SaveImage", "KSamplerAdvanced", "PreviewImage", "UNETLoader", "DualCLIPLoader", "VAELoader",
            "FluxGuidance", "ImageStitch", "ImageScaleBy", "CLIPLoader", "EmptyHunyuanLatentVideo", "KSampler",
            "SaveAnimatedWEBP")
PACK_NODES = ("E4ELoadMasks", "E4EDDIMInvertReference", "E4ESemanticMatchPatch", "E4EAppearanceTransferSampler",
              "E4EAuthorsFreeU", "E4EToyModel", "E4EToyCreatures", "E4EToyVAEEncode", "E4EToyVAEDecode")


@functools.cache
def make_workflows():
    """scripts/make_workflows.py, loaded once by path: the generator, and TEMPLATES, its table short name -> title."""
    spec = importlib.util.spec_from_file_location("make_workflows", REPO / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_workflows"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def title(name: str) -> str:
    """The title of workflow ``name``: its editor file workflows/TITLE.json, as the template browser lists it."""
    return make_workflows().TEMPLATES[name]


def load(name: str, kind: str = "editor") -> dict:
    """Workflow ``name`` (a short name, as WORKFLOW_NAMES): its editor file or its API file api/NAME.api.json."""
    return json.loads((WORKFLOWS / (f"{title(name)}.json" if kind == "editor" else f"api/{name}.api.json")).read_text())


def changed_inputs(shipped: dict, prompt: dict) -> set[tuple[str, str]]:
    """``(node title, input)`` pairs whose value differs between two API prompts with the same nodes and links
    (an error if a node, a link or an input name differs: a filled workflow must keep the shipped graph)."""
    assert set(shipped) == set(prompt), f"nodes differ: {sorted(set(shipped) ^ set(prompt))}"
    changed = set()
    for node_id, node in shipped.items():
        other = prompt[node_id]
        assert other["class_type"] == node["class_type"] and other["_meta"] == node["_meta"], node_id
        assert set(other["inputs"]) == set(node["inputs"]), f"node {node_id}: inputs differ"
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                assert other["inputs"][name] == value, f"node {node_id}: link {name!r} moved"
            elif other["inputs"][name] != value:
                changed.add((node["_meta"]["title"], name))
    return changed


# ------------------------------------------------------------------------------------ the runner


def load_runner():
    """scripts/e4e_run.py, loaded by path as module ``e4e_run``; it imports the runner's package
    scripts/e4e_headless by path, as ``e4e_headless`` (sys.path untouched)."""
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
