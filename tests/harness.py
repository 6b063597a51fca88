"""Test harness: the real ComfyUI core on CPU, the pack loaded as a package, tiny random-weight models.

Host selection (first that applies):
1. ``COMFYUI_PATH`` names a full ComfyUI checkout;
2. this repository sits in ``<ComfyUI>/custom_nodes/<folder>``;
3. the ``notcomfy`` core from PyPI (``pip install --no-deps notcomfy==0.1.0``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "eye_for_an_eye"


@dataclass(frozen=True)
class Host:
    kind: str  # "checkout" (full ComfyUI) or "notcomfy" (core only)
    path: Path
    version: str

    @property
    def full(self) -> bool:
        return self.kind == "checkout"

    def describe(self) -> str:
        return f"ComfyUI host: {self.kind} {self.version} at {self.path}"


def find_checkout() -> Path | None:
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "comfy").is_dir() or not (path / "main.py").is_file():
            raise RuntimeError(f"COMFYUI_PATH={env} is not a ComfyUI checkout (no comfy/ and main.py there)")
        return path
    parent = REPO.parent
    if parent.name == "custom_nodes" and (parent.parent / "main.py").is_file():
        return parent.parent
    return None


def _notcomfy_version() -> str | None:
    try:
        return importlib.metadata.version("notcomfy")
    except importlib.metadata.PackageNotFoundError:
        return None


_HOST: Host | None = None


def setup_host() -> Host:
    """Make ``import comfy`` give the real core, on CPU. Idempotent."""
    global _HOST
    if _HOST is not None:
        return _HOST
    checkout = find_checkout()
    if checkout is not None:
        if _notcomfy_version() is not None:
            raise RuntimeError(
                "a full ComfyUI checkout was named but notcomfy is installed too; its comfy package would win. "
                "Use an environment without notcomfy for full-checkout runs."
            )
        sys.path.insert(0, str(checkout))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (must come after args.cpu)

    if checkout is not None:
        version = "unknown"
        vfile = checkout / "comfyui_version.py"
        if vfile.is_file():
            for line in vfile.read_text().splitlines():
                if line.startswith("__version__"):
                    version = line.split("=", 1)[1].strip().strip("\"'")
        _HOST = Host("checkout", checkout, version)
    else:
        _HOST = Host("notcomfy", Path(comfy.__file__).resolve().parent, _notcomfy_version() or "unknown")
    return _HOST


def load_pack():
    """Import this repository as a package (as ComfyUI does from custom_nodes/<folder>)."""
    setup_host()
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def pack_module(name: str):
    load_pack()
    return importlib.import_module(f"{PACK_NAME}.{name}")
