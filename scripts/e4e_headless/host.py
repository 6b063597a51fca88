"""Where the ComfyUI that runs the pack outside the editor is, and the pack inside it: one rule, used by in-process
runs (the demo), the toy world's tools, the benchmarks and the tests.

The pack is always imported as one package (``eye_for_an_eye``, or the name ComfyUI or pytest already gave it),
never through the repository root on ``sys.path``: there, its ``nodes/`` would shadow ComfyUI's ``nodes`` module
and its files could load twice under two names.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository root, when this lives in a clone
PACK_NAME = "eye_for_an_eye"


class NoComfyUI(RuntimeError):
    pass


def _is_checkout(path: Path, full: bool) -> bool:
    if full:
        return (path / "comfy").is_dir() and (path / "execution.py").is_file()
    return (path / "comfy" / "model_patcher.py").is_file()


def find_comfyui(full: bool = False, repo: Path = REPO) -> Path:
    """A ComfyUI folder (with ``comfy/``; ``full``: with its server and executor too), the first that applies:

    1. ``COMFYUI_PATH``;
    2. the ComfyUI this pack is installed in (``ComfyUI/custom_nodes/<pack>``);
    3. the copy the test set-up made (``.comfyui/ComfyUI`` in this repository, by ``scripts/run_tests.sh``).

    ``repo``: where this pack is (this clone unless told).
    """
    what = "a full ComfyUI checkout (comfy/ and execution.py)" if full else "a ComfyUI folder (comfy/model_patcher.py)"
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if not _is_checkout(path, full):
            raise NoComfyUI(f"COMFYUI_PATH={env} is not {what}")
        return path
    parent = repo.parent
    if parent.name == "custom_nodes" and _is_checkout(parent.parent, full):
        return parent.parent
    copy = repo / ".comfyui" / "ComfyUI"
    if _is_checkout(copy, full):
        return copy
    raise NoComfyUI(
        f"no ComfyUI found ({what}): install this pack in ComfyUI/custom_nodes/, or set COMFYUI_PATH=/path/to/ComfyUI, "
        "or run `bash scripts/run_tests.sh` once in this clone (it makes .comfyui/ComfyUI and .venv); then run this "
        "with ComfyUI's Python"
    )


def _clean_path(comfy: Path):
    """ComfyUI's folder first on ``sys.path``, the repository root (or '' standing for it) off it."""
    root = str(REPO)
    sys.path[:] = [p for p in sys.path if (os.path.abspath(p or os.getcwd()) != root)]
    if str(comfy) in sys.path:
        sys.path.remove(str(comfy))
    sys.path.insert(0, str(comfy))


def setup_comfyui(full: bool = False) -> Path:
    """Import ComfyUI's core from :func:`find_comfyui` (on the CPU when there is no GPU); returns its folder."""
    path = find_comfyui(full)
    _clean_path(path)
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (after args.cpu)
    return path


_FOUND: dict = {}  # the pack module once found (looking through sys.modules costs a path lookup per module)


def load_pack(name: str = PACK_NAME):
    """This repository as a package, as ComfyUI imports it from ``custom_nodes/`` (the one already imported, under
    whatever name, if any)."""
    import importlib.util

    found = _FOUND.get("pack")
    if found is not None and sys.modules.get(found.__name__) is found:
        return found
    init = str(REPO / "__init__.py")
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and (file == init or Path(file).resolve() == REPO / "__init__.py"):
            _FOUND["pack"] = module
            return module
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _FOUND["pack"] = module
    return module


def pack_module(name: str):
    """A module of the pack by its path inside it (``"toy_world.world"``, ``"engine.patch.plan"``)."""
    return importlib.import_module(f"{load_pack().__name__}.{name}")
