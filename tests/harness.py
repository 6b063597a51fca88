"""Test harness: a full ComfyUI on the CPU, the pack loaded as a package, tiny random-weight models.

The ComfyUI is found by the pack's one rule (``scripts/e4e_headless/host.py``): ``COMFYUI_PATH``, else the
ComfyUI this repository is installed in (``ComfyUI/custom_nodes/<pack>``), else the copy ``scripts/run_tests.sh``
made in ``.comfyui/``. The repository root is never left on ``sys.path`` (``python -m pytest`` puts it there):
its ``nodes/`` would shadow ComfyUI's ``nodes`` module.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "eye_for_an_eye"
for _extra in (REPO / "scripts", REPO / "bench"):  # e4e_headless (the ComfyUI finder), toy_tools (the toy world's)
    if str(_extra) not in sys.path:
        sys.path.append(str(_extra))

from e4e_headless.host import find_comfyui, setup_comfyui  # noqa: E402
from e4e_headless.host import load_pack as host_load_pack  # noqa: E402


@dataclass(frozen=True)
class Host:
    path: Path
    version: str

    def describe(self) -> str:
        return f"ComfyUI host: {self.version} at {self.path}"


_HOST: Host | None = None


def setup_host() -> Host:
    """Make ``import comfy`` give the real ComfyUI, on CPU. Idempotent."""
    global _HOST
    if _HOST is not None:
        return _HOST
    path = setup_comfyui()
    version = "unknown"
    vfile = path / "comfyui_version.py"
    if vfile.is_file():
        for line in vfile.read_text().splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    _HOST = Host(path, version)
    return _HOST


def load_pack():
    """Import this repository as a package (as ComfyUI does from custom_nodes/<folder>)."""
    setup_host()
    return host_load_pack(PACK_NAME)


def pack_module(name: str):
    return importlib.import_module(f"{load_pack().__name__}.{name}")


def pure(name: str):
    """One of the pack's torch-only packages (``matching``, ``inversion``) as a top-level package, as their own
    tests use them. The repository root goes on ``sys.path`` for the import only: left there, its ``nodes/`` would
    shadow ComfyUI's ``nodes`` module for every test after (``import nodes`` in ComfyUI's own code)."""
    root = str(REPO)
    sys.path.insert(0, root)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(root)


__all__ = ["Host", "REPO", "PACK_NAME", "find_comfyui", "setup_host", "load_pack", "pack_module", "pure"]
