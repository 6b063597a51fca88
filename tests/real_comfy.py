"""A full ComfyUI checkout's own node registry and prompt validation, in this test process.

``RealComfy(checkout, base)`` imports the checkout's ``nodes.py`` with its built-in extra nodes (comfy_extras)
and this pack's nodes, points ``folder_paths`` at ``base`` and validates API-format prompts with the checkout's
``execution.validate_prompt``: the very code ``POST /prompt`` runs, without executing anything. Model and image
files that a prompt names are created empty in ``base`` first (their names are the user's to provide; what is
checked is everything else: node types, links and their types, required inputs, ranges, choices).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

# (node type, input) -> folder_paths folder of the file it names
FILE_INPUTS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoadImage", "image"): "input",
    ("LoadImageMask", "image"): "input",
}


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()


class RealComfy:
    def __init__(self, checkout: Path, base: Path, pack):
        self.checkout, self.base = Path(checkout), Path(base)
        if str(self.checkout) not in sys.path:
            sys.path.insert(0, str(self.checkout))
        import folder_paths

        self.folder_paths = folder_paths
        for sub in ("input", "output", "temp", "models"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        for folder in {f for f in FILE_INPUTS.values() if f != "input"}:
            (self.base / "models" / folder).mkdir(parents=True, exist_ok=True)
        self._use_folders()
        import utils.install_util  # noqa: F401  (as main.py does, before nodes.py puts comfy/ on sys.path)

        self.nodes = _checkout_nodes(self.checkout)
        if "FluxGuidance" not in self.nodes.NODE_CLASS_MAPPINGS:
            asyncio.run(self.nodes.init_builtin_extra_nodes())
        self.nodes.NODE_CLASS_MAPPINGS.update(pack.NODE_CLASS_MAPPINGS)
        self.nodes.NODE_DISPLAY_NAME_MAPPINGS.update(pack.NODE_DISPLAY_NAME_MAPPINGS)
        import execution

        self.execution = execution

    def _use_folders(self):
        """Point ComfyUI's folders at ``base`` (again: another RealComfy or test may have moved them)."""
        fp = self.folder_paths
        fp.set_input_directory(str(self.base / "input"))
        fp.set_output_directory(str(self.base / "output"))
        fp.set_temp_directory(str(self.base / "temp"))
        for folder in {f for f in FILE_INPUTS.values() if f != "input"}:
            fp.add_model_folder_path(folder, str(self.base / "models" / folder), is_default=True)

    def provide_files(self, prompt: dict):
        """Create, empty, the model and image files ``prompt`` names (so only their names are not checked)."""
        for node in prompt.values():
            for name, value in node.get("inputs", {}).items():
                folder = FILE_INPUTS.get((node.get("class_type"), name))
                if folder is None or not isinstance(value, str):
                    continue
                path = self.base / ("input" if folder == "input" else f"models/{folder}") / value
                if not path.exists():
                    path.write_bytes(_tiny_png() if folder == "input" else b"")

    def validate(self, prompt: dict) -> tuple[bool, dict, dict | None]:
        """``(valid, node_errors, error)`` as ComfyUI's ``POST /prompt`` would answer for ``prompt``; valid means
        every output node validates."""
        self._use_folders()
        self.provide_files(prompt)
        prompt = json.loads(json.dumps(prompt))  # validation may annotate the prompt
        result = self.execution.validate_prompt("e4e-test", prompt, None)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        valid, error, _outputs, node_errors = result
        # ComfyUI runs the outputs that validate and reports the others in node_errors: whole means both
        return bool(valid) and not node_errors, node_errors, None if valid else error

    def class_info(self, name: str) -> dict:
        cls = self.nodes.NODE_CLASS_MAPPINGS[name]
        outputs = list(getattr(cls, "RETURN_TYPES", ()))
        return {"input": json.loads(json.dumps(cls.INPUT_TYPES(), default=list)), "output": outputs,
                "output_name": list(getattr(cls, "RETURN_NAMES", None) or outputs),
                "output_node": bool(getattr(cls, "OUTPUT_NODE", False))}


def _checkout_nodes(checkout: Path):
    """The checkout's ``nodes`` module (imported once, by path: this repository has a ``nodes`` package too)."""
    module = sys.modules.get("nodes")
    if module is not None and Path(getattr(module, "__file__", "")).resolve() == (checkout / "nodes.py").resolve():
        return module
    spec = importlib.util.spec_from_file_location("nodes", checkout / "nodes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["nodes"] = module
    spec.loader.exec_module(module)
    return module
